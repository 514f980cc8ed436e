"""The Faust app factory: wires the pure core to Kafka, tables, metrics and HTTP.

``create_app(settings, gates)`` builds a fresh :class:`faust.App` (no module-level
singleton) with:

- one agent over ``gate.events`` (raw bytes in), taking events in batches
  (``noack_take``) and acking each only after its effects were queued, so an offset
  is committed only after the producer flushed the state changes it caused;
- one changelog-backed table, ``vehicle-state``: key ``gate\\0vehicle``, value the
  vehicle's distinct events; written once per changed vehicle per batch, to the
  partition of the event's own input partition (co-partitioned with the input);
- the :class:`~gatewatch.core.ledger.Ledger` rebuilt from that table after every
  recovery, so counts after a crash or takeover equal counts without one;
- a 1 s timer that advances watermarks, publishes closed windows to
  ``gate.windows`` and expires old vehicle states;
- HTTP on 127.0.0.1: ``/metrics``, ``/healthz``, ``/readyz``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import faust
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from gatewatch import __version__
from gatewatch.agents import compat
from gatewatch.agents.delivery import BatchConsumer, RewindingConsumer
from gatewatch.agents.health import BrokerWatch, quiet_repeats
from gatewatch.alerts.evaluator import AlertCollector, AlertEvaluator
from gatewatch.core.ledger import (
    APPLIED,
    DUPLICATE,
    Ledger,
    encode_state,
    split_key,
    state_key,
)
from gatewatch.gates import GateSet
from gatewatch.kafka import aiokafka_security
from gatewatch.settings import Settings
from gatewatch.streams.codec import Decoder, encode_window
from gatewatch.streams.records import CrossingEvent, Rejection, WindowRecord
from gatewatch.streams.topics import Topics
from gatewatch.web import api
from gatewatch.web.exposition import render
from gatewatch.web.metrics import GatewatchMetrics, LagSample, LedgerCollector

__all__ = ["Gatewatch", "create_app", "kafka_credentials"]

log = logging.getLogger(__name__)

STATE_TABLE = "vehicle-state"


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _store_put(table: Any, key: bytes, value: bytes | None, partition: int) -> None:
    """Mirror a state write into the table's local store without a second changelog
    send. For the memory store this also records the key's partition, so that Faust
    drops it if the partition is assigned elsewhere after a rebalance."""
    store = table.data
    inner = getattr(store, "data", None)
    key_partition = getattr(store, "_key_partition", None)
    if not isinstance(inner, dict) or not isinstance(key_partition, dict):
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value
        return
    if value is None:
        inner.pop(key, None)
        key_partition.pop(key, None)
    else:
        inner[key] = value
        key_partition[key] = partition


def kafka_credentials(settings: Settings) -> Any:
    """Faust broker credentials for SASL/TLS settings (None for PLAINTEXT)."""
    import ssl

    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context(cafile=settings.ssl_cafile or None)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    if settings.sasl_mechanism == "PLAIN":
        return faust.SASLCredentials(username=settings.sasl_username,
                                     password=settings.sasl_password,
                                     ssl_context=context if protocol == "SASL_SSL" else None)
    from faust.types.auth import SASLMechanism

    mech = SASLMechanism(settings.sasl_mechanism)
    return faust.SASLCredentials(username=settings.sasl_username,
                                 password=settings.sasl_password, mechanism=mech,
                                 ssl_context=context if protocol == "SASL_SSL" else None)


@dataclass
class Gatewatch:
    """Everything one worker holds: the Faust app and the core it drives."""

    app: faust.App
    settings: Settings
    gates: GateSet
    ledger: Ledger
    metrics: GatewatchMetrics
    registry: CollectorRegistry
    topics: Topics
    wall_ms: Callable[[], int]
    ready: bool = False
    #: last processed (offset, kafka timestamp ms) per input partition
    positions: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: input partition each gate's events arrive on (for tombstones from the timer)
    gate_partition: dict[str, int] = field(default_factory=dict)
    windows_published: list[WindowRecord] = field(default_factory=list)
    alerts: AlertEvaluator | None = None
    #: alert records evaluated but not yet accepted by the broker
    pending_alerts: list[tuple[str, bytes]] = field(default_factory=list)
    broker: BrokerWatch | None = None


def create_app(settings: Settings, gates: GateSet, *,
               registry: CollectorRegistry | None = None,
               wall_ms: Callable[[], int] = _wall_ms,
               partitions: int | None = None) -> Gatewatch:
    """Build a worker's Faust app for ``settings`` and ``gates``.

    ``partitions`` is the input topic's partition count (the state table must be
    co-partitioned with it); it defaults to ``settings.partitions``.
    """
    quiet_repeats()  # aiokafka repeats connection errors every 100 ms while a broker is down
    if settings.broker_compat == "tansu":
        compat.patch_highwaters()
    n_partitions = partitions or settings.partitions
    topics = Topics(settings.topic_prefix)
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{b.strip()}" for b in settings.bootstrap.split(",")],
        broker_credentials=kafka_credentials(settings),
        store="memory://",
        topic_partitions=n_partitions,
        topic_replication_factor=settings.replication,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.advertised_host,  # the URL peers forward API requests to
        web_port=settings.web_port,
        web_tables_enabled=False,  # would expose table keys (plates)
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_router_enabled=True,
        table_standby_replicas=settings.standby_replicas,
        producer_linger=0.005,
        stream_wait_empty=False,
        **compat.faust_settings(settings.broker_compat),
    )
    registry = registry if registry is not None else CollectorRegistry()
    metrics = GatewatchMetrics(registry, gates)
    ledger = Ledger(gates, settings.window_seconds, settings.grace_seconds,
                    settings.idle_seconds, settings.no_data_seconds)
    gw = Gatewatch(app=app, settings=settings, gates=gates, ledger=ledger, metrics=metrics,
                   registry=registry, topics=topics, wall_ms=wall_ms)
    decoder = Decoder(gates.ids(), settings.max_message_bytes)

    events_topic = app.topic(topics.events, key_type=bytes, value_type=bytes,
                             key_serializer="raw", value_serializer="raw",
                             partitions=n_partitions)
    rejected_topic = app.topic(topics.rejected, key_serializer="raw", value_serializer="raw")
    windows_topic = app.topic(topics.windows, key_serializer="raw", value_serializer="raw")
    alerts_topic = app.topic(topics.alerts, key_serializer="raw", value_serializer="raw")
    table = app.Table(STATE_TABLE, default=None, partitions=n_partitions,
                      key_type=bytes, value_type=bytes)

    def lag_samples() -> list[LagSample]:
        out: list[LagSample] = []
        now = wall_ms()
        try:
            consumer = app.consumer
            assigned = [tp for tp in consumer.assignment() if tp.topic == topics.events]
        except Exception:  # noqa: BLE001 - not started yet
            return out
        for tp in sorted(assigned):
            try:
                hw = consumer.highwater(tp)
            except Exception:  # noqa: BLE001 - no fetch yet
                hw = None
            if hw is None:
                continue
            pos = gw.positions.get(tp.partition)
            next_offset = pos[0] + 1 if pos else 0
            behind = max(0, int(hw) - next_offset)
            age = max(0.0, (now - pos[1]) / 1000) if behind and pos else 0.0
            out.append(LagSample(tp.topic, tp.partition, behind, age))
        return out

    def _plain_consumer() -> Any:
        from aiokafka import AIOKafkaConsumer

        return AIOKafkaConsumer(bootstrap_servers=settings.bootstrap.split(","),
                                enable_auto_commit=False, group_id=None, fetch_max_wait_ms=100,
                                **aiokafka_security(settings))

    registry.register(LedgerCollector(ledger, gates, settings.window_seconds, wall_ms,
                                      lag_samples))
    evaluator = AlertEvaluator(
        gates, ledger, raise_hold_seconds=settings.alert_raise_hold_seconds,
        clear_hold_seconds=settings.alert_clear_hold_seconds,
        perishable_max_wait_seconds=settings.perishable_max_wait_seconds,
        runbook_url=settings.runbook())
    gw.alerts = evaluator
    registry.register(AlertCollector(evaluator, wall_ms))

    def apply_records(records: Sequence[Any]) -> list[tuple[bytes, bytes | None, int]]:
        """Apply raw records to the core (sync); return the changelog writes to make.

        ``records`` are aiokafka ConsumerRecords (batch delivery) or Faust Messages
        (stream path): both have topic, partition, offset, timestamp, key and value.
        Each changed vehicle yields one write, to the event's own input partition.
        """
        now = wall_ms()
        changed: dict[tuple[str, str], int] = {}
        processed = duplicates = 0
        rejected: list[tuple[Rejection, Any]] = []
        decode = decoder.decode
        apply = ledger.apply
        for msg in records:
            res = decode(msg.value, msg.key, now)
            if type(res) is CrossingEvent:
                processed += 1
                outcome = apply(res, now)
                if outcome is not DUPLICATE:
                    changed[(res.gate_id, res.vehicle_id)] = msg.partition
                if outcome is not APPLIED:
                    duplicates += 1
            else:
                rejected.append((res, msg))  # type: ignore[arg-type]
        if records:
            last = records[-1]
            ts = last.timestamp or 0
            gw.positions[last.partition] = (last.offset, int(ts * 1000) if ts < 1e11 else ts)
        writes: list[tuple[bytes, bytes | None, int]] = []
        for (gate_id, vehicle_id), partition in changed.items():
            gw.gate_partition[gate_id] = partition
            key = state_key(gate_id, vehicle_id)
            events = ledger.vehicle_state(gate_id, vehicle_id)
            value = encode_state(events) if events else None
            _store_put(table, key, value, partition)
            writes.append((key, value, partition))
        for rej, msg in rejected:
            dead_letter(rej, msg)
        metrics.events_processed.inc(processed)
        if duplicates:
            metrics.events_duplicate.inc(duplicates)
        for book in ledger:
            if book.waits_observed:
                hist = metrics.wait.labels(book.gate_id)
                for w in book.waits_observed:
                    hist.observe(w / 1000)
                book.waits_observed.clear()
        metrics.batches.inc()
        return writes

    async def write_changelog(writes: list[tuple[bytes, bytes | None, int]]) -> None:
        """Send state changes straight to the changelog with the underlying aiokafka
        producer (Faust's per-message FutureMessage/buffer path cost more than the rest
        of the pipeline). Faust flushes this producer before every offset commit, so a
        committed offset never runs ahead of the state it produced."""
        producer = app.producer._ensure_producer()  # type: ignore[attr-defined]
        topic = table.changelog_topic.get_topic_name()
        send = producer.send
        for key, value, partition in writes:
            await send(topic, value, key=key, partition=partition)

    def dead_letter(rej: Rejection, msg: Any) -> None:
        metrics.events_rejected.labels(rej.reason).inc()
        rejected_topic.send_soon(
            key=msg.key, value=rej.raw, headers=[
                ("gatewatch-reason", rej.reason.encode()),
                ("gatewatch-detail", rej.detail.encode()[:500]),
                ("gatewatch-source", f"{msg.topic}/{msg.partition}/{msg.offset}".encode()),
            ])

    async def process(records: Sequence[Any]) -> None:
        """Apply a batch; if that hits a bug, retry record by record and dead-letter
        the record that triggers it (reason ``internal_error``). Re-applying is safe:
        the core is idempotent."""
        try:
            writes = apply_records(records)
        except Exception:
            log.exception("batch of %d records failed; retrying one by one", len(records))
            writes = []
            for msg in records:
                try:
                    writes.extend(apply_records([msg]))
                except Exception as exc:  # noqa: BLE001 - keep the worker alive
                    log.error("record %s/%s/%s dead-lettered: %r", msg.topic, msg.partition,
                              msg.offset, exc)
                    dead_letter(Rejection("internal_error", repr(exc)[:200],
                                          msg.value or b"", msg.key), msg)
        await write_changelog(writes)
        if gw.ready:
            # evaluate the gates this batch touched now, not at the next tick: a threshold
            # crossing reaches gate.alerts within one batch
            touched = {split_key(key)[0] for key, _v, _p in writes}
            if touched:
                gw.pending_alerts.extend(evaluator.evaluate(wall_ms(), touched))
                await _send_pending_alerts()

    app.gatewatch_source_topics = {topics.events}  # type: ignore[attr-defined]
    if settings.batch_delivery:
        app.gatewatch_handlers = {topics.events: process}  # type: ignore[attr-defined]
        app.transport.Consumer = BatchConsumer  # type: ignore[misc]
        app.gatewatch_fetch_max_wait_ms = settings.fetch_max_wait_ms  # type: ignore[attr-defined]
    else:
        app.transport.Consumer = RewindingConsumer  # type: ignore[misc]

    @app.agent(events_topic, name="gate-events")
    async def gate_events(stream: Any) -> None:
        # With batch delivery (the default) records reach ``process`` straight from the
        # consumer and this stream stays idle; without it, this is the path.
        async for batch in stream.noack_take(settings.batch_size,
                                             within=settings.batch_within_seconds):
            await process([event.message for event in batch])
            for event in batch:
                await stream.ack(event)

    @table.on_recover
    async def _rebuild() -> None:
        now = wall_ms()
        records = ledger.rebuild(list(table.data.items()), now)
        for book in ledger:
            if book.last_event_ms is not None:
                book.last_event_wall_ms = now
            else:
                evaluator.reset(book.gate_id)  # not ours (any more)
        owned = {b.gate_id for b in ledger if b.last_event_ms is not None}
        if owned:
            try:
                old = await compat.read_to_end(_plain_consumer, topics.alerts)
                n = evaluator.restore([orjson.loads(r.value) for r in old if r.value], owned)
                if n:
                    log.info("restored %d firing alert(s) from %s", n, topics.alerts)
            except Exception:  # noqa: BLE001 - alerts may then be notified once more
                log.exception("could not restore alert state from %s", topics.alerts)
        for rec in records:
            await _publish_window(rec, republished=True)
        gw.ready = True
        metrics.ready.set(1)
        log.info("state rebuilt: %d vehicles, %d waiting, %d recent windows republished",
                 sum(len(b.vehicles) for b in ledger),
                 sum(sum(b.waiting_count) for b in ledger), len(records))

    def _broker_changed(up: bool) -> None:
        metrics.broker_up.set(1 if up else 0)

    def _recreate_topics() -> None:
        from gatewatch.kafka import ensure_topics

        ensure_topics(settings, progress=log.warning, extra={
            table.changelog_topic.get_topic_name(): n_partitions,
            f"{settings.app_id}-__assignor-__leader": 1})

    async def _broker_topics() -> set[str]:
        client = app.producer._ensure_producer().client  # type: ignore[attr-defined]
        cluster = await client.fetch_all_metadata()
        return set(cluster.topics())

    watch = BrokerWatch(_broker_topics, topics.events, _recreate_topics, _broker_changed)
    gw.broker = watch
    metrics.broker_up.set(1)

    @app.timer(1.0)  # type: ignore[untyped-decorator]
    async def _watch_broker() -> None:
        await watch.check()

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _on_revoked(sender: Any, revoked: Any = None, **kwargs: Any) -> None:
        gw.ready = False
        metrics.ready.set(0)

    async def _publish_window(rec: WindowRecord, republished: bool = False) -> None:
        await windows_topic.send(key=rec.gate_id.encode(), value=encode_window(rec))
        if not republished:
            metrics.windows_closed.labels(rec.closed_by).inc()
        gw.windows_published.append(rec)
        del gw.windows_published[:-100]

    sweep_every = 30
    ticks = {"n": 0}

    @app.timer(1.0)  # type: ignore[untyped-decorator]
    async def _tick() -> None:
        if not gw.ready:
            return
        try:
            await _tick_once()
        except Exception:  # noqa: BLE001 - e.g. broker unreachable: retry next second
            log.exception("periodic window/alert/expiry step failed; retrying")

    send_lock = asyncio.Lock()

    async def _send_pending_alerts() -> None:
        async with send_lock:  # the batch path and the timer both send: keep order, no dups
            pending = gw.pending_alerts
            while pending:  # kept until the broker took them (retried next time)
                gate_id, record = pending[0]
                await alerts_topic.send(key=gate_id.encode(), value=record)
                pending.pop(0)
                metrics.alerts_published.inc()

    async def _tick_once() -> None:
        now = wall_ms()
        for rec in ledger.advance(now):
            await _publish_window(rec)
        gw.pending_alerts.extend(evaluator.evaluate(now))
        await _send_pending_alerts()
        ticks["n"] += 1
        if ticks["n"] % sweep_every:
            return
        await _sweep()

    sweep_chunk = 10_000

    async def _sweep() -> None:
        """Expire old vehicle states, each gate's in chunks of ``sweep_chunk`` vehicles with
        a yield to the event loop between them (a one-pass walk of 300k vehicles held it
        for ~130 ms). Stops for a gate that changed hands or was rebuilt meanwhile."""
        retention_ms = settings.retention_seconds * 1000
        max_wait_ms = settings.max_wait_seconds * 1000
        legacy = False
        for book in list(ledger):
            gate_id = book.gate_id
            partition = gw.gate_partition.get(gate_id)
            if partition is None:
                continue
            # one list of id references (not a tracked object per vehicle)
            ids = None if legacy else list(book.vehicles)
            for start in range(0, 1 if ids is None else len(ids), sweep_chunk):
                if ledger.books.get(gate_id) is not book or not gw.ready \
                        or gw.gate_partition.get(gate_id) != partition:
                    break  # rebalanced or rebuilt while this sweep yielded
                removed, waiting = book.expire(
                    retention_ms, max_wait_ms, copy=legacy,
                    only=None if ids is None else ids[start:start + sweep_chunk])
                if removed:
                    for vid in removed:
                        _store_put(table, state_key(gate_id, vid), None, partition)
                    await write_changelog([(state_key(gate_id, vid), None, partition)
                                           for vid in removed])
                    metrics.vehicles_expired.labels("waiting").inc(waiting)
                    metrics.vehicles_expired.labels("finished").inc(len(removed) - waiting)
                if not legacy:
                    await asyncio.sleep(0)

    api.install(app, gates=gates, ledger=ledger, alerts=evaluator, wall_ms=wall_ms,
                token=settings.api_token,
                cors_origins=settings.api_cors_origins, state_table=STATE_TABLE,
                version=__version__,
                kafka_status=lambda: {"reachable": watch.up,
                                      "unreachable_seconds": round(watch.down_seconds(), 1)})

    @app.page("/metrics")
    async def _metrics(web: Any, request: Any) -> Any:
        return web.bytes(render(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/wall")
    async def _wall(web: Any, request: Any) -> Any:
        html = resources.files("gatewatch").joinpath("data", "wall.html").read_text("utf-8")
        return web.html(html)

    @app.page("/runbook")
    async def _runbook(web: Any, request: Any) -> Any:
        text = resources.files("gatewatch").joinpath("data", "runbook.md").read_text("utf-8")
        return web.text(text, content_type="text/markdown; charset=utf-8")

    @app.page("/healthz")
    async def _healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def _readyz(web: Any, request: Any) -> Any:
        if gw.broker is not None and not gw.broker.up:
            return web.json({"status": "not_ready",
                             "reason": f"Kafka broker unreachable for "
                                       f"{gw.broker.down_seconds():.0f} s"}, status=503)
        if gw.ready and not app.rebalancing:
            return web.json({"status": "ready"})
        return web.json({"status": "not_ready",
                         "reason": "rebalancing or recovering state"}, status=503)

    return gw

"""Batch delivery: hand whole fetched batches of input records to the agent's handler.

Faust delivers every message on its own: a ``Service.wait_first`` with a new task per
message in the consumer's drain loop, a channel queue, and the stream iterator. That
per-event machinery caps an agent at roughly 11k events/s on two cores whatever the
agent does. gatewatch's work per event is a few microseconds, so for the input topic
this consumer skips it: each ``getmany`` result's records for a registered topic go
to the handler in one call, and are then acknowledged in bulk (the same
bookkeeping ``Consumer.ack`` does, once per batch instead of once per message).

Everything else is unchanged: group membership and assignment, generation checks,
flow control during rebalances, offsets committed only after the producer flushed,
and every other topic (changelogs during recovery) still goes through the conductor
one message at a time. ``GATEWATCH_BATCH_DELIVERY=0`` turns this off; the agent then
receives the same records through Faust's stream (``noack_take``). This consumer also
sets the fetch long-poll to ``GATEWATCH_FETCH_MAX_WAIT_MS`` (Faust fixes it at 1.5 s).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set
from typing import Any

from aiokafka.errors import IllegalStateError
from faust.transport.consumer import CONSUMER_FETCHING, ack_lock  # type: ignore[attr-defined]
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer

__all__ = ["BatchConsumer", "BatchHandler", "RewindingConsumer", "rewind"]

log = logging.getLogger(__name__)

#: Receives the raw aiokafka ConsumerRecords of one partition, in offset order.
BatchHandler = Callable[[Sequence[Any]], Awaitable[None]]


class _ShortFetchWaitThread(AIOKafkaConsumerThread):
    """Faust hard-codes ``fetch_max_wait_ms=1500``: with a broker that holds fetches,
    that is up to 1.5 s before a quiet partition's new event is seen. Use the app's
    ``gatewatch_fetch_max_wait_ms`` (``GATEWATCH_FETCH_MAX_WAIT_MS``) instead."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = getattr(self.app, "gatewatch_fetch_max_wait_ms", None)
        if wait_ms is not None:
            consumer._fetch_max_wait_ms = int(wait_ms)  # read when the fetcher starts
        return consumer


class RewindingConsumer(AIOKafkaConsumer):
    """Faust's aiokafka consumer, with partitions that have no committed offset
    rewound to their beginning whenever Faust seeks to the committed offsets.

    Faust (both its own drain loop and :class:`BatchConsumer`) drops records it
    fetched but may not deliver (a rebalance started, the partition is paused) and
    relies on ``seek_to_committed`` to fetch them again. aiokafka's
    ``seek_to_committed`` does nothing for a partition without a committed offset,
    so there the fetch position stayed *after* the dropped records and they were
    never processed. That is what happened when a worker died before its first
    commit and a peer took its partitions over: the peer's first record was the
    partition's last batch (seen: first record at offset 5087 of 5092) and every
    vehicle whose events were in between was counted wrong. Rewinding to the
    beginning re-reads them; the core is idempotent, so re-reading is safe.

    Only the topics named in ``app.gatewatch_source_topics`` are rewound (changelog
    partitions are positioned by Faust's recovery).
    """

    async def seek_to_committed(self) -> Mapping[Any, int]:
        committed = await super().seek_to_committed()
        sources = getattr(self.app, "gatewatch_source_topics", ())
        fresh = [tp for tp, offset in committed.items()
                 if tp.topic in sources and (offset is None or offset <= 0)]
        await rewind(fresh, self.assignment, self._thread.seek_to_beginning)
        return committed


async def rewind(partitions: Sequence[Any], assignment: Callable[[], Set[Any]],
                 seek_to_beginning: Callable[..., Awaitable[None]]) -> list[Any]:
    """Seek ``partitions`` to their beginning, those still assigned: a rebalance may have
    taken some away since the caller listed them, and aiokafka refuses to seek those
    (``IllegalStateError``, which stopped the fetcher and with it the worker). Tried
    again, up to 3 times, if the assignment changes during the seek. Returns the
    partitions sought."""
    fresh = list(partitions)
    for _attempt in range(3):
        fresh = [tp for tp in fresh if tp in assignment()]
        if not fresh:
            return []
        log.info("no committed offset for %s: reading from the beginning",
                 ", ".join(f"{tp.topic}/{tp.partition}" for tp in sorted(fresh)))
        try:
            await seek_to_beginning(*fresh)
            return fresh
        except IllegalStateError as exc:
            log.info("partitions changed while rewinding (%s); trying again", exc)
    return []


class BatchConsumer(RewindingConsumer):
    """Faust's aiokafka consumer with batch delivery for registered topics."""

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ShortFetchWaitThread(self, loop=self.loop, beacon=self.beacon)

    #: topic name -> handler; set by the app factory through ``app.gatewatch_handlers``
    def _handlers(self) -> dict[str, BatchHandler]:
        return getattr(self.app, "gatewatch_handlers", {})

    def _ack_batch(self, tp: Any, offsets: list[int]) -> None:
        with ack_lock:
            committed = self._committed_offset[tp]
            if committed is not None:
                offsets = [o for o in offsets if o >= committed]
            index = self._acked_index[tp]
            fresh = [o for o in offsets if o not in index]
            index.update(fresh)
            self._acked[tp].extend(fresh)
            self._n_acked += len(fresh)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - hot loop
        handlers = self._handlers()
        if not handlers:
            await super()._drain_messages(fetcher)
            return
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        read_offset = self._read_offset
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        app = self.app
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                records, active = await self._wait_next_records(1.0)
                await asyncio.sleep(0)
                if not records or self.should_stop:
                    unset_flag(CONSUMER_FETCHING)
                    continue
                if not self.flow_active:
                    await self.perform_seek()
                    continue
                generation = app.consumer_generation_id
                for tp, recs in records.items():
                    if not recs:
                        continue
                    if app.consumer_generation_id != generation or not self.flow_active:
                        break  # rebalanced: offsets are re-fetched from the committed ones
                    if active is not None and tp not in active \
                            and tp not in self._buffered_partitions:
                        continue
                    # Faust's seek sets the read offset to the *next* offset to read (the
                    # committed one): records at or after it are new. (Skipping the one at
                    # the read offset lost the first uncommitted event after a restart.)
                    r_offset = read_offset[tp]
                    if r_offset is not None and recs[0].offset < r_offset:
                        recs = [r for r in recs if r.offset >= r_offset]
                        if not recs:
                            continue
                    app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    handler = handlers.get(tp.topic)
                    if handler is None:
                        for rec in recs:
                            await self.wait_first(callback(self._to_message(tp, rec)),
                                                  self.suspend_flow.wait())
                            read_offset[tp] = rec.offset
                        continue
                    await handler(recs)
                    if app.consumer_generation_id != generation or not self.flow_active:
                        # a rebalance happened while the handler awaited: Faust has seeked
                        # back to the committed offsets and recovered the tables, so these
                        # records must be neither acked nor marked read; they come again
                        # and are re-applied (idempotently). Marking them read here lost
                        # them for good in the two-worker SIGKILL drill.
                        break
                    self._ack_batch(tp, [r.offset for r in recs])
                    read_offset[tp] = recs[-1].offset + 1
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)

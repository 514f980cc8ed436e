"""One worker's I/O around the pure :class:`~gatewatch.core.processor.Processor`.

:class:`Worker` is what the Faust app's agent, timers and recovery hook call: it
normalises input records, hands them to the processor, and carries out the
:class:`~gatewatch.core.processor.Effects`: changelog writes through the underlying
aiokafka producer, dead letters, window and alert records, metrics. It holds what only
a running worker has (readiness, input positions for lag, alert records not yet
accepted by the broker).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, count
from typing import Any

import orjson
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from gatewatch.agents import compat
from gatewatch.agents.health import BrokerWatch
from gatewatch.alerts.advisories import advisory_order, advisory_states, encode_advisory
from gatewatch.alerts.cap import alert_order, incident_records
from gatewatch.alerts.evaluator import encode_alert, firing_states
from gatewatch.core.processor import Effects, Processor, SourceRecord, StateWrite
from gatewatch.core.reconcile import Pairing
from gatewatch.gates import GateSet
from gatewatch.settings import Settings
from gatewatch.streams.codec import encode_window, format_ms
from gatewatch.streams.records import WindowRecord
from gatewatch.streams.topics import Topics, alert_key
from gatewatch.streams.vocabulary import DIR_NAME
from gatewatch.web.metrics import GatewatchMetrics, LagSample

__all__ = ["SWEEP_EVERY_TICKS", "ProfileSource", "Worker", "encode_reconciliation",
           "partition_of", "source_record", "wall_ms"]

log = logging.getLogger(__name__)

#: vehicles restored per step of a rebuild (~35 ms each on the development machine)
REBUILD_CHUNK = 5_000

#: the expiry sweep runs every this many 1 s ticks
SWEEP_EVERY_TICKS = 30

#: (gate_id, from_ms, to_ms) → the gate's closed windows in that range, e.g. a history
#: store's ``windows``; read after every rebuild so the forecasts start from the past
ProfileSource = Callable[[str, int, int], Sequence[WindowRecord]]


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def source_record(msg: Any) -> SourceRecord:
    """Normalise an aiokafka ConsumerRecord (timestamp in ms) or a Faust Message
    (timestamp in seconds) into a :class:`SourceRecord`."""
    ts = msg.timestamp or 0
    ts_ms = int(ts) if isinstance(msg.timestamp, int) else int(ts * 1000)
    return SourceRecord(msg.topic, msg.partition, msg.offset, ts_ms, msg.key, msg.value)


def encode_reconciliation(gate_id: str, kind: str, p: Pairing) -> bytes:
    """The ``gate.reconciliations`` record of a pairing made (``paired``) or undone
    (``unpaired``): the waiting vehicle's plate and the unmatched read's (normalised),
    the direction, why, and the event time of the unmatched read."""
    return orjson.dumps({"gate_id": gate_id, "kind": kind, "direction": DIR_NAME[p.direction],
                         "plates": [p.waiting_id, p.unmatched_id],
                         "waiting_plate": p.waiting_id, "unmatched_plate": p.unmatched_id,
                         "reason": p.reason, "at": format_ms(p.end_ms)})


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives ``key``."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


def _is_record_error(exc: Exception) -> bool:
    """True for an error about the record itself (retrying cannot help)."""
    from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError

    return isinstance(exc, MessageSizeTooLargeError | RecordTooLargeError)


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


@dataclass
class Worker:
    """Everything one worker holds: the Faust app, its topics and table, and the core."""

    app: Any
    settings: Settings
    gates: GateSet
    processor: Processor
    metrics: GatewatchMetrics
    registry: Any
    topics: Topics
    table: Any
    rejected_topic: Any
    windows_topic: Any
    alerts_topic: Any
    consumer_factory: Callable[[], Any]
    #: partitions of the input topic (gates are keyed by id: gate → partition)
    input_partitions: int = 1
    wall_ms: Callable[[], int] = wall_ms
    ready: bool = False
    #: last processed (offset, kafka timestamp ms) per input (topic, partition)
    positions: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    windows_published: list[WindowRecord] = field(default_factory=list)
    #: alert records (key, value) evaluated but not yet accepted by the broker
    pending_alerts: list[tuple[bytes, bytes]] = field(default_factory=list)
    #: the records of each alert's latest incident this worker read or wrote, oldest first
    #: (the CAP feed's source: :func:`~gatewatch.alerts.cap.incident_records`)
    alert_records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: the same for the advisories of the gates it holds (the CAP feed)
    advisory_records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    broker: BrokerWatch | None = None
    #: closed windows of the past for the forecasts' profiles (None: only this worker's)
    profile_source: ProfileSource | None = None
    #: reconciliation audit records (``gate.reconciliations``); None: not published
    reconciliations_topic: Any = None
    #: ``gate.advisories`` (shipment advisory changes); None: not published
    advisories_topic: Any = None
    ticks: int = 0
    #: recoveries started or partitions revoked so far (a retried rebuild stops when this
    #: moves on)
    recoveries: int = 0
    #: seconds before each new attempt at a failed rebuild (the last repeats)
    rebuild_retry_seconds: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0)
    _send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    # -- input -------------------------------------------------------------------------

    async def process(self, records: Sequence[Any]) -> None:
        """Apply a batch of input records (batch delivery or the stream path)."""
        if not records:
            return
        batch = [source_record(m) for m in records]
        fx = self.processor.apply_batch(batch, self.wall_ms(), evaluate_alerts=self.ready)
        last = batch[-1]
        self.positions[last.topic, last.partition] = (last.offset, last.timestamp_ms)
        for rec, exc in fx.errors:
            if rec is None:
                log.error("batch of %d records failed; retrying one by one", len(batch),
                          exc_info=exc)
            else:
                log.error("record %s/%s/%s dead-lettered: %r", rec.topic, rec.partition,
                          rec.offset, exc)
        for what, exc in fx.failures:
            log.error("%s failed after a batch of %d records (the events are applied; "
                      "it is tried again with the next batch)", what, len(batch),
                      exc_info=exc)
        await self.carry_out(fx)
        self.metrics.batches.inc()

    async def carry_out(self, fx: Effects) -> None:
        """Do and count what the processor asked for; state writes first, so an alert or
        window never reaches Kafka before the state that caused it."""
        m = self.metrics
        if fx.writes:
            await self.write_changelog(fx.writes)
        for dl in fx.dead_letters:
            rej, src = dl.rejection, dl.source
            m.events_rejected.labels(rej.reason).inc()
            if rej.gate_id is not None:  # a configured gate: a bounded label
                m.gate_events_rejected.labels(rej.gate_id, rej.reason).inc()
            self.rejected_topic.send_soon(key=src.key, value=rej.raw, headers=[
                ("gatewatch-reason", rej.reason.encode()),
                ("gatewatch-detail", rej.detail.encode()[:500]),
                ("gatewatch-source", f"{src.topic}/{src.partition}/{src.offset}".encode())])
        for gate_id, err in fx.wait_estimate_errors:
            m.wait_estimate_error.labels(gate_id).observe(err)
        if fx.processed:
            m.events_processed.inc(fx.processed)
        if fx.unchanged:
            m.events_duplicate.inc(fx.unchanged)
        if fx.expired_waiting or fx.expired_finished:
            m.vehicles_expired.labels("waiting").inc(fx.expired_waiting)
            m.vehicles_expired.labels("finished").inc(fx.expired_finished)
        for rec in fx.windows:
            await self.publish_window(rec)
        if fx.reconciliations:
            await self.publish_reconciliations(fx.reconciliations)
        if fx.counts:
            m.count_observations.inc(fx.counts)
        for change in fx.alerts:
            gate = self.gates.get(change.alert.gate_id)
            assert gate is not None  # alerts exist only for configured gates
            record = encode_alert(change, gate, self.settings.runbook())
            self.pending_alerts.append((alert_key(change.alert.alert_id), record))
            self.keep_alert_records([orjson.loads(record)])
        if self.pending_alerts:
            await self.send_pending_alerts()
        for adv in fx.advisories:
            gate = self.gates.get(adv.advisory.gate_id)
            if gate is not None and self.advisories_topic is not None:
                record = encode_advisory(adv, gate)
                await self.advisories_topic.send(key=adv.advisory.advisory_id.encode(),
                                                 value=record)
                self.keep_advisory_records([orjson.loads(record)])

    async def write_changelog(self, writes: Sequence[StateWrite],
                              send: Callable[..., Awaitable[Any]] | None = None) -> None:
        """Send state changes straight to the changelog with the underlying aiokafka
        producer (Faust's per-message FutureMessage/buffer path cost more than the rest
        of the pipeline). Faust flushes this producer before every offset commit, so a
        committed offset never runs ahead of the state it produced."""
        if send is None:
            send = self.app.producer._ensure_producer().send
        topic = self.table.changelog_topic.get_topic_name()
        table = self.table
        for w in writes:
            _store_put(table, w.key, w.value, w.partition)
            try:
                await send(topic, w.value, key=w.key, partition=w.partition)
            except KafkaError as exc:
                if not _is_record_error(exc):
                    raise  # the broker is away: the batch is retried, nothing is committed
                # this one record cannot be written (too large for the broker): dead-letter
                # its key and go on, so one record never stalls the partition
                self.metrics.state_writes_failed.inc()
                log.error("state write to %s/%d failed (%s); dead-lettered",
                          topic, w.partition, type(exc).__name__)
                self.rejected_topic.send_soon(key=w.key, value=b"", headers=[
                    ("gatewatch-reason", b"state_write_failed"),
                    ("gatewatch-detail", f"{type(exc).__name__}: {len(w.value or b'')} "
                                         "bytes".encode()),
                    ("gatewatch-source", f"{topic}/{w.partition}".encode())])

    async def publish_window(self, rec: WindowRecord, republished: bool = False) -> None:
        await self.windows_topic.send(key=rec.gate_id.encode(), value=encode_window(rec))
        if not republished:
            self.metrics.windows_closed.labels(rec.closed_by).inc()
        self.windows_published.append(rec)
        del self.windows_published[:-100]

    async def publish_reconciliations(self, changes: Sequence[tuple[str, str, Pairing]]
                                      ) -> None:
        """Pairings made or undone, to ``gate.reconciliations`` (key = gate_id) for
        audit. They name plates: published there, never logged at INFO."""
        if self.reconciliations_topic is None:
            return
        for gate_id, kind, pairing in changes:
            await self.reconciliations_topic.send(
                key=gate_id.encode(), value=encode_reconciliation(gate_id, kind, pairing))
            self.metrics.reconciliations_published.inc()

    async def send_pending_alerts(self) -> None:
        async with self._send_lock:  # the batch path and the timer both send: keep order
            pending = self.pending_alerts
            while pending:  # kept until the broker took them (retried next time)
                key, record = pending[0]
                await self.alerts_topic.send(key=key, value=record)
                pending.pop(0)
                self.metrics.alerts_published.inc()

    # -- time --------------------------------------------------------------------------

    async def tick(self) -> None:
        """Every second: close due windows, evaluate alerts; every 30th, the sweep."""
        if not self.ready:
            return
        try:
            await self.carry_out(self.processor.tick(self.wall_ms()))
            self.ticks += 1
            if self.ticks % SWEEP_EVERY_TICKS == 0:
                await self.sweep()
        except Exception:  # noqa: BLE001 - e.g. broker unreachable: retry next second
            log.exception("periodic window/alert/expiry step failed; retrying")

    async def sweep(self) -> None:
        """Expire old vehicle states chunk by chunk, yielding to the event loop between
        chunks (a one-pass walk of 300k vehicles held it for ~130 ms)."""
        for fx in self.processor.sweep(proceed=lambda: self.ready):
            await self.carry_out(fx)
            await asyncio.sleep(0)

    # -- recovery ----------------------------------------------------------------------

    async def rebuild(self) -> None:
        """After every recovery: rebuild the core from the state table, restore firing
        alerts from ``gate.alerts`` and the latest count observations from
        ``gate.counts``, republish the last hour's windows, become ready.

        A failed attempt is logged and tried again after :attr:`rebuild_retry_seconds`,
        until it succeeds or a newer rebalance takes over: Faust resumes the input only
        when this returns, so no event is applied to a half-rebuilt core, and the worker
        does not stay not ready until the next rebalance (Faust runs this in a task whose
        exception nobody reads)."""
        self.recoveries += 1
        mine = self.recoveries
        for attempt in count(1):
            try:
                await self._rebuild()
                return
            except Exception:
                delays = self.rebuild_retry_seconds
                delay = delays[min(attempt, len(delays)) - 1]
                log.exception("rebuild after a recovery failed (attempt %d); trying again in "
                              "%.0f s, not ready meanwhile", attempt, delay)
                self.metrics.rebuild_failures.inc()
            await asyncio.sleep(delay)
            if self.recoveries != mine:
                log.warning("a newer rebalance took over the failed rebuild")
                return

    async def _rebuild(self) -> None:
        proc = self.processor
        store = self.table.data
        partitions = getattr(store, "_key_partition", None) or {}
        items = [(k, v, partitions.get(k)) for k, v in list(store.items())]
        # the state is rebuilt in steps of REBUILD_CHUNK vehicles, the event loop serving
        # between them; automatic garbage collection waits until the end (at 200k
        # vehicles its full passes over the growing state stalled single steps for
        # 0.4-0.5 s), and the rebuilt state is then frozen out of later full passes
        gc.disable()
        try:
            for _loaded in proc.rebuild_steps(items, chunk=REBUILD_CHUNK):
                await asyncio.sleep(0)  # serve /healthz and the API between chunks
            fx = proc.finish_rebuild(self.wall_ms(), self.gates_held())
            gc.freeze()
        finally:
            gc.enable()
        if proc.owned_gates():
            try:
                old = await compat.read_to_end(self.consumer_factory, self.topics.alerts)
                docs = [orjson.loads(r.value) for r in old if r.value]
                n = proc.restore_alerts(firing_states(docs))
                self.keep_alert_records(docs)
                if n:
                    log.info("restored %d firing alert(s) from %s", n, self.topics.alerts)
            except Exception:  # noqa: BLE001 - alerts may then be notified once more
                log.exception("could not restore alert state from %s", self.topics.alerts)
            await self.restore_advisories()
        await self.restore_counts()
        for rec in fx.windows:
            await self.publish_window(rec, republished=True)
        await self.load_history()
        self.ready = True
        self.metrics.ready.set(1)
        log.info("state rebuilt: %d vehicles, %d waiting, %d recent windows republished",
                 proc.vehicles_tracked(), proc.vehicles_waiting(), len(fx.windows))

    def keep_alert_records(self, docs: Iterable[Mapping[str, Any]]) -> None:
        """Add ``gate.alerts`` records (written or read back) to :attr:`alert_records`."""
        self.alert_records = incident_records(
            [*chain.from_iterable(self.alert_records.values()), *docs], id_field="alert_id",
            order=alert_order)

    def keep_advisory_records(self, docs: Iterable[Mapping[str, Any]]) -> None:
        """Add ``gate.advisories`` records to :attr:`advisory_records`."""
        self.advisory_records = incident_records(
            [*chain.from_iterable(self.advisory_records.values()), *docs],
            id_field="advisory_id", order=advisory_order)

    async def restore_advisories(self) -> int:
        """Take back the shipment advisories in force from ``gate.advisories`` (for the
        gates this worker holds), so a restart does not publish the same advice again,
        and the CAP feed keeps their records. Returns how many; a failure is logged (the
        advice may then be published once more)."""
        if self.advisories_topic is None:
            return 0
        try:
            old = await compat.read_to_end(self.consumer_factory, self.topics.advisories)
            docs = [orjson.loads(r.value) for r in old if r.value]
            n = self.processor.restore_advisories(advisory_states(docs))
            owned = self.processor.owned_gates()
            self.keep_advisory_records([d for d in docs if d.get("gate_id") in owned])
        except Exception:  # noqa: BLE001 - the advice may then be published once more
            log.exception("could not restore advisories from %s", self.topics.advisories)
            return 0
        if n:
            log.info("restored %d shipment advisory(ies) from %s", n, self.topics.advisories)
        return n

    async def load_history(self) -> int:
        """Give the forecasts the past windows of every gate from ``profile_source``
        (in a thread: it may read a database); a failure only leaves them to this
        worker's own windows. Returns how many windows were added."""
        source = self.profile_source
        if source is None:
            return 0
        from gatewatch.core.estimates import MEMORY_HOURS

        now = self.wall_ms()
        added = 0
        for gate in self.gates.gates:
            try:
                records = await asyncio.to_thread(source, gate.gate_id,
                                                  now - MEMORY_HOURS * 3_600_000, now)
            except Exception:  # noqa: BLE001 - the forecasts then learn from this worker
                log.exception("could not read past windows of %s for the forecast",
                              gate.gate_id)
                continue
            added += self.processor.estimates.add_windows(records)
        log.info("forecast profiles: %d past windows from the history store", added)
        return added

    async def restore_counts(self) -> None:
        """Re-read ``gate.counts`` for the gates this worker holds, so a count check (and a
        ``data_quality`` alert resting on it) survives a restart or rebalance: observations
        are sparse (a manual count per shift), and the consumer resumes after the last one.
        Keeping the latest observation is idempotent; their dead letters went out when they
        were first read, so they are not sent again."""
        held = self.gates_held()
        if not held:
            return
        try:
            old = await compat.read_to_end(self.consumer_factory, self.topics.counts)
        except Exception:  # noqa: BLE001 - count checks then wait for the next observation
            log.exception("could not restore count observations from %s", self.topics.counts)
            return
        mine = [source_record(r) for r in old if r.key is not None and r.key.decode(
            "utf-8", "replace") in held]
        if mine:
            fx = self.processor.apply_batch(mine, self.wall_ms(), evaluate_alerts=False)
            fx.dead_letters.clear()
            fx.counts = 0
            await self.carry_out(fx)

    def gates_held(self) -> set[str] | None:
        """The gates whose input partition this worker holds now (Kafka's default
        partitioner on the gate id), state or not; None if the assignment is unknown."""
        try:
            assigned = {tp.partition for tp in self.app.consumer.assignment()
                        if tp.topic == self.topics.events}
        except Exception:  # noqa: BLE001 - not started
            return None
        return {g.gate_id for g in self.gates.gates
                if partition_of(g.gate_id.encode(), self.input_partitions) in assigned}

    def revoked(self) -> None:
        self.recoveries += 1  # a rebuild being retried stops
        self.ready = False
        self.metrics.ready.set(0)

    # -- reading -----------------------------------------------------------------------

    def not_ready(self) -> str | None:
        """Why the worker is not ready (for /readyz), or None."""
        if self.broker is not None and not self.broker.up:
            return f"Kafka broker unreachable for {self.broker.down_seconds():.0f} s"
        if self.ready and not self.app.rebalancing:
            return None
        return "rebalancing or recovering state"

    def lag_samples(self) -> list[LagSample]:
        """Consumer lag per assigned input partition (``gate.events``, ``gate.counts``;
        fetch high watermark based)."""
        out: list[LagSample] = []
        now = self.wall_ms()
        inputs = (self.topics.events, self.topics.counts)
        try:
            consumer = self.app.consumer
            assigned = [tp for tp in consumer.assignment() if tp.topic in inputs]
        except Exception:  # noqa: BLE001 - not started yet
            return out
        for tp in sorted(assigned):
            try:
                hw = consumer.highwater(tp)
            except Exception:  # noqa: BLE001 - no fetch yet
                hw = None
            if hw is None:
                continue
            pos = self.positions.get((tp.topic, tp.partition))
            next_offset = pos[0] + 1 if pos else 0
            behind = max(0, int(hw) - next_offset)
            age = max(0.0, (now - pos[1]) / 1000) if behind and pos else 0.0
            out.append(LagSample(tp.topic, tp.partition, behind, age))
        return out


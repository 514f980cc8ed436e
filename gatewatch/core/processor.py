"""The batch processor: one decode → apply → effects loop, pure and deterministic.

:class:`Processor` holds the state of the gates a worker owns (the
:class:`~gatewatch.core.ledger.Ledger` and each gate's alert state) and turns input into
:class:`Effects`, the things the caller must then do:

============================  =========================================================
call                          effects
============================  =========================================================
``apply_batch(records, now)`` decode and validate each record, apply the valid events;
                              one state write per changed vehicle (to the record's own
                              partition), a dead letter per bad record, the waits
                              measured, and the alert changes of the gates touched
``tick(now)``                 advance watermarks: closed windows; evaluate every gate's
                              alerts; every ADVISE_EVERY_MS the shipment advisories
``forecast(gate, now)``        the gate's forecast (:mod:`gatewatch.core.forecast`) from
                              the windows it has closed (and those given to
                              ``estimates.add_windows``, e.g. from a history store)
``sweep()``                   expire old vehicle states, one chunk per step:
                              tombstones and how many expired
``rebuild(items, now)``       reset from the state table after a recovery (also in
                              steps: ``rebuild_steps``, ``finish_rebuild``): the last
                              hour's windows to republish (marked ``republished``); the
                              gates held (``gates_held``) keep their alerts, and
                              ``restore_alerts`` gives them back those published as firing
============================  =========================================================

The Faust worker (:mod:`gatewatch.agents.app`), ``gatewatch scenario``, the fault drills'
ground truth and the benchmarks all drive this one object. Nothing here reads a clock
or does I/O: times are explicit milliseconds, records arrive already normalised as
:class:`SourceRecord` (Kafka timestamps in milliseconds), and errors come back as data.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from gatewatch.core.advisories import (
    GENERAL_KEEP_FACTOR,
    Advisory,
    AdvisoryChange,
    GateAdvisories,
    figures_of,
)
from gatewatch.core.congestion import AlertChange, AlertState, GateAlerts, Thresholds
from gatewatch.core.estimates import Estimates
from gatewatch.core.forecast import GateForecast
from gatewatch.core.ledger import APPLIED, DUPLICATE, TOO_OLD, Ledger
from gatewatch.core.recommend import ForecastView
from gatewatch.core.reconcile import Pairing
from gatewatch.core.signals import GateSignals, gate_signals
from gatewatch.gates import GateSet
from gatewatch.settings import Settings
from gatewatch.streams.changelog import encode_state, split_key, state_key
from gatewatch.streams.codec import Decoder
from gatewatch.streams.records import CountObservation, CrossingEvent, Rejection, WindowRecord

__all__ = ["DeadLetter", "Effects", "Processor", "SourceRecord", "StateWrite"]

#: vehicles expired per sweep step (the worker yields to its event loop between steps)
SWEEP_CHUNK = 10_000
#: shipment advisories are re-evaluated this often (they change over hours), or once per
#: advisory raise hold when that is shorter
ADVISE_EVERY_MS = 300_000
#: a gate is reconciled at most this often (wall ms) while its events keep coming
RECONCILE_EVERY_MS = 5_000


class SourceRecord(NamedTuple):
    """One input message, normalised at the adapter (timestamp in milliseconds). A
    named tuple: built once per event on the hot path (a third of a frozen dataclass's
    cost)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class StateWrite:
    """A changelog write: the vehicle's new state, or ``None`` (a tombstone)."""

    key: bytes
    value: bytes | None
    partition: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record to publish on the dead-letter topic, with why."""

    rejection: Rejection
    source: SourceRecord


@dataclass(slots=True)
class Effects:
    """What one call asks the caller to do and count."""

    writes: list[StateWrite] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    windows: list[WindowRecord] = field(default_factory=list)
    alerts: list[AlertChange] = field(default_factory=list)
    advisories: list[AdvisoryChange] = field(default_factory=list)
    #: valid events processed (duplicates included)
    processed: int = 0
    #: valid events that changed no count (duplicates and re-reads)
    unchanged: int = 0
    #: measured waits (gate_id, wait_ms) of vehicles that crossed
    waits: list[tuple[str, int]] = field(default_factory=list)
    #: (gate_id, seconds) estimate shown when a crossed vehicle joined − its real wait
    wait_estimate_errors: list[tuple[str, float]] = field(default_factory=list)
    expired_waiting: int = 0
    expired_finished: int = 0
    #: processing errors (a gatewatch bug): the record (None: the batch) and the exception
    errors: list[tuple[SourceRecord | None, Exception]] = field(default_factory=list)
    #: (what, exception): a step after the events were applied failed (a bug): the
    #: worker logs it and carries on; the state writes of the batch still go out
    failures: list[tuple[str, Exception]] = field(default_factory=list)
    #: reconciliation changes to publish for audit: (gate_id, "paired" | "unpaired", the
    #: pairing); plates belong on the audit topic only, never in metrics or INFO logs
    reconciliations: list[tuple[str, str, Pairing]] = field(default_factory=list)
    #: valid count observations applied (``gate.counts``)
    counts: int = 0


class Processor:
    """The state of the gates one worker holds, and the only way to change it."""

    def __init__(self, gates: GateSet, settings: Settings, counts_topic: str | None = None
                 ) -> None:
        self.gates = gates
        self.settings = settings
        #: records of this topic are count observations (``gate.counts``), not events
        self.counts_topic = counts_topic
        self._gate = {g.gate_id: g for g in gates.gates}
        s = settings
        self.ledger = Ledger(gates, s.window_seconds, s.grace_seconds, s.idle_seconds,
                             s.no_data_seconds, s.retention_seconds, s.reconcile,
                             s.unconfirmed_min_overtakes)
        #: wall time each gate was last reconciled
        self._reconciled_ms: dict[str, int] = {}
        self.decoder = Decoder(gates.ids(), s.max_message_bytes, s.max_future_skew_seconds * 1000)
        self.alerts: dict[str, GateAlerts] = {g.gate_id: self._fresh_alerts(g.gate_id)
                                              for g in gates.gates}
        #: input partition each gate's events arrive on (for tombstones from the sweep)
        self.gate_partition: dict[str, int] = {}
        #: gates whose input partition the worker said it holds at the last rebuild
        self.gates_held: set[str] = set()
        self.advisories: dict[str, GateAdvisories] = {g.gate_id: GateAdvisories(
            g.gate_id, s.advisory_raise_hold_seconds * 1000,
            s.advisory_clear_hold_seconds * 1000) for g in gates.gates}
        self._advised_ms: int | None = None
        #: forecasts and the wait estimates shown, with their scores
        self.estimates = Estimates(gates)

    def _fresh_alerts(self, gate_id: str) -> GateAlerts:
        g = self._gate[gate_id]
        s = self.settings
        return GateAlerts(
            gate_id,
            Thresholds(g.warning_threshold, g.critical_threshold, g.warning_clear,
                       g.critical_clear, s.alert_raise_hold_seconds * 1000,
                       s.alert_clear_hold_seconds * 1000,
                       wait_warning_seconds=g.wait_warning_seconds,
                       wait_critical_seconds=g.wait_critical_seconds),
            perishable_limit_seconds=float(g.perishable_max_wait_seconds
                                           or s.perishable_max_wait_seconds),
            no_data_seconds=self.ledger.books[gate_id].no_data_ms / 1000,
            count_discrepancy_vehicles=s.count_discrepancy_vehicles)

    # -- input -------------------------------------------------------------------------

    def apply_batch(self, records: Sequence[SourceRecord], now_ms: int, *,
                    evaluate_alerts: bool = True) -> Effects:
        """Apply a batch of input records at wall time ``now_ms``.

        If applying hits a bug, the batch is retried record by record and the record
        that triggers it is dead-lettered (reason ``internal_error``); re-applying is
        safe because the core is idempotent, and vehicles changed before the failure
        still get their state write.
        """
        fx = Effects()
        changed: dict[tuple[str, str], int] = {}
        counted: set[str] = set()
        if self.counts_topic is not None and any(r.topic == self.counts_topic
                                                 for r in records):
            records = self._apply_counts(records, now_ms, fx, counted)
        try:
            self._apply(records, now_ms, fx, changed)
        except Exception as exc:  # noqa: BLE001 - a bug must not stop the partition
            fx.errors.append((None, exc))
            fx.dead_letters.clear()
            fx.processed = fx.unchanged = 0
            for rec in records:
                try:
                    self._apply([rec], now_ms, fx, changed)
                except Exception as one:  # noqa: BLE001
                    fx.errors.append((rec, one))
                    fx.dead_letters.append(DeadLetter(Rejection(
                        "internal_error", repr(one)[:200], rec.value or b"", rec.key), rec))
        ledger = self.ledger
        for (gate_id, vehicle_id), partition in changed.items():
            self.gate_partition[gate_id] = partition
            events = ledger.vehicle_state(gate_id, vehicle_id)
            fx.writes.append(StateWrite(state_key(gate_id, vehicle_id),
                                        encode_state(events, now_ms) if events else None,
                                        partition))
        for book in ledger:
            if book.waits_observed:
                fx.waits.extend((book.gate_id, w) for w in book.waits_observed)
                # the crossing's time is taken as the gate's watermark (late events: off
                # by their lateness, under the minute the estimates are kept by)
                crossed = book.windows.watermark_ms
                if crossed is not None:
                    for w in book.waits_observed:
                        err = self.estimates.score(book.gate_id, crossed, w)
                        if err is not None:
                            fx.wait_estimate_errors.append((book.gate_id, err))
                book.waits_observed.clear()
        touched = {gate for gate, _v in changed} | counted
        try:  # the events are applied and their state goes out whatever happens here
            if touched:
                self._reconcile(now_ms, fx, touched)
            if evaluate_alerts and touched:
                fx.alerts.extend(self.evaluate(now_ms, touched))
        except Exception as exc:  # noqa: BLE001 - a bug must not stop the partition
            fx.failures.append(("reconciliation or alert evaluation", exc))
        return fx

    def _apply(self, records: Sequence[SourceRecord], now_ms: int, fx: Effects,
               changed: dict[tuple[str, str], int]) -> None:
        decode = self.decoder.decode
        apply = self.ledger.apply
        for rec in records:
            res = decode(rec.value, rec.key, now_ms)
            if type(res) is CrossingEvent:
                outcome = apply(res, now_ms)
                if outcome is TOO_OLD:
                    fx.dead_letters.append(DeadLetter(Rejection(
                        "too_old", f"occurred_at is more than the retention "
                        f"({self.settings.retention_seconds} s) behind {res.gate_id}'s "
                        "watermark and the vehicle has no state", rec.value or b"", rec.key,
                        res.gate_id), rec))
                    continue
                fx.processed += 1
                if outcome is not DUPLICATE:
                    changed[(res.gate_id, res.vehicle_id)] = rec.partition
                if outcome is not APPLIED:
                    fx.unchanged += 1
            else:
                assert isinstance(res, Rejection)
                fx.dead_letters.append(DeadLetter(res, rec))

    def _apply_counts(self, records: Sequence[SourceRecord], now_ms: int, fx: Effects,
                      counted: set[str]) -> list[SourceRecord]:
        """Apply the count observations among ``records``; returns the other records."""
        rest: list[SourceRecord] = []
        for rec in records:
            if rec.topic != self.counts_topic:
                rest.append(rec)
                continue
            res = self.decoder.decode_count(rec.value, rec.key, now_ms)
            if type(res) is CountObservation:
                self.ledger.books[res.gate_id].observe_count(res)
                fx.counts += 1
                counted.add(res.gate_id)
            else:
                assert isinstance(res, Rejection)
                fx.dead_letters.append(DeadLetter(res, rec))
        return rest

    def _reconcile(self, now_ms: int, fx: Effects, gate_ids: Iterable[str] | None = None,
                   *, force: bool = False) -> None:
        """Reconcile the gates named (all: None) that are due; pairing changes go to
        ``fx.reconciliations``."""
        if not self.settings.reconcile:
            return
        for gate_id in (self.ledger.books if gate_ids is None else gate_ids):
            book = self.ledger.books[gate_id]
            last = self._reconciled_ms.get(gate_id)
            if not book.dirty or (not force and last is not None
                                  and now_ms - last < RECONCILE_EVERY_MS):
                continue
            self._reconciled_ms[gate_id] = now_ms
            _record(fx, gate_id, *book.reconcile())

    # -- time --------------------------------------------------------------------------

    def tick(self, now_ms: int) -> Effects:
        """Advance every gate's watermark to ``now_ms``: reconciliation, closed windows
        (remembered for the forecasts), the expected waits shown (one per minute), alert
        changes."""
        fx = Effects()
        self._reconcile(now_ms, fx)
        fx.windows = self._windows_closed(self.ledger.advance(now_ms))
        for book in self.ledger:
            wm = book.windows.watermark_ms
            if wm is not None and book.last_event_wall_ms is not None:
                self.estimates.note(book.gate_id, wm, self._expected_wait(book.gate_id, wm))
        fx.alerts = self.evaluate(now_ms)
        every = min(ADVISE_EVERY_MS, max(1000, self.settings.advisory_raise_hold_seconds * 1000))
        if self._advised_ms is None or now_ms - self._advised_ms >= every:
            self._advised_ms = now_ms
            fx.advisories = self.advise(now_ms)
        return fx

    def _windows_closed(self, windows: list[WindowRecord]) -> list[WindowRecord]:
        """Remember closed windows for the forecasts (with the backlog when they closed,
        if the window layer did not set it)."""
        out = []
        for w in windows:
            if w.waiting_export is None:
                book = self.ledger.books[w.gate_id]
                w = replace(w, waiting_export=book.waiting_count[0],
                            waiting_import=book.waiting_count[1])
            out.append(w)
        self.estimates.add_windows(out)
        return out

    def _expected_wait(self, gate_id: str, at_ms: int) -> float | None:
        return self.estimates.expected_wait(
            gate_id, at_ms, sum(self.ledger.books[gate_id].waiting_count))

    def forecast(self, gate_id: str, now_ms: int, hours: int = 48,
                 direction: str | None = None) -> GateForecast | None:
        """The gate's forecast, made at its watermark (event time; ``now_ms`` when it has
        none); None for a gate without any event. ``direction`` is accepted for the
        interface: the projection is of both directions together."""
        book = self.ledger.books.get(gate_id)
        if book is None or book.last_event_ms is None:
            return None
        made_at = book.windows.watermark_ms if book.windows.watermark_ms is not None \
            else now_ms
        return self.estimates.forecast(gate_id, made_at, sum(book.waiting_count), hours)

    def reconcile_now(self, now_ms: int) -> Effects:
        """Reconcile every gate now (re-learning the overtaking limits): what a
        straightforward reference expects after the last event."""
        fx = Effects()
        for book in self.ledger:
            book.dirty = book.reconciling
            _record(fx, book.gate_id, *book.reconcile(relearn=True))
            self._reconciled_ms[book.gate_id] = now_ms
        return fx

    def advise(self, now_ms: int) -> list[AdvisoryChange]:
        """Shipment advisory changes of every gate this worker has seen, per direction the
        gate handles (:mod:`gatewatch.core.advisories`)."""
        out: list[AdvisoryChange] = []
        for gate in self.gates.gates:
            book = self.ledger.books[gate.gate_id]
            if book.last_event_wall_ms is None:
                continue
            sig = gate_signals(gate, book, now_ms)
            keeps = float(gate.perishable_max_wait_seconds
                          or self.settings.perishable_max_wait_seconds)
            both: ForecastView | None = None  # one forecast of both directions serves each
            for direction in gate.accepts_directions:
                perishable = gate.accepts("perishable", direction)
                fc = both or self.forecast_for(gate.gate_id, now_ms, direction)
                if fc is not None and fc.direction is None:
                    both = fc
                fig = figures_of(sig, direction, fc,
                                 keeps if perishable else keeps * GENERAL_KEEP_FACTOR,
                                 perishable, now_ms)
                change = self.advisories[gate.gate_id].evaluate(direction, sig, fig, now_ms)
                if change is not None:
                    out.append(change)
        return out

    def forecast_for(self, gate_id: str, now_ms: int, direction: str | None
                     ) -> ForecastView | None:
        """The gate's forecast for ``direction`` (``Processor.forecast`` of
        :mod:`gatewatch.core.forecast`), None while there is none learned from at least a
        day of history."""
        get = getattr(self, "forecast", None)
        if get is None:
            return None
        fc: ForecastView | None = get(gate_id, now_ms, direction=direction)
        if fc is not None and fc.basis != "profile":
            # under a day of history the forecast only extrapolates the last hours (its
            # clearance capacity may read 0 after a start): advice uses the last hour's
            # counts, which know the case (see core.advisories.figures_of)
            return None
        return fc

    def evaluate(self, now_ms: int, gate_ids: Iterable[str] | None = None
                 ) -> list[AlertChange]:
        """Alert changes of every gate this worker has seen (or of those named)."""
        wanted = None if gate_ids is None else set(gate_ids)
        out: list[AlertChange] = []
        for gate in self.gates.gates:
            if wanted is not None and gate.gate_id not in wanted:
                continue
            book = self.ledger.books[gate.gate_id]
            if book.last_event_wall_ms is None:
                continue
            sig = self.signals(gate.gate_id, now_ms)
            out.extend(self.alerts[gate.gate_id].evaluate(sig, now_ms))
        return out

    def sweep(self, proceed: Callable[[], bool] = lambda: True,
              chunk: int = SWEEP_CHUNK) -> Iterator[Effects]:
        """Expire old vehicle states, ``chunk`` vehicles per step (one :class:`Effects`
        each, possibly empty). Finished vehicles go after the retention, waiting ones
        after the max wait, both in the gate's event time. Stops for a gate rebuilt or
        moved to another partition meanwhile, and altogether once ``proceed()`` is false.
        """
        retention_ms = self.settings.retention_seconds * 1000
        max_wait_ms = self.settings.max_wait_seconds * 1000
        for book in list(self.ledger):
            gate_id = book.gate_id
            partition = self.gate_partition.get(gate_id)
            if partition is None:
                continue
            ids = list(book.vehicles)  # one list of id references, not a tuple per vehicle
            for start in range(0, len(ids), chunk):
                if not proceed():
                    return
                if self.ledger.books.get(gate_id) is not book \
                        or self.gate_partition.get(gate_id) != partition:
                    break
                removed, waiting = book.expire(retention_ms, max_wait_ms,
                                               only=ids[start:start + chunk])
                yield Effects(
                    writes=[StateWrite(state_key(gate_id, vid), None, partition)
                            for vid in removed],
                    expired_waiting=waiting, expired_finished=len(removed) - waiting)

    # -- recovery ----------------------------------------------------------------------

    def rebuild(self, items: Iterable[tuple[bytes, bytes | None, int | None]],
                now_ms: int, gates_held: Collection[str] | None = None) -> Effects:
        """Reset from the state table's (key, value, partition) items; returns the
        windows of the last hour to republish (see :meth:`rebuild_steps` and
        :meth:`finish_rebuild`)."""
        for _ in self.rebuild_steps(items):
            pass
        return self.finish_rebuild(now_ms, gates_held)

    def rebuild_steps(self, items: Iterable[tuple[bytes, bytes | None, int | None]],
                      chunk: int = SWEEP_CHUNK) -> Iterator[int]:
        """Reset, then restore ``chunk`` vehicles per step (yields how many so far), so a
        worker can serve between steps; finish with :meth:`finish_rebuild`. The
        partition of each item (None if unknown) is remembered for the expiry sweep, so
        a gate with no event since the restart is still swept."""
        self.ledger.reset()
        self.gate_partition.clear()
        loaded = 0
        batch: list[tuple[bytes, bytes | None]] = []
        for key, value, partition in items:
            if value is None:
                continue
            if partition is not None:
                self.gate_partition[split_key(key)[0]] = partition
            batch.append((key, value))
            if len(batch) >= chunk:
                loaded += self.ledger.load(batch)
                batch = []
                yield loaded
        if batch:
            loaded += self.ledger.load(batch)
            yield loaded

    def finish_rebuild(self, now_ms: int, gates_held: Collection[str] | None = None
                       ) -> Effects:
        """The end of a rebuild: due windows closed (the last hour's to republish, marked
        ``republished``). A gate's last-seen time comes from its data, not from the
        restart.

        ``gates_held``: the gates whose input partition this worker now holds (gate id →
        partition with Kafka's default partitioner), state or not; ``None``: only those
        with restored state. Those gates keep their alert state (and get back their
        firing alerts with :meth:`restore_alerts`) even when their vehicle state expired
        while they were silent; the others lose it (their partition moved elsewhere)."""
        windows = self.ledger.finish_rebuild(now_ms)
        held = set(gates_held or ()) & self._gate.keys()
        for book in self.ledger:
            if book.last_event_ms is None and book.gate_id not in held:
                self.alerts[book.gate_id] = self._fresh_alerts(book.gate_id)
                ga = self.advisories[book.gate_id]
                self.advisories[book.gate_id] = GateAdvisories(
                    ga.gate_id, ga.raise_hold_ms, ga.clear_hold_ms)
        self.gates_held = held
        return Effects(windows=[replace(w, republished=True)
                                for w in self._windows_closed(windows)])

    def restore_alerts(self, states: Iterable[AlertState]) -> int:
        """Re-establish firing alerts published before a restart, for the gates this
        worker holds (:meth:`owned_gates`, with or without vehicle state), so an incident
        already notified is not notified again and still ends resolved. Returns how many."""
        owned = self.owned_gates()
        restored = 0
        for st in states:
            ga = self.alerts.get(st.gate_id)
            if ga is None or st.gate_id not in owned or st.state != "firing":
                continue
            ga.restore(st)
            restored += 1
        return restored

    def restore_advisories(self, advisories: Iterable[Advisory]) -> int:
        """Take back the shipment advisories in force before a restart (not ``normal``),
        for the gates this worker holds and the directions they handle, so coordinators
        are not told the same advice again (:meth:`GateAdvisories.restore`). Returns how
        many."""
        owned = self.owned_gates()
        restored = 0
        for adv in advisories:
            gate = self._gate.get(adv.gate_id)
            if gate is None or adv.gate_id not in owned \
                    or adv.direction not in gate.accepts_directions:
                continue
            self.advisories[adv.gate_id].restore(adv)
            restored += 1
        return restored

    # -- reading -----------------------------------------------------------------------

    def owned_gates(self) -> set[str]:
        """Gates this worker is responsible for: those whose state it holds, and those
        whose input partition it was given at the last :meth:`rebuild` (``gates_held``)."""
        return {b.gate_id for b in self.ledger if b.last_event_ms is not None} | self.gates_held

    def signals(self, gate_id: str, now_ms: int) -> GateSignals:
        """The gate's :class:`GateSignals` at wall time ``now_ms`` (with the calibrated
        expected wait at the gate's watermark)."""
        book = self.ledger.books[gate_id]
        sig = gate_signals(self._gate[gate_id], book, now_ms)
        wm = book.windows.watermark_ms
        if wm is None:
            return sig
        return replace(sig, expected_wait_seconds=self._expected_wait(gate_id, wm))

    def vehicles_tracked(self) -> int:
        return sum(len(b.vehicles) for b in self.ledger)

    def vehicles_waiting(self) -> int:
        return sum(sum(b.waiting_count) for b in self.ledger)


def _record(fx: Effects, gate_id: str, paired: list[Pairing], unpaired: list[Pairing]
            ) -> None:
    fx.reconciliations.extend((gate_id, "unpaired", p) for p in unpaired)
    fx.reconciliations.extend((gate_id, "paired", p) for p in paired)

"""The ledger: exact per-gate queue state derived from per-vehicle events.

``Ledger`` is the pure core the Faust agent drives. It holds, for every configured
gate, each vehicle's distinct events (see :mod:`gatewatch.core.trips`), the
vehicles waiting now, and the gate's event-time windows. Applying an event
re-derives that one vehicle's trips and applies the *difference* in transitions to
the counters, so a late event that re-pairs a trip moves counts instead of adding
to them. Everything takes explicit times; nothing reads a clock.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from heapq import heapify, heappop, heappush
from typing import Final

from gatewatch.core.reconcile import (
    REREAD_MIN_MS,
    Pairing,
    PlateIndex,
    Reconciliation,
    lane_of,
    overtake_limit,
    reconcile,
    reread_interval_ms,
    silence_after,
)
from gatewatch.core.trips import (
    ARRIVAL,
    CROSSING,
    QUEUED,
    UNMATCHED,
    Transition,
    add_event,
    derive_trips,
    transitions,
)
from gatewatch.core.windows import GateWindows
from gatewatch.gates import GateSet
from gatewatch.streams.changelog import VehicleEvent, decode_value, split_key
from gatewatch.streams.records import CountObservation, CrossingEvent, WindowRecord
from gatewatch.streams.vocabulary import CARGO_CODE, DIR_CODE, PERISHABLE, TYPE_CODE

__all__ = ["APPLIED", "ARRIVAL", "DUPLICATE", "TOO_OLD", "UNCHANGED", "WAIT_BUCKETS_MS",
           "ApplyOutcome", "GateBook", "Ledger", "Waiting"]

#: Wait-time histogram buckets: 5 min … 16 days (Dec 2021 waits were 15-17 days).
WAIT_BUCKETS_MS: Final = tuple(s * 1000 for s in (
    300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 345600, 691200, 1382400))


class ApplyOutcome(StrEnum):
    """What applying one valid event did."""

    APPLIED = "applied"      # stored, and it changed the queue or the windows
    UNCHANGED = "unchanged"  # stored (it may matter later), but changed no count: a re-read
    DUPLICATE = "duplicate"  # already known (same id, or same type at the same ms): dropped
    TOO_OLD = "too_old"      # a vehicle without state, older than the gate's horizon: refused


APPLIED: Final = ApplyOutcome.APPLIED
UNCHANGED: Final = ApplyOutcome.UNCHANGED
DUPLICATE: Final = ApplyOutcome.DUPLICATE
TOO_OLD: Final = ApplyOutcome.TOO_OLD


def _diff(old: list[Transition], new: list[Transition]
          ) -> tuple[list[Transition], list[Transition]]:
    """(removed, added) between two small transition multisets."""
    if not old:
        return [], new
    added = list(new)
    removed: list[Transition] = []
    for tr in old:
        if tr in added:
            added.remove(tr)
        else:
            removed.append(tr)
    return removed, added


#: crossed trips per lane the overtaking limit is learned from (the latest ones)
LEARN_TRIPS: Final = 2000
#: the lowest overtaking limit, however quiet a lane
MIN_FLOOR: Final = 5
#: width of the data-quality buckets (event time)
QUALITY_BUCKET_MS: Final = 300_000


@dataclass(frozen=True, slots=True)
class Waiting:
    """A vehicle waiting now (``last_read_ms``: its latest ``queued`` read)."""

    queued_ms: int
    direction: int
    cargo: int
    last_read_ms: int


class GateBook:
    """All state of one gate."""

    __slots__ = ("gate_id", "vehicles", "waiting", "waiting_count", "windows", "totals",
                 "last_event_ms", "last_event_wall_ms", "waits_observed", "_heaps",
                 "no_data_ms", "horizon_ms", "wait_buckets", "wait_sum_ms",
                 "restored_seen_ms", "reconciling", "min_overtakes", "index", "unmatched",
                 "crossed", "outcome", "hourly", "counts_observed", "limit", "_lane_limits",
                 "_lane_version", "quality_version", "quality_cache", "read_tails",
                 "_tails_version", "_interval",
                 "dirty", "aside_count")

    def __init__(self, gate_id: str, windows: GateWindows, no_data_ms: int = 900_000,
                 horizon_ms: int | None = None, reconciling: bool = False,
                 min_overtakes: int = 50) -> None:
        self.gate_id = gate_id
        #: reconciliation (:mod:`gatewatch.core.reconcile`) on; off: the exact ledger alone
        self.reconciling = reconciling
        self.min_overtakes = min_overtakes
        #: vehicles by plate shape, unmatched trip ends (vehicle, end ms, direction) and
        #: crossed trips (queued ms, crossed ms) by lane (:func:`lane_of`: direction, and
        #: fruit or not: a green lane for fruit overtakes other cargo): what reconcile()
        #: reads
        self.index = PlateIndex()
        self.unmatched: set[tuple[str, int, int]] = set()
        self.crossed: dict[int, list[tuple[int, int]]] = {k: [] for k in range(4)}
        #: the latest reconciliation, and how many vehicles it set aside by direction
        self.outcome = Reconciliation(limit=min_overtakes)
        self.aside_count = [0, 0]
        self.limit = min_overtakes
        #: lane -> (its version when learned, the limit learned from it); a lane's version
        #: changes with every trip added to or dropped from it
        self._lane_limits: dict[int, tuple[int, int]] = {}
        self._lane_version = [0] * 4
        #: per vehicle, its crossed trips that were re-read: (crossed ms, ms from the last
        #: read to the crossing), what the re-read rule learns the camera's interval from
        #: (:func:`reread_interval_ms`); its version, and the interval learned for a
        #: (version, watermark 5 minutes)
        self.read_tails: dict[str, tuple[tuple[int, int], ...]] = {}
        self._tails_version = 0
        self._interval: tuple[tuple[int, int], int | None] | None = None
        #: reconcile() is due: the waiting vehicles, unmatched ends or crossings changed
        self.dirty = False
        #: transitions by event-time hour: arrivals, ends, unmatched ends (by direction)
        self.hourly: dict[int, list[int]] = {}
        #: bumped when the data-quality view may have changed; the view cached for it
        self.quality_version = 0
        self.quality_cache: tuple[tuple[int, int | None], object] | None = None
        #: the latest count observation of each direction (``gate.counts``)
        self.counts_observed: dict[int, CountObservation] = {}
        #: events of vehicles without state older than watermark − horizon are refused
        #: (the retention: finished trips older than that are forgotten); None: no check
        self.horizon_ms = horizon_ms
        #: wall-clock silence after which the gate is "no data" (never "zero waiting")
        self.no_data_ms = no_data_ms
        self.vehicles: dict[str, list[VehicleEvent]] = {}
        self.waiting: dict[str, Waiting] = {}
        self.waiting_count = [0, 0]
        self.windows = windows
        #: transitions of the event set, by ``kind * 2 + direction``: those of the vehicles
        #: held plus those expired since the worker started (for the _total counters)
        self.totals = [0] * 6
        #: measured waits of those crossings, by bucket of :data:`WAIT_BUCKETS_MS` (the last
        #: bucket: longer), and their sum: the wait histogram, a function of the event set
        self.wait_buckets = [0] * (len(WAIT_BUCKETS_MS) + 1)
        self.wait_sum_ms = 0
        self.last_event_ms: int | None = None
        self.last_event_wall_ms: int | None = None
        #: after a rebuild: the latest wall time a restored vehicle was changed at
        self.restored_seen_ms: int | None = None
        #: waits (ms) of crossings first derived since the caller last took them
        self.waits_observed: list[int] = []
        #: min-heaps of (queued_ms, vehicle) per direction and for perishable cargo, with
        #: lazy deletion, so the oldest wait costs O(log n) per scrape, not a full scan
        self._heaps: dict[tuple[str, int], list[tuple[int, str]]] = {
            ("d", 0): [], ("d", 1): [], ("c", PERISHABLE): []}

    def has_data(self, now_ms: int) -> bool:
        """True if an event reached the worker within ``no_data_ms`` of ``now_ms``."""
        last = self.last_event_wall_ms
        return last is not None and now_ms - last <= self.no_data_ms

    def _set_waiting(self, vehicle_id: str, events: list[VehicleEvent]) -> None:
        trips = derive_trips(events)
        if self.reconciling:
            tails: tuple[tuple[int, int], ...] = ()
            for tr in trips:
                if tr.end_kind == CROSSING and tr.end_ms is not None \
                        and tr.queued_ms is not None and tr.last_read_ms is not None \
                        and tr.last_read_ms - tr.queued_ms >= REREAD_MIN_MS:
                    tails += ((tr.end_ms, tr.end_ms - tr.last_read_ms),)
            if tails != self.read_tails.get(vehicle_id, ()):
                if tails:
                    self.read_tails[vehicle_id] = tails
                else:
                    del self.read_tails[vehicle_id]
                self._tails_version += 1
        last = trips[-1] if trips else None
        was = self.waiting.pop(vehicle_id, None)
        # the latest outcome may set this vehicle aside until reconcile() runs again:
        # aside_count counts such vehicles only while they wait (by their direction now)
        aside = self.reconciling and self.outcome.reason(vehicle_id) is not None
        if was is not None:
            self.waiting_count[was.direction] -= 1
            if aside:
                self.aside_count[was.direction] -= 1
        if last is not None and last.waiting and last.queued_ms is not None:
            now = Waiting(last.queued_ms, last.direction, last.cargo,
                          last.last_read_ms or last.queued_ms)
            self.waiting[vehicle_id] = now
            self.waiting_count[last.direction] += 1
            if aside:
                self.aside_count[last.direction] += 1
            if self.reconciling and now != was:
                self.dirty = True
            if was is None or was.queued_ms != last.queued_ms:
                item = (last.queued_ms, vehicle_id)
                heappush(self._heaps[("d", last.direction)], item)
                cargo_heap = self._heaps.get(("c", last.cargo))
                if cargo_heap is not None:
                    heappush(cargo_heap, item)
        elif was is not None and self.reconciling:
            self.dirty = True

    def _track(self, vehicle_id: str, tr: Transition, sign: int) -> None:
        """Keep what reconciliation and the data-quality view read in step with a
        transition added (+1) or retracted (−1)."""
        kind, t, direction, wait = tr
        self.quality_version += 1
        row = self.hourly.get(t - t % QUALITY_BUCKET_MS)
        if row is None:
            row = self.hourly[t - t % QUALITY_BUCKET_MS] = [0] * 6
        if kind == ARRIVAL:
            row[direction] += sign
            return
        row[2 + direction] += sign
        if wait == UNMATCHED:
            row[4 + direction] += sign
            item = (vehicle_id, t, direction)
            if sign > 0:
                self.unmatched.add(item)
            else:
                self.unmatched.discard(item)
            self.dirty = self.reconciling
        elif kind == CROSSING and wait >= 0:
            qe = (t - wait, t)
            if sign > 0:
                lane = lane_of(direction, self._cargo_at(vehicle_id, t - wait))
                insort(self.crossed[lane], qe)
                self._lane_version[lane] += 1
            else:
                self._drop_crossed(direction, qe)
            self.dirty = self.reconciling

    def _cargo_at(self, vehicle_id: str, queued_ms: int) -> int:
        """Cargo code of the vehicle's ``queued`` read at ``queued_ms`` (0 if not found)."""
        events = self.vehicles.get(vehicle_id, ())
        for e in events:
            if e[0] == queued_ms and e[1] == QUEUED:
                return e[3]
        return 0

    def _drop_crossed(self, direction: int, qe: tuple[int, int]) -> None:
        for lane in (direction * 2, direction * 2 + 1):
            line = self.crossed[lane]
            i = bisect_left(line, qe)
            if i < len(line) and line[i] == qe:
                del line[i]
                self._lane_version[lane] += 1
                return

    def reconcile(self, *, relearn: bool = False) -> tuple[list[Pairing], list[Pairing]]:
        """Re-derive which waiting vehicles are set aside (:func:`reconcile`), if due
        (``relearn``: even if nothing changed); returns the pairings made and those
        undone. The overtaking limit is learned from each lane's latest
        :data:`LEARN_TRIPS` crossed trips (a lane's limit is recomputed only when the lane
        changed), so the outcome is a function of the state, whatever the order events
        came in."""
        if not self.reconciling or not (self.dirty or relearn):
            return [], []
        wm = self.windows.watermark_ms
        limits: dict[int, int] = {}
        due: dict[int, int] = {}
        for lane, line in self.crossed.items():
            key = self._lane_version[lane]
            have = self._lane_limits.get(lane)
            if have is None or have[0] != key:
                recent = sorted(line, key=lambda qe: qe[1])[-LEARN_TRIPS:]
                have = (key, overtake_limit(recent, 0))
                self._lane_limits[lane] = have
            # a quiet lane: the floor is half its crossings of the last 6 hours, at least 5
            lately = len(line) - bisect_right(line, (wm - 21_600_000, 1 << 62)) \
                if wm is not None else 2 * self.min_overtakes
            limits[lane] = max(have[1], MIN_FLOOR, min(self.min_overtakes, lately // 2))
            due[lane] = max(MIN_FLOOR, have[1] // 3)  # the 99th percentile itself
        self.limit = max(limits.values())
        old = self.outcome
        new = reconcile(self.waiting, self.vehicles, self.unmatched, self.index, self.crossed,
                        limits, wm, self.reread_interval(wm), due)
        self.outcome, self.dirty = new, False
        self.quality_cache = None  # what is set aside changed: the view is recomputed
        aside = [0, 0]
        for vid in new.set_aside():
            aside[self.waiting[vid].direction] += 1
        self.aside_count = aside
        before = old.set_aside()
        for vid in before:
            w = self.waiting.get(vid)
            if w is not None and new.reason(vid) is None:
                # back in the backlog: the oldest-wait heaps dropped it while set aside
                heappush(self._heaps[("d", w.direction)], (w.queued_ms, vid))
                cargo_heap = self._heaps.get(("c", w.cargo))
                if cargo_heap is not None:
                    heappush(cargo_heap, (w.queued_ms, vid))
        paired = [p for v, p in new.pairs.items() if old.pairs.get(v) != p]
        unpaired = [p for v, p in old.pairs.items() if new.pairs.get(v) != p]
        return paired, unpaired

    def reread_interval(self, watermark_ms: int | None) -> int | None:
        """How often the queue camera re-reads waiting vehicles (:func:`reread_interval_ms`;
        ``None``: it does not), learned again when a re-read trip crossed or expired, or
        the watermark entered a new 5 minutes."""
        if watermark_ms is None:
            return None
        key = (self._tails_version, watermark_ms // 300_000)
        if self._interval is None or self._interval[0] != key:
            tails = [t for v in self.read_tails.values() for t in v]
            self._interval = (key, reread_interval_ms(tails, watermark_ms))
        return self._interval[1]

    def reread_silence(self, watermark_ms: int | None) -> int | None:
        """How long a waiting vehicle may go unread before it is unconfirmed; ``None``:
        the camera does not re-read."""
        interval = self.reread_interval(watermark_ms)
        return silence_after(interval) if interval else None

    @property
    def set_aside(self) -> dict[str, str]:
        """Waiting vehicles reconciliation set aside → why (``paired``,
        ``duplicate_read``, ``unconfirmed``). Between two reconciliations a vehicle set
        aside may have crossed: only those still waiting are in it."""
        waiting = self.waiting
        return {vid: why for vid, why in self.outcome.set_aside().items() if vid in waiting}

    def aside_waiting(self, *reasons: str) -> list[Waiting]:
        """The waiting vehicles set aside for one of ``reasons``."""
        waiting = self.waiting
        return [w for vid, why in self.outcome.set_aside().items()
                if why in reasons and (w := waiting.get(vid)) is not None]

    def confirmed_waiting(self, direction: int) -> int:
        """Vehicles waiting in ``direction``, less those set aside by reconciliation."""
        return self.waiting_count[direction] - self.aside_count[direction]

    def observe_count(self, obs: CountObservation) -> bool:
        """Keep the latest count observation of its direction; False if not newer."""
        direction = DIR_CODE[obs.direction]
        have = self.counts_observed.get(direction)
        if have is not None and (have.occurred_at_ms, have.observation_id) >= (
                obs.occurred_at_ms, obs.observation_id):
            return False
        self.counts_observed[direction] = obs
        return True

    def apply(self, ev: CrossingEvent, wall_ms: int) -> ApplyOutcome:
        """Apply one valid event; returns what it did."""
        vid = ev.vehicle_id
        events = self.vehicles.get(vid)
        t = ev.occurred_at_ms
        item: VehicleEvent = (t, TYPE_CODE[ev.type], DIR_CODE[ev.direction],
                              CARGO_CODE[ev.cargo], ev.event_id)
        if events is None:
            wm = self.windows.watermark_ms
            if self.horizon_ms is not None and wm is not None and t < wm - self.horizon_ms:
                # behind the horizon: a vehicle with no state could have finished and been
                # forgotten already, so applying it could count a trip twice
                return TOO_OLD
            events = []
            old: list[Transition] = []
        else:
            old = transitions(derive_trips(events))
        if not add_event(events, item):
            return DUPLICATE
        if self.reconciling and vid not in self.vehicles:
            self.index.add(vid)
        self.vehicles[vid] = events
        # only a new event is a sign of life: a producer resending the same message is not
        self.windows.observe(t, wall_ms)
        self.last_event_wall_ms = wall_ms
        if self.last_event_ms is None or t > self.last_event_ms:
            self.last_event_ms = t
        trips = derive_trips(events)
        removed, added = _diff(old, transitions(trips))
        if not removed and not added:
            if self.reconciling and vid in self.waiting:
                self._set_waiting(vid, events)  # a re-read: its last read moved
            return UNCHANGED
        for tr in removed:
            self.windows.apply(tr, -1)
            self._count(tr, -1)
            self._track(vid, tr, -1)
        for tr in added:
            self.windows.apply(tr, +1)
            self._count(tr, +1)
            self._track(vid, tr, +1)
            if tr[3] >= 0:
                self.waits_observed.append(tr[3])
        self._set_waiting(vid, events)
        return APPLIED

    def _count(self, tr: Transition, sign: int) -> None:
        """Add (+1) or retract (−1) a transition in the totals and the wait histogram."""
        kind, _t, direction, wait = tr
        self.totals[kind * 2 + direction] += sign
        if kind == CROSSING and wait >= 0:
            self.wait_buckets[bisect_left(WAIT_BUCKETS_MS, wait)] += sign
            self.wait_sum_ms += sign * wait

    def load(self, vehicle_id: str, events: list[VehicleEvent],
             seen_ms: int | None = None) -> None:
        """Restore one vehicle's events (recovery), last changed at wall time ``seen_ms``;
        windows are filled without lateness."""
        if self.reconciling and vehicle_id not in self.vehicles:
            self.index.add(vehicle_id)
        self.vehicles[vehicle_id] = events
        if seen_ms is not None and (self.restored_seen_ms is None
                                    or seen_ms > self.restored_seen_ms):
            self.restored_seen_ms = seen_ms
        for tr in transitions(derive_trips(events)):
            self.windows.apply(tr, +1, force=True)
            self._count(tr, +1)
            self._track(vehicle_id, tr, +1)
        if events:
            last = max(e[0] for e in events)
            if self.last_event_ms is None or last > self.last_event_ms:
                self.last_event_ms = last
        self._set_waiting(vehicle_id, events)

    def expire(self, retention_ms: int, max_wait_ms: int,
               only: Iterable[str] | None = None) -> tuple[list[str], int]:
        """Drop finished vehicles idle past retention and waiting ones past max wait.

        Returns (vehicle ids removed, how many of them were still waiting). ``only``
        limits the check to those vehicle ids (the worker sweeps in chunks and yields to
        the event loop between them). The state is walked in place and only the ids to
        drop are collected: copying every vehicle into a list of (id, events) tuples made
        hundreds of thousands of tracked objects per sweep, and the full garbage-collector
        passes they set off stalled the event loop for 0.7-0.9 s with 300k vehicles.
        """
        wm = self.windows.watermark_ms
        if wm is None:
            return [], 0
        vehicles, waiting = self.vehicles, self.waiting
        wait_cutoff, done_cutoff = wm - max_wait_ms, wm - retention_ms
        if only is None:
            items: Iterable[tuple[str, list[VehicleEvent]]] = vehicles.items()
        else:
            items = ((vid, ev) for vid in only if (ev := vehicles.get(vid)) is not None)
        for start in [s for s in self.hourly if s < wm - 90_000_000]:
            del self.hourly[start]  # data-quality buckets older than 25 h
        pairs = self.outcome.pairs
        removed = [vid for vid, events in items
                   if ((w := waiting.get(vid)) is not None and w.queued_ms < wait_cutoff)
                   or (w is None and (not events or events[-1][0] < done_cutoff))
                   or (w is not None and (p := pairs.get(vid)) is not None
                       and p.end_ms < done_cutoff)]
        if pairs and removed:
            # a paired vehicle goes with the unmatched end it was paired with
            partner = {p.unmatched_id: v for v, p in pairs.items()}
            gone = set(removed)
            removed += [v for u in list(gone) if (v := partner.get(u)) is not None
                        and v not in gone and v in vehicles]
        expired_waiting = 0
        for vid in removed:
            w = waiting.pop(vid, None)
            events = vehicles.pop(vid)
            if w is not None:
                self.waiting_count[w.direction] -= 1
                if vid in pairs:
                    self.aside_count[w.direction] -= 1
                    del pairs[vid]
                else:
                    expired_waiting += 1
                    reason = self.outcome.reason(vid)
                    if reason is not None:
                        self.outcome.duplicates.pop(vid, None)
                        self.outcome.unconfirmed.discard(vid)
                        self.aside_count[w.direction] -= 1
            if self.reconciling:
                self.index.remove(vid)
                if self.read_tails.pop(vid, None) is not None:
                    self._tails_version += 1
                for tr in transitions(derive_trips(events)):
                    if tr[0] != ARRIVAL and (tr[3] == UNMATCHED or tr[3] >= 0):
                        self._untrack_end(vid, tr)
        return removed, expired_waiting

    def _untrack_end(self, vehicle_id: str, tr: Transition) -> None:
        """Forget an expired trip end in what reconcile() reads (not in the hourly
        counts: those are history)."""
        kind, t, direction, wait = tr
        if wait == UNMATCHED:
            self.unmatched.discard((vehicle_id, t, direction))
        elif kind == CROSSING:
            self._drop_crossed(direction, (t - wait, t))
        self.dirty = True

    def oldest_waiting_ms(self, direction: int | None = None, cargo: int | None = None
                          ) -> int | None:
        """Queued time of the oldest vehicle still waiting, by direction or cargo."""
        if direction is None and cargo is None:
            firsts = [t for d in (0, 1) if (t := self.oldest_waiting_ms(direction=d)) is not None]
            return min(firsts) if firsts else None
        heap = self._heaps[("d", direction)] if direction is not None else \
            self._heaps.get(("c", cargo if cargo is not None else -1))
        if heap is None:
            return None
        waiting = self.waiting
        reason = self.outcome.reason
        if len(heap) > 64 and len(heap) > 2 * len(waiting) + 64:
            heap[:] = [(t, v) for t, v in heap if (w := waiting.get(v)) is not None
                       and w.queued_ms == t]
            heapify(heap)
        while heap:
            t, vid = heap[0]
            w = waiting.get(vid)
            if w is not None and w.queued_ms == t and (
                    direction is None or w.direction == direction) and (
                    cargo is None or w.cargo == cargo) and reason(vid) is None:
                return t
            heappop(heap)
        return None


class Ledger:
    """Gate books for every configured gate."""

    def __init__(self, gates: GateSet, window_seconds: int, grace_seconds: int,
                 idle_seconds: int, no_data_seconds: int = 900,
                 retention_seconds: int | None = None, reconciling: bool = False,
                 min_overtakes: int = 50) -> None:
        self.gates = gates
        horizon = None if retention_seconds is None else retention_seconds * 1000
        self.books: dict[str, GateBook] = {
            g.gate_id: GateBook(g.gate_id, GateWindows(
                g.gate_id, window_seconds * 1000, grace_seconds * 1000, idle_seconds * 1000),
                (g.no_data_seconds or no_data_seconds) * 1000, horizon, reconciling,
                min_overtakes)
            for g in gates.gates
        }
        self._settings = (window_seconds, grace_seconds, idle_seconds, no_data_seconds,
                          retention_seconds, reconciling, min_overtakes)
        self.duplicates = 0

    def apply(self, ev: CrossingEvent, wall_ms: int) -> ApplyOutcome:
        outcome = self.books[ev.gate_id].apply(ev, wall_ms)
        if outcome is not APPLIED:
            self.duplicates += 1
        return outcome

    def vehicle_state(self, gate_id: str, vehicle_id: str) -> list[VehicleEvent] | None:
        return self.books[gate_id].vehicles.get(vehicle_id)

    def advance(self, wall_ms: int) -> list[WindowRecord]:
        out: list[WindowRecord] = []
        for book in self.books.values():
            out.extend(book.windows.advance(wall_ms, (book.confirmed_waiting(0),
                                                      book.confirmed_waiting(1))))
        return out

    def reset(self) -> None:
        """Forget everything (before a rebuild from the changelog)."""
        fresh = Ledger(self.gates, *self._settings)
        self.books = fresh.books

    def load(self, items: Iterable[tuple[bytes, bytes | None]]) -> int:
        """Restore vehicles from changelog (key, value) pairs (recovery, after
        :meth:`reset`); returns how many were loaded. Call :meth:`finish_rebuild` after
        the last."""
        n = 0
        for key, value in items:
            gate_id, vehicle_id = split_key(key)
            book = self.books.get(gate_id)
            if book is None or value is None:
                continue
            events, seen = decode_value(value)
            book.load(vehicle_id, events, seen)
            n += 1
        return n

    def finish_rebuild(self, wall_ms: int) -> list[WindowRecord]:
        """Close what was due while the worker was away; returns the windows to republish.

        A gate's last-seen time comes from its data: the latest wall time a restored
        vehicle of it was changed at (its latest event time for values written before that
        was recorded), never later than ``wall_ms``; not from the restart: a feed that was
        dead before a restart is still dead after it, and a replayed old log is not
        "silent for years". Windows that had already closed more than an hour before the
        restored watermark are closed silently (they were published before the restart);
        the last hour's are returned so a window that closed during a crash is not lost
        (consumers treat ``gate_id`` + ``window_start`` as the record's identity).
        """
        out: list[WindowRecord] = []
        for book in self.books.values():
            last = book.last_event_ms
            if last is None:
                continue
            seen = min(last if book.restored_seen_ms is None else book.restored_seen_ms,
                       wall_ms)
            book.windows.observe(last, seen)
            book.last_event_wall_ms = seen
            horizon = last - 3_600_000
            for rec in book.windows.advance(wall_ms, (book.confirmed_waiting(0),
                                                      book.confirmed_waiting(1))):
                if rec.end_ms >= horizon:
                    out.append(rec)
        return out

    def rebuild(self, items: Iterable[tuple[bytes, bytes | None]], wall_ms: int
                ) -> list[WindowRecord]:
        """Reset, restore from (changelog key, value) pairs and finish (see
        :meth:`finish_rebuild`); returns the windows to republish."""
        self.reset()
        self.load(items)
        return self.finish_rebuild(wall_ms)

    def __iter__(self) -> Iterator[GateBook]:
        return iter(self.books.values())

    def waiting_total(self, gate_id: str) -> int:
        return sum(self.books[gate_id].waiting_count)

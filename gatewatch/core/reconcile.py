"""Reconciliation: a backlog that stays true when plate readers miss and misread.

The ledger is exact for the events it is given; readers miss a few percent of plates
and misread 1-3 % (0/O/D, 8/B, 1/I, a dropped character: :mod:`gatewatch.streams.plates`).
A missed or misread ``crossed`` leaves a phantom truck waiting; a misread ``queued``
leaves a phantom truck and an unmatched crossing. Reconciliation *sets aside* such
waiting vehicles: they leave the backlog (``gate_vehicles_waiting``) and are shown on
their own, and they come back as soon as the evidence goes (the true event arrives, or
the vehicle is read again). It never changes an event or a count of transitions.

:func:`reconcile` is a pure function of a gate's state at one instant (its waiting
vehicles, its unmatched trip ends and its crossed trips), so the result does not depend
on the order events arrived in. Three rules, in this order:

1. **Paired** (``paired``): an *unmatched end* (a ``crossed`` or ``withdrawn`` of a plate
   with no ``queued`` read before it) is paired with the waiting vehicle of the same
   direction, queued before that end, whose plate is one OCR-confusion edit away, when
   exactly one such vehicle exists (two or more: ambiguous, nothing is paired). Ends are
   taken oldest first; a vehicle is paired at most once. The pairing says which plates
   and why (``confusion 0/O``, ``dropped 7``).
2. **Duplicate read** (``duplicate_read``): a waiting vehicle read once, one confusion
   edit away from another vehicle of the same direction that was in the queue at that
   moment (a finished trip from its first read to its end spans the read, or a waiting
   vehicle read again whose reads span it, or, where the camera re-reads, a waiting
   vehicle due for a re-read then that did not come: read last within 1.5 intervals
   before it), is a misread re-read of that vehicle: a
   confusion substitution, or a dropped character (:class:`PlateIndex` keeps every
   plate with one character dropped, so the longer twin is one lookup away).
3. **Unconfirmed** (``unconfirmed``): a waiting vehicle overtaken, since it was last
   read, by more vehicles than the gate allows: more crossed vehicles of its lane (its
   direction, fruit or not: a green lane for fruit overtakes other cargo by design)
   joined the queue after it and crossed after its last read than the lane's limit,
   learned from the lane's own crossed trips (3 × the 99th percentile of how many
   vehicles of the lane overtook each of them) with a floor:
   ``GATEWATCH_UNCONFIRMED_MIN_OVERTAKES``, or half the lane's crossings of the last 6
   hours if fewer (at least 5), so a quiet lane is judged in hours, not days. Also
   unconfirmed: where the queue camera re-reads waiting vehicles, a vehicle not read for
   2.5 × the camera's re-read interval (at least an hour), the interval learned from
   crossed trips (:func:`reread_interval_ms`): it has left unseen, or it is a misread
   plate no truck has. And a vehicle that missed its re-read (unread for 1.2 intervals)
   and was overtaken since its last read by more than the lane's 99th percentile (at
   least 5): two weak pieces of evidence that together say it left. Read again, it is
   waiting again.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from gatewatch.core.trips import derive_trips
from gatewatch.streams.changelog import VehicleEvent
from gatewatch.streams.plates import canonical, confusion_edit, deletions
from gatewatch.streams.vocabulary import PERISHABLE

__all__ = ["DUPLICATE_READ", "LEARN_TAILS", "MIN_SILENCE_MS", "PAIRED", "REREAD_MIN_MS",
           "UNCONFIRMED", "Pairing", "PlateIndex", "Reconciliation", "lane_of",
           "overtake_limit", "reconcile", "reread_interval_ms", "silence_after"]

PAIRED: Final = "paired"
DUPLICATE_READ: Final = "duplicate_read"
UNCONFIRMED: Final = "unconfirmed"

_MAX: Final = 1 << 62


class WaitingVehicle(Protocol):
    """What reconciliation reads of a waiting vehicle."""

    @property
    def queued_ms(self) -> int: ...
    @property
    def direction(self) -> int: ...
    @property
    def last_read_ms(self) -> int: ...
    @property
    def cargo(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Pairing:
    """An unmatched end paired with a waiting vehicle (rule 1)."""

    waiting_id: str
    unmatched_id: str
    end_ms: int
    direction: int
    reason: str


@dataclass(slots=True)
class Reconciliation:
    """The outcome for one gate: which waiting vehicles are set aside, and why."""

    pairs: dict[str, Pairing] = field(default_factory=dict)
    #: waiting id → the vehicle it is a misread re-read of
    duplicates: dict[str, str] = field(default_factory=dict)
    unconfirmed: set[str] = field(default_factory=set)
    limit: int = 0

    def reason(self, vehicle_id: str) -> str | None:
        if vehicle_id in self.pairs:
            return PAIRED
        if vehicle_id in self.duplicates:
            return DUPLICATE_READ
        if vehicle_id in self.unconfirmed:
            return UNCONFIRMED
        return None

    def set_aside(self) -> dict[str, str]:
        out = dict.fromkeys(self.unconfirmed, UNCONFIRMED)
        out.update(dict.fromkeys(self.duplicates, DUPLICATE_READ))
        out.update(dict.fromkeys(self.pairs, PAIRED))
        return out


def _put(index: dict[str, str | tuple[str, ...]], key: str, vehicle_id: str) -> None:
    """Add ``vehicle_id`` under ``key``: a plain string when it is the only one (nearly
    always), a tuple of them otherwise. A set per key was one more container per vehicle
    for the garbage collector to track, and 0.2 KiB (docs/benchmarks.md)."""
    have = index.get(key)
    index[key] = vehicle_id if have is None else \
        (have, vehicle_id) if isinstance(have, str) else (*have, vehicle_id)


def _drop(index: dict[str, str | tuple[str, ...]], key: str, vehicle_id: str) -> None:
    have = index.get(key)
    if have == vehicle_id:
        del index[key]
    elif isinstance(have, tuple):
        rest = tuple(v for v in have if v != vehicle_id)
        index[key] = rest[0] if len(rest) == 1 else rest


def _under(have: str | tuple[str, ...] | None) -> tuple[str, ...]:
    return () if have is None else (have,) if isinstance(have, str) else have


class PlateIndex:
    """Vehicles by the canonical form of their plate (one substitution within a
    confusion class keeps it), and by each of their plates with one character dropped
    (a reader losing a character): what finds a misread's true plate in O(1). About
    0.8 KiB per vehicle (10,000 plates shaped like ``29C12345``: 7.8 MB with tracemalloc;
    1.0 KiB with a set per canonical plate). Vehicles under one key are kept in the
    order they were added."""

    __slots__ = ("_by_canon", "_by_shorter", "_canon_of")

    def __init__(self) -> None:
        #: canonical plate → the vehicle (or vehicles) with it
        self._by_canon: dict[str, str | tuple[str, ...]] = {}
        self._canon_of: dict[str, str] = {}
        #: plate with one character dropped → the vehicle (or vehicles) it comes from
        self._by_shorter: dict[str, str | tuple[str, ...]] = {}

    def add(self, vehicle_id: str) -> None:
        if vehicle_id in self._canon_of:
            return
        key = self._canon_of[vehicle_id] = canonical(vehicle_id)
        _put(self._by_canon, key, vehicle_id)
        if len(vehicle_id) > 4:
            by_shorter = self._by_shorter
            shorter = deletions(vehicle_id)
            if by_shorter.keys().isdisjoint(shorter):  # nearly always: one C-level update
                by_shorter.update(dict.fromkeys(shorter, vehicle_id))
                return
            for short in shorter:
                _put(by_shorter, short, vehicle_id)

    def remove(self, vehicle_id: str) -> None:
        key = self._canon_of.pop(vehicle_id, None)
        if key is None:
            return
        _drop(self._by_canon, key, vehicle_id)
        if len(vehicle_id) > 4:
            for short in deletions(vehicle_id):
                _drop(self._by_shorter, short, vehicle_id)

    def longer(self, plate: str) -> tuple[str, ...]:
        """Vehicles whose plate with one character dropped is ``plate``."""
        return _under(self._by_shorter.get(plate))

    def crowded(self, vehicle_id: str) -> bool:
        """True if another vehicle has a plate of the same shape (one confusion
        substitution away) or one character longer, so that ``vehicle_id`` may be a
        misread of it."""
        key = self._canon_of.get(vehicle_id)
        return key is not None and (isinstance(self._by_canon.get(key), tuple)
                                    or vehicle_id in self._by_shorter)

    def neighbours(self, plate: str, waiting: Mapping[str, object]) -> dict[str, str]:
        """Vehicles of ``waiting`` (any mapping keyed by plate) one confusion edit from
        ``plate`` → why: a confusion substitution, ``plate`` with one character dropped,
        or one character longer than ``plate``."""
        out: dict[str, str] = {}
        for other in _under(self._by_canon.get(canonical(plate))):
            if other != plate and other in waiting \
                    and (why := confusion_edit(plate, other)) is not None:
                out[other] = why
        for shorter in deletions(plate):
            if shorter in waiting and (why := confusion_edit(plate, shorter)) is not None:
                out[shorter] = why
        if len(plate) >= 4:
            for cand in self.longer(plate):
                if cand in waiting and (why := confusion_edit(plate, cand)) is not None:
                    out[cand] = why
        return out


def overtake_limit(crossed: Sequence[tuple[int, int]], floor: int) -> int:
    """How many overtakers the gate allows: 3 × the 99th percentile, over its crossed
    trips ``(queued_ms, crossed_ms)``, of how many vehicles joined after a trip and
    crossed before it; never below ``floor``."""
    n = len(crossed)
    if n < 20:
        return floor
    ranks = {q: i + 1 for i, q in enumerate(sorted({q for q, _e in crossed}))}
    tree = [0] * (len(ranks) + 1)
    counts: list[int] = []
    seen = 0
    for q, _e in sorted(crossed, key=lambda qe: qe[1]):
        r = ranks[q]
        at_most, i = 0, r
        while i > 0:
            at_most += tree[i]
            i -= i & -i
        counts.append(seen - at_most)  # crossed before it, joined after it
        i = r
        while i < len(tree):
            tree[i] += 1
            i += i & -i
        seen += 1
    counts.sort()
    p99 = counts[min(n - 1, (99 * n) // 100)]
    return max(floor, 3 * p99)


def lane_of(direction: int, cargo: int) -> int:
    """The overtaking lane of a vehicle: its direction, fruit (a green lane) or not."""
    return direction * 2 + (1 if cargo == PERISHABLE else 0)


def reconcile(waiting: Mapping[str, WaitingVehicle],
              vehicles: Mapping[str, list[VehicleEvent]],
              unmatched_ends: Iterable[tuple[str, int, int]],
              index: PlateIndex,
              crossed: Mapping[int, Sequence[tuple[int, int]]],
              limits: Mapping[int, int],
              watermark_ms: int | None = None,
              reread_interval_ms: int | None = None,
              due_limits: Mapping[int, int] | None = None) -> Reconciliation:
    """Which waiting vehicles to set aside (see the module docstring).

    ``vehicles``: every vehicle's events; ``unmatched_ends``: (vehicle id, end ms,
    direction) of trip ends with no ``queued`` read; ``crossed``: per lane
    (:func:`lane_of`), the sorted (queued_ms, crossed_ms) of crossed trips; ``limits``:
    overtakers allowed per lane (:func:`overtake_limit`); ``watermark_ms``: the gate's
    event time now; ``reread_interval_ms``: how often the queue camera re-reads a waiting
    vehicle (:func:`reread_interval_ms`; ``None``: it does not); ``due_limits``: per
    lane, overtakers allowed to a vehicle that missed its re-read (default: ``limits``)."""
    out = Reconciliation(limit=max(limits.values(), default=0))
    for vid, end_ms, direction in sorted(unmatched_ends, key=lambda u: (u[1], u[0])):
        found = [(other, why) for other, why in index.neighbours(vid, waiting).items()
                 if other not in out.pairs
                 and (w := waiting[other]).direction == direction and w.queued_ms <= end_ms]
        if len(found) == 1:
            other = found[0][0]
            why = confusion_edit(other, vid) or found[0][1]  # as "true/read"
            out.pairs[other] = Pairing(other, vid, end_ms, direction, why)
    in_queue = _in_queue_at
    if reread_interval_ms:
        gap = DUE_WITHIN * reread_interval_ms

        def in_queue(t: int, first: int, last: int, waits: bool) -> bool:
            # or a waiting vehicle due for a re-read at t that did not come: read before
            # t, last within 1.5 intervals of it (the read at t was its misread re-read)
            return _in_queue_at(t, first, last, waits) or (
                waits and first < t and t - gap <= last < t)

    for vid, w in waiting.items():
        if w.last_read_ms != w.queued_ms or vid in out.pairs or not index.crowded(vid):
            continue  # read more than once (a truck), or no plate of its shape: no misread
        t = w.queued_ms
        twin = _twin(vid, w.direction, t, index, waiting, vehicles, in_queue)
        if twin is not None:
            out.duplicates[vid] = twin
    silent_after = silence_after(reread_interval_ms) if reread_interval_ms else None
    missed_after = int(MISSED_REREAD * reread_interval_ms) if reread_interval_ms else None
    if reread_interval_ms and watermark_ms is not None:
        _misread_first_reads(out, waiting, vehicles, index, reread_interval_ms, watermark_ms)
    due = limits if due_limits is None else due_limits
    for vid, w in waiting.items():
        if vid in out.pairs or vid in out.duplicates:
            continue
        lane = lane_of(w.direction, w.cargo)
        line = crossed[lane]
        silence = None if watermark_ms is None else watermark_ms - w.last_read_ms
        if _overtaken(line, w.queued_ms, w.last_read_ms, limits[lane]) or (
                silence is not None and silent_after is not None and silence > silent_after
        ) or (silence is not None and missed_after is not None and silence > missed_after
              and _overtaken(line, w.queued_ms, w.last_read_ms, due[lane])):
            out.unconfirmed.add(vid)
    return out


def _overtaken(line: Sequence[tuple[int, int]], queued_ms: int, last_read_ms: int,
               limit: int) -> bool:
    """True if more than ``limit`` crossed trips of ``line`` (sorted (queued, crossed))
    joined the queue after the vehicle and crossed after its last read: vehicles behind
    it that passed the gate since it was last seen. Scans from the vehicle's place in
    the queue and stops past the limit, so a vehicle that left costs ``limit`` steps; a
    queue served in no order (many trips behind it crossed before its last read) is
    scanned at most ``4 × limit + 200`` steps, then only those that joined after its
    last read are counted (a subset: never more set aside)."""
    n = 0
    start = bisect_right(line, (queued_ms, _MAX))
    for i in range(start, min(len(line), start + 4 * limit + 200)):
        if line[i][1] > last_read_ms:
            n += 1
            if n > limit:
                return True
    if len(line) - start <= 4 * limit + 200:
        return False
    return len(line) - bisect_right(line, (last_read_ms, _MAX)) > limit


#: a trip counts as re-read when its last read is this long after its first (a duplicate
#: of the same read a few seconds later is not a re-read)
REREAD_MIN_MS: Final = 300_000
#: the re-read interval is learned from this many of the latest crossed trips re-read
LEARN_TAILS: Final = 500
#: ... and only when at least this many are known
MIN_TAILS: Final = 20
#: the least silence that makes a vehicle unconfirmed, however often the camera re-reads
MIN_SILENCE_MS: Final = 3_600_000
#: a vehicle unread for this many re-read intervals missed its latest re-read
MISSED_REREAD: Final = 1.2
#: a waiting vehicle last read within this many intervals before a read was due then
DUE_WITHIN: Final = 1.5


def silence_after(interval_ms: int) -> int:
    """How long a waiting vehicle may go unread, where the camera re-reads every
    ``interval_ms``: 2.5 intervals (a truck may miss one re-read, and the interval is
    an estimate: with 2.2, trucks that missed one hourly sweep were set aside for a few
    minutes before the next, 3 % of a gate's queue at once), at least
    :data:`MIN_SILENCE_MS`."""
    return max(MIN_SILENCE_MS, int(2.5 * interval_ms))


def _misread_first_reads(out: Reconciliation, waiting: Mapping[str, WaitingVehicle],
                         vehicles: Mapping[str, list[VehicleEvent]], index: PlateIndex,
                         interval_ms: int, watermark_ms: int) -> None:
    """A truck whose first read was misread appears under its true plate at its next
    re-read. So a vehicle read once, not read again for 1.1 intervals, whose one
    confusion edit twin (same direction) was first read within 1.2 intervals after it,
    is that misread first read: a duplicate read of the twin."""
    def first_read_next(t: int, first: int, _last: int, _waits: bool) -> bool:
        return t < first <= t + 1.2 * interval_ms

    for vid, w in waiting.items():
        t = w.queued_ms
        if w.last_read_ms != t or vid in out.pairs or vid in out.duplicates \
                or watermark_ms - t <= 1.1 * interval_ms or not index.crowded(vid):
            continue
        twin = _twin(vid, w.direction, t, index, waiting, vehicles, first_read_next)
        if twin is not None and out.duplicates.get(twin) != vid:
            out.duplicates[vid] = twin


def _in_queue_at(t: int, first: int, last: int, waits: bool) -> bool:
    """In the queue at ``t``: a finished trip spanning it, or a vehicle read again
    around it."""
    return first <= t <= last and (not waits or last > first)


def _twin(vehicle_id: str, direction: int, t: int, index: PlateIndex,
          waiting: Mapping[str, WaitingVehicle], vehicles: Mapping[str, list[VehicleEvent]],
          fits: Callable[[int, int, int, bool], bool]) -> str | None:
    """The first vehicle one confusion edit from ``vehicle_id`` (read at ``t``) with a
    stay in ``direction`` that ``fits(t, first read, last read or end, still waiting)``."""
    for other in index.neighbours(vehicle_id, vehicles):
        o = waiting.get(other)
        if o is not None:
            if o.direction == direction and fits(t, o.queued_ms, o.last_read_ms, True):
                return other
        elif any(trip.direction == direction and trip.queued_ms is not None
                 and trip.end_ms is not None and fits(t, trip.queued_ms, trip.end_ms, False)
                 for trip in derive_trips(vehicles[other])):
            return other
    return None


def reread_interval_ms(tails: Iterable[tuple[int, int]], watermark_ms: int | None
                       ) -> int | None:
    """How often the gate's queue camera re-reads a waiting vehicle; ``None`` if it does
    not (or stopped).

    ``tails``: per crossed trip that was re-read (its last read at least
    :data:`REREAD_MIN_MS` after its first), ``(crossed_ms, tail_ms)`` with ``tail_ms``
    the time from its last read to its crossing. A truck crosses at a random moment of
    its re-read cycle, so twice the median tail of the latest :data:`LEARN_TAILS` such
    trips is the camera's re-read interval ``I``, whether it re-reads each truck on its
    own timer or sweeps the yard (the median: trips that crossed unread for long, after
    a missed re-read or while the reader was dead, do not move it). Learned from finished
    trips, not from the vehicles waiting, so phantoms (which are never re-read) cannot
    switch the rule off. If the camera stopped re-reading (of the re-read trips that
    crossed in the last ``2 I``, at least 3 and most went unread for more than ``1.5 I``
    before crossing), ``None``: a dead reader must not empty the backlog."""
    if watermark_ms is None:
        return None
    latest = heapq.nlargest(LEARN_TAILS, tails)
    if len(latest) < MIN_TAILS:
        return None
    spans = sorted(tail for _c, tail in latest)
    interval = 2 * spans[len(spans) // 2]
    recent = [tail for c, tail in latest if c > watermark_ms - 2 * interval]
    stale = sum(1 for tail in recent if tail > 1.5 * interval)
    if stale >= 3 and 2 * stale > len(recent):
        return None
    return interval

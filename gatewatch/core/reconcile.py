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
   vehicle read again whose reads span it), is a misread re-read of that vehicle
   (a confusion substitution; a re-read that dropped or gained a character is left to
   rule 3: looking up every longer plate for every vehicle read once costs too much).
3. **Unconfirmed** (``unconfirmed``): a waiting vehicle overtaken, since it was last
   read, by more vehicles than the gate allows: more crossed vehicles of its lane (its
   direction, fruit or not: a green lane for fruit overtakes other cargo by design)
   joined the queue after its last read than the lane's limit, learned from the lane's
   own crossed trips (3 × the 99th percentile of how many vehicles of the lane overtook
   each of them) with a floor: ``GATEWATCH_UNCONFIRMED_MIN_OVERTAKES``, or half the
   lane's crossings of the last 6 hours if fewer (at least 5), so a quiet lane is judged
   in hours, not days. Also unconfirmed: where the queue camera re-reads waiting vehicles
   (most of those waiting over 2 h were read again), a vehicle not read for 6 × the
   median time since the others' last read (at least an hour): it has left unseen. Read
   again, it is waiting again.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from gatewatch.core.trips import derive_trips
from gatewatch.streams.changelog import VehicleEvent
from gatewatch.streams.plates import canonical, confusion_edit, deletions
from gatewatch.streams.vocabulary import PERISHABLE

__all__ = ["ALPHABET", "DUPLICATE_READ", "PAIRED", "REREAD_AGE_MS", "UNCONFIRMED", "Pairing",
           "PlateIndex", "Reconciliation", "lane_of", "overtake_limit", "reconcile"]

PAIRED: Final = "paired"
DUPLICATE_READ: Final = "duplicate_read"
UNCONFIRMED: Final = "unconfirmed"

#: characters tried when looking for a plate that lost one (an unmatched end read short)
ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

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


class PlateIndex:
    """Vehicles by the canonical form of their plate (one substitution within a
    confusion class keeps it): one entry per vehicle in the state."""

    __slots__ = ("_by_canon", "_canon_of")

    def __init__(self) -> None:
        self._by_canon: dict[str, set[str]] = {}
        self._canon_of: dict[str, str] = {}

    def add(self, vehicle_id: str) -> None:
        key = self._canon_of.setdefault(vehicle_id, canonical(vehicle_id))
        self._by_canon.setdefault(key, set()).add(vehicle_id)

    def remove(self, vehicle_id: str) -> None:
        key = self._canon_of.pop(vehicle_id, None)
        ids = self._by_canon.get(key) if key is not None else None
        if key is not None and ids is not None:
            ids.discard(vehicle_id)
            if not ids:
                del self._by_canon[key]

    def crowded(self, vehicle_id: str) -> bool:
        """True if another vehicle has a plate of the same shape (one confusion
        substitution away), so that a misread of it is possible."""
        key = self._canon_of.get(vehicle_id)
        return key is not None and len(self._by_canon.get(key, ())) > 1

    def neighbours(self, plate: str, waiting: Mapping[str, object], *,
                   longer: bool = True) -> dict[str, str]:
        """Vehicles of ``waiting`` (any mapping keyed by plate) one confusion edit from
        ``plate`` → why. ``longer``: also those ``plate`` is with one character dropped
        (costs a lookup per character of :data:`ALPHABET` and position)."""
        out: dict[str, str] = {}
        for other in self._by_canon.get(canonical(plate), ()):
            if other != plate and other in waiting \
                    and (why := confusion_edit(plate, other)) is not None:
                out[other] = why
        for shorter in deletions(plate):
            if shorter in waiting and (why := confusion_edit(plate, shorter)) is not None:
                out[shorter] = why
        if longer and len(plate) >= 4:
            for i in range(len(plate) + 1):
                head, tail = plate[:i], plate[i:]
                for ch in ALPHABET:
                    cand = head + ch + tail
                    if cand in waiting and cand not in out and \
                            (why := confusion_edit(plate, cand)) is not None:
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
              watermark_ms: int | None = None) -> Reconciliation:
    """Which waiting vehicles to set aside (see the module docstring).

    ``vehicles``: every vehicle's events; ``unmatched_ends``: (vehicle id, end ms,
    direction) of trip ends with no ``queued`` read; ``crossed``: per lane
    (:func:`lane_of`), the sorted (queued_ms, crossed_ms) of crossed trips; ``limits``:
    overtakers allowed per lane (:func:`overtake_limit`); ``watermark_ms``: the gate's
    event time now (for the re-read rule)."""
    out = Reconciliation(limit=max(limits.values(), default=0))
    for vid, end_ms, direction in sorted(unmatched_ends, key=lambda u: (u[1], u[0])):
        found = [(other, why) for other, why in index.neighbours(vid, waiting).items()
                 if other not in out.pairs
                 and (w := waiting[other]).direction == direction and w.queued_ms <= end_ms]
        if len(found) == 1:
            other = found[0][0]
            why = confusion_edit(other, vid) or found[0][1]  # as "true/read"
            out.pairs[other] = Pairing(other, vid, end_ms, direction, why)
    for vid, w in waiting.items():
        if w.last_read_ms != w.queued_ms or vid in out.pairs or not index.crowded(vid):
            continue  # read more than once (a truck), or no plate of its shape: no misread
        t = w.queued_ms
        for other in index.neighbours(vid, vehicles, longer=False):
            o = waiting.get(other)
            if o is not None:
                spans = o.direction == w.direction and o.queued_ms <= t <= o.last_read_ms \
                    and o.last_read_ms > o.queued_ms
            else:
                spans = any(trip.direction == w.direction and trip.queued_ms is not None
                            and trip.end_ms is not None and trip.queued_ms <= t <= trip.end_ms
                            for trip in derive_trips(vehicles[other]))
            if spans:
                out.duplicates[vid] = other
                break
    stale_after = _reread_silence_ms(waiting, watermark_ms)
    for vid, w in waiting.items():
        if vid in out.pairs or vid in out.duplicates:
            continue
        lane = lane_of(w.direction, w.cargo)
        line = crossed[lane]
        overtakers = len(line) - bisect_right(line, (w.last_read_ms, _MAX))
        if overtakers > limits[lane] or (
                stale_after is not None and watermark_ms is not None
                and watermark_ms - w.last_read_ms > stale_after):
            out.unconfirmed.add(vid)
    return out


#: the re-read rule: vehicles waiting at least this long are judged on their re-reads
REREAD_AGE_MS: Final = 7_200_000


def _reread_silence_ms(waiting: Mapping[str, WaitingVehicle], watermark_ms: int | None
                       ) -> int | None:
    """How long a vehicle may go without a read before it is taken to have left, if this
    gate's queue camera re-reads waiting vehicles (most of those waiting over
    :data:`REREAD_AGE_MS` were read again): 6 × the median time since their last read,
    at least an hour; ``None`` if the camera does not re-read."""
    if watermark_ms is None:
        return None
    old = [w for w in waiting.values() if watermark_ms - w.queued_ms > REREAD_AGE_MS]
    reread = sorted(watermark_ms - w.last_read_ms for w in old if w.last_read_ms > w.queued_ms)
    if len(reread) < 10 or 2 * len(reread) < len(old):
        return None
    return max(3_600_000, 6 * reread[len(reread) // 2])

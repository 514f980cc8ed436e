"""Per-vehicle queue state: from a vehicle's crossing events to its trips.

The state of one vehicle at one gate is the *set* of distinct events seen for it
(within the retention horizon), kept sorted by event time. Its trips and the gate's
transitions are a pure function of that set, so the result does not depend on the
order events arrive in, and adding an event twice changes nothing. That is what makes
the counts exact under duplicates, reordering, redelivery and restarts.

Derivation, walking the events in event-time order (ties: queued, crossed, withdrawn):

==============  =======================  ==========================================
event           vehicle not waiting      vehicle waiting
==============  =======================  ==========================================
``queued``      starts a trip: waiting   duplicate read: ignored
``crossed``     crossed without queued:  ends the trip: crossed, wait measured
                counted as a crossing    (crossed - queued)
                (no wait); a second one
                in a row is ignored
``withdrawn``   like crossed, counted    ends the trip: withdrawn
                as a withdrawal
==============  =======================  ==========================================

An event whose ``event_id`` was already seen for the vehicle, or with the same type
and the same millisecond as one already seen, is a duplicate: of two such events the
smaller (as a whole tuple) is kept, whichever came first. Re-reads of a waiting vehicle
are compacted to the first and the last read of their chain (:func:`add_read`), so a
vehicle's state stays small whatever the number of re-reads.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Final

from gatewatch.streams.changelog import VehicleEvent
from gatewatch.streams.vocabulary import (
    CARGO_CODE,
    CARGO_NAME,
    DIR_CODE,
    DIR_NAME,
    TYPE_CODE,
)

__all__ = [
    "ARRIVAL", "CROSSING", "WITHDRAWAL", "DIR_CODE", "DIR_NAME", "TYPE_CODE", "CARGO_CODE",
    "CARGO_NAME", "QUEUED", "QUEUED_UNTIL", "REREAD_GAP_MS", "Trip", "UNMATCHED",
    "VehicleEvent", "add_event", "add_read", "derive_trips", "transitions",
]

QUEUED: Final = TYPE_CODE["queued"]
#: Stored code of the last read of a chain of ``queued`` re-reads (see :func:`add_read`).
QUEUED_UNTIL: Final = 3
#: Re-reads less than this apart (and no crossing between them) form one chain.
REREAD_GAP_MS: Final = 3_600_000

#: Transition kinds (index into window counters).
ARRIVAL: Final = 0
CROSSING: Final = 1
WITHDRAWAL: Final = 2



@dataclass(frozen=True, slots=True)
class Trip:
    """One visit of a vehicle to a gate's queue, derived from its events."""

    direction: int
    cargo: int
    queued_ms: int | None
    end_kind: int | None  # CROSSING or WITHDRAWAL, None while waiting
    end_ms: int | None
    #: the latest ``queued`` read of the trip (its first read if it was read once)
    last_read_ms: int | None = None

    @property
    def waiting(self) -> bool:
        return self.end_kind is None

    @property
    def wait_ms(self) -> int | None:
        """Measured wait, only for a crossed trip whose queued event was seen."""
        if self.end_kind == CROSSING and self.queued_ms is not None and self.end_ms is not None:
            return self.end_ms - self.queued_ms
        return None


def add_event(events: list[VehicleEvent], event: VehicleEvent) -> bool:
    """Add ``event`` to the vehicle's sorted, compacted ``events``; False if that changes
    nothing.

    Collisions (the same ``event_id``, or the same type at the same millisecond) keep
    the smaller of the whole events, so the stored set never depends on which arrived
    first. ``queued`` reads are kept as chains (:func:`add_read`).
    """
    t, code, _d, _c, event_id = event
    colliding: list[VehicleEvent] | None = None
    for o in events:  # the hot path: no function call per stored event
        if o[4] == event_id or (o[0] == t and (o[1] == code or (
                o[1] == QUEUED_UNTIL and code == QUEUED))):
            if _as_read(o) <= event:
                return False  # a duplicate, or it loses the collision
            if colliding is None:
                colliding = []
            colliding.append(o)
    if colliding:
        for other in colliding:
            events.remove(other)
        _orphans(events)
    if code == QUEUED:
        return add_read(events, event) or bool(colliding)
    i = bisect_left(events, event)
    events.insert(i, event)
    if 0 < i < len(events) - 1 and events[i + 1][1] == QUEUED_UNTIL:
        _orphans(events)  # it fell inside a chain of reads: the chain splits here
    return True


def add_read(events: list[VehicleEvent], read: VehicleEvent) -> bool:
    """Add a ``queued`` read, keeping each chain of re-reads as its first and last read.

    A camera re-reads a waiting truck every minute for days. Reads with no crossing or
    withdrawal between them, each less than :data:`REREAD_GAP_MS` from the next, form a
    *chain*; only its first read can start a trip, so the reads in between change no
    count. A chain is stored as its first read (code ``queued``) followed by its last
    (code :data:`QUEUED_UNTIL`), so a vehicle's state, and its changelog value, stays
    small whatever the number of re-reads (one more chain per gap of over an hour, e.g.
    a feed outage). Chains are the connected groups of the reads, so the result does not
    depend on the order reads arrive in; a read inside a stored chain changes nothing.

    Exact in any delivery order as long as a vehicle's trips are more than
    ``REREAD_GAP_MS`` apart (from the last read of one to the first read of the next).
    If a crossing arrives late and falls inside a stored chain (the vehicle was read in
    the queue again within the hour after it crossed), the chain splits there and the
    next trip starts at the chain's last read. Returns False if nothing changed.
    """
    t = read[0]
    i = bisect_left(events, read)
    n = len(events)
    if 0 < i < n and events[i][1] == QUEUED_UNTIL:
        return False  # inside a stored chain: already accounted for
    start = end = read
    lo, hi = i, i  # events[lo:hi] are replaced by the merged chain
    if i > 0 and _base(events[i - 1][1]) == QUEUED:
        last = events[i - 1]
        first = events[i - 2] if last[1] == QUEUED_UNTIL else last
        if t - last[0] <= REREAD_GAP_MS:
            start, lo = first, i - (2 if last[1] == QUEUED_UNTIL else 1)
    if i < n and events[i][1] == QUEUED:
        first = events[i]
        last = events[i + 1] if i + 1 < n and events[i + 1][1] == QUEUED_UNTIL else first
        if first[0] - t <= REREAD_GAP_MS:
            end, hi = last, i + (2 if last is not first else 1)
    chain = [_as_read(start)]
    if end is not start:
        chain.append((end[0], QUEUED_UNTIL, end[2], end[3], end[4]))
    events[lo:hi] = chain
    return True


def _orphans(events: list[VehicleEvent]) -> None:
    """A chain's last read whose first read is gone (split off by a crossing, or lost a
    collision) becomes a chain of its own."""
    for k, e in enumerate(events):
        if e[1] == QUEUED_UNTIL and (k == 0 or events[k - 1][1] != QUEUED):
            events[k] = _as_read(e)
    events.sort()


def _base(code: int) -> int:
    return QUEUED if code == QUEUED_UNTIL else code


def _as_read(e: VehicleEvent) -> VehicleEvent:
    return (e[0], QUEUED, e[2], e[3], e[4]) if e[1] == QUEUED_UNTIL else e


def derive_trips(events: list[VehicleEvent]) -> list[Trip]:
    """The trips that a vehicle's sorted events describe (see the module table)."""
    trips: list[Trip] = []
    open_dir = open_cargo = 0
    open_q: int | None = None
    last_read = 0
    last_terminal = False
    for t, code, direction, cargo, _eid in events:
        if code == QUEUED or code == QUEUED_UNTIL:
            if open_q is None:
                open_q, open_dir, open_cargo = t, direction, cargo
            last_read = t
            last_terminal = False
        elif open_q is not None:
            trips.append(Trip(open_dir, open_cargo, open_q, code, t, last_read))
            open_q = None
            last_terminal = True
        elif not last_terminal:
            trips.append(Trip(direction, cargo, None, code, t))
            last_terminal = True
    if open_q is not None:
        trips.append(Trip(open_dir, open_cargo, open_q, None, None, last_read))
    return trips


#: A transition: (kind, occurred_at_ms, direction code, wait_ms or -1, or
#: :data:`UNMATCHED` for a crossing or withdrawal with no ``queued`` read before it).
Transition = tuple[int, int, int, int]

#: The wait field of the end of a trip that has no ``queued`` read (an unmatched end).
UNMATCHED: Final = -2


def transitions(trips: list[Trip]) -> list[Transition]:
    """Queue transitions (arrivals, crossings, withdrawals) of a vehicle's trips."""
    out: list[Transition] = []
    for trip in trips:
        if trip.queued_ms is not None:
            out.append((ARRIVAL, trip.queued_ms, trip.direction, -1))
        if trip.end_kind is not None and trip.end_ms is not None:
            wait = trip.wait_ms
            out.append((trip.end_kind, trip.end_ms, trip.direction,
                        wait if wait is not None else
                        -1 if trip.queued_ms is not None else UNMATCHED))
    return out

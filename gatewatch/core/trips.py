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
and the same millisecond as one already seen, is a duplicate and is not stored.
"""

from __future__ import annotations

from bisect import insort
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
    "CARGO_NAME", "Trip", "VehicleEvent", "add_event", "derive_trips", "transitions",
]

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
    """Insert ``event`` into the sorted ``events`` unless it is a duplicate.

    Returns False (and leaves ``events`` unchanged) for a duplicate: same event_id,
    or same type at the same millisecond.
    """
    t, code, _d, _c, event_id = event
    for other in events:
        if other[4] == event_id or (other[0] == t and other[1] == code):
            return False
    insort(events, event)
    return True


def derive_trips(events: list[VehicleEvent]) -> list[Trip]:
    """The trips that a vehicle's sorted events describe (see the module table)."""
    trips: list[Trip] = []
    open_dir = open_cargo = 0
    open_q: int | None = None
    last_terminal = False
    for t, code, direction, cargo, _eid in events:
        if code == 0:  # queued
            if open_q is None:
                open_q, open_dir, open_cargo = t, direction, cargo
            last_terminal = False
        elif open_q is not None:
            trips.append(Trip(open_dir, open_cargo, open_q, code, t))
            open_q = None
            last_terminal = True
        elif not last_terminal:
            trips.append(Trip(direction, cargo, None, code, t))
            last_terminal = True
    if open_q is not None:
        trips.append(Trip(open_dir, open_cargo, open_q, None, None))
    return trips


#: A transition: (kind, occurred_at_ms, direction code, wait_ms or -1).
Transition = tuple[int, int, int, int]


def transitions(trips: list[Trip]) -> list[Transition]:
    """Queue transitions (arrivals, crossings, withdrawals) of a vehicle's trips."""
    out: list[Transition] = []
    for trip in trips:
        if trip.queued_ms is not None:
            out.append((ARRIVAL, trip.queued_ms, trip.direction, -1))
        if trip.end_kind is not None and trip.end_ms is not None:
            wait = trip.wait_ms
            out.append((trip.end_kind, trip.end_ms, trip.direction, -1 if wait is None else wait))
    return out

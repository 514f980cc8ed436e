"""Typed, frozen records for everything that flows through gatewatch.

Times are integer milliseconds since the Unix epoch (``*_ms``) inside gatewatch;
RFC 3339 strings only at the edges (the event contract and published records).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gatewatch.streams.vocabulary import CARGOS, DIRECTIONS, EVENT_TYPES

__all__ = ["CARGOS", "COUNT_SOURCES", "DIRECTIONS", "EVENT_TYPES", "REJECT_REASONS",
           "CountObservation", "CrossingEvent", "DirectionTotals", "Rejection", "WindowRecord"]

#: Who counted the vehicles of a count observation (topic ``gate.counts``).
COUNT_SOURCES: Final = ("yard_sensor", "manual", "drone", "other")


#: Every reason a message can be dead-lettered for (the ``reason`` label of
#: ``gatewatch_events_rejected_total``); documented in the README.
REJECT_REASONS: Final = (
    "too_large",            # message larger than GATEWATCH_MAX_MESSAGE_BYTES
    "not_utf8",             # bytes are not UTF-8
    "not_json",             # not parseable JSON
    "not_object",           # JSON but not an object
    "missing_field",        # a required field is absent
    "wrong_type",           # a field has the wrong JSON type
    "invalid_value",        # a field is out of its allowed set or length
    "bad_timestamp",        # occurred_at is not RFC 3339 with an offset
    "timestamp_out_of_range",  # occurred_at before 2000
    "unknown_gate",         # gate_id not in the gate configuration
    "key_mismatch",         # Kafka key is not the event's gate_id
    "too_old",              # behind the gate's horizon (retention) for a vehicle with no state
    # otherwise valid, but occurred_at is more than GATEWATCH_MAX_FUTURE_SKEW_SECONDS ahead
    # of the worker's clock (a wrong camera clock); the Rejection carries its gate_id
    "from_the_future",
    "internal_error",       # processing it hit a gatewatch bug (logged); kept for replay
)


@dataclass(frozen=True, slots=True)
class CrossingEvent:
    """A valid contract-v1 crossing event."""

    event_id: str
    gate_id: str
    vehicle_id: str
    type: str
    direction: str
    occurred_at_ms: int
    cargo: str | None = None
    lane: str | None = None


@dataclass(frozen=True, slots=True)
class CountObservation:
    """A head count of the vehicles waiting, from outside the plate readers (a yard
    sensor, a manual count): topic ``gate.counts``, key = gate_id."""

    observation_id: str
    gate_id: str
    direction: str
    count: int
    occurred_at_ms: int
    source: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message that failed validation: original bytes plus a reason code.

    ``gate_id`` is the configured gate the event names, when the rejection comes after
    the gate was checked (``from_the_future``), so it can be counted per gate; ``None``
    otherwise (the gate is unknown or was not read).
    """

    reason: str
    detail: str
    raw: bytes
    key: bytes | None = None
    gate_id: str | None = None


class DirectionTotals:
    """Both directions summed, for records counting transitions per direction (a mixin:
    the class using it has the six ``*_export``/``*_import`` fields)."""

    __slots__ = ()
    arrivals_export: int
    arrivals_import: int
    crossings_export: int
    crossings_import: int
    withdrawals_export: int
    withdrawals_import: int

    @property
    def arrivals(self) -> int:
        return self.arrivals_export + self.arrivals_import

    @property
    def crossings(self) -> int:
        return self.crossings_export + self.crossings_import

    @property
    def withdrawals(self) -> int:
        return self.withdrawals_export + self.withdrawals_import


@dataclass(frozen=True, slots=True)
class WindowRecord(DirectionTotals):
    """Counts of one closed tumbling window for one gate (published on ``gate.windows``).

    Counts are of queue *transitions* (a duplicate event is not an arrival), split by
    direction. ``waits_*`` describe the measured queued→crossed waits of vehicles that
    crossed in the window. ``closed_by`` is ``event_time`` when the gate's own events
    moved the watermark past the window's end plus grace, ``idle`` when the wall clock
    did because the gate went silent. ``republished`` marks a window published again
    after a restart, recomputed from the restored vehicle state (it may count
    transitions that were too late for the original; the later record replaces the
    earlier one with the same ``gate_id`` + ``start_ms``).
    """

    gate_id: str
    start_ms: int
    end_ms: int
    arrivals_export: int
    arrivals_import: int
    crossings_export: int
    crossings_import: int
    withdrawals_export: int
    withdrawals_import: int
    waits_count: int
    waits_sum_seconds: float
    waits_max_seconds: float
    closed_by: str
    republished: bool = False
    #: vehicles waiting (confirmed backlog) by direction when the window was closed
    waiting_export: int | None = None
    waiting_import: int | None = None


"""Small builders shared by the tests (explicit timestamps, no clocks)."""

from __future__ import annotations

import itertools

from gatewatch.core.ledger import Ledger
from gatewatch.core.processor import Processor
from gatewatch.gates import GateSet, parse_gates
from gatewatch.settings import Settings
from gatewatch.streams.codec import format_ms
from gatewatch.streams.records import CrossingEvent

T0 = 1_638_316_800_000  # 2021-12-01T00:00:00Z
MIN = 60_000

_ids = itertools.count()

GATES_YAML = """
version: 1
gates:
  - id: huu-nghi
    name: "Cửa khẩu Quốc tế Hữu Nghị"
    yard_capacity: 100
    thresholds: {warning: 10, critical: 20}
  - id: tan-thanh
    name: "Cửa khẩu Tân Thanh"
    yard_capacity: 100
    thresholds: {warning: 10, critical: 20}
"""


def gates() -> GateSet:
    return parse_gates(GATES_YAML, "test-gates.yaml")


def ledger(window_seconds: int = 300, grace_seconds: int = 60, idle_seconds: int = 30,
           no_data_seconds: int = 900) -> Ledger:
    return Ledger(gates(), window_seconds, grace_seconds, idle_seconds, no_data_seconds)


def ev(vehicle: str, etype: str, t_ms: int, gate: str = "huu-nghi", direction: str = "export",
       event_id: str | None = None, cargo: str | None = "general") -> CrossingEvent:
    return CrossingEvent(event_id or f"e{next(_ids)}", gate, vehicle, etype, direction, t_ms,
                         cargo)


def event_json(e: CrossingEvent) -> dict[str, str]:
    doc = {"event_id": e.event_id, "gate_id": e.gate_id, "vehicle_id": e.vehicle_id,
           "type": e.type, "direction": e.direction, "occurred_at": format_ms(e.occurred_at_ms)}
    if e.cargo:
        doc["cargo"] = e.cargo
    return doc


def processor(window_seconds: int = 300, grace_seconds: int = 60, idle_seconds: int = 30,
              no_data_seconds: int = 900, **settings: object) -> Processor:
    """A processor over the two test gates."""
    return Processor(gates(), Settings(window_seconds=window_seconds,  # type: ignore[arg-type]
                                       grace_seconds=grace_seconds, idle_seconds=idle_seconds,
                                       no_data_seconds=no_data_seconds, **settings))

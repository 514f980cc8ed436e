"""The state table's changelog records: key ``gate\\0vehicle``, value the vehicle's events.

A value is a JSON object ``{"seen": wall_ms, "events": [...]}``: the worker's wall-clock
time when it last changed the vehicle (so a restarted worker knows how long each gate has
been silent from its data, not from the restart), and the vehicle's stored events, each
``[occurred_at_ms, type code, direction code, cargo code, event_id]`` (codes from
:mod:`gatewatch.streams.vocabulary`; code 3 is the last read of a chain of re-reads, see
:func:`gatewatch.core.trips.add_read`). A bare JSON list of events (the format before
``seen``) is still read. A tombstone (``None``) deletes the vehicle.
"""

from __future__ import annotations

import orjson

__all__ = ["VehicleEvent", "decode_state", "decode_value", "encode_state", "split_key",
           "state_key"]

#: One stored event: (occurred_at_ms, type code, direction code, cargo code, event_id).
VehicleEvent = tuple[int, int, int, int, str]

_SEP = b"\x00"


def state_key(gate_id: str, vehicle_id: str) -> bytes:
    """Changelog key of one vehicle's state at one gate."""
    return gate_id.encode() + _SEP + vehicle_id.encode()


def split_key(key: bytes) -> tuple[str, str]:
    """(gate_id, vehicle_id) of a changelog key."""
    gate, _, vehicle = key.partition(_SEP)
    return gate.decode(), vehicle.decode()


def encode_state(events: list[VehicleEvent], seen_ms: int | None = None) -> bytes:
    """The changelog value of a vehicle's events, changed at wall time ``seen_ms``."""
    doc: object = events if seen_ms is None else {"seen": seen_ms, "events": events}
    # orjson's result keeps its ~4 KiB output buffer allocated (seen with orjson 3.13);
    # these values live in the table for hours, so keep a compact copy instead.
    return bytes(memoryview(orjson.dumps(doc)))


def decode_value(raw: bytes) -> tuple[list[VehicleEvent], int | None]:
    """A vehicle's events and the wall time they last changed (None if not recorded)."""
    doc = orjson.loads(raw)
    seen = None
    if isinstance(doc, dict):
        seen = int(doc["seen"]) if doc.get("seen") is not None else None
        doc = doc["events"]
    return [(int(e[0]), int(e[1]), int(e[2]), int(e[3]), str(e[4])) for e in doc], seen


def decode_state(raw: bytes) -> list[VehicleEvent]:
    """A vehicle's events from a changelog value."""
    return decode_value(raw)[0]

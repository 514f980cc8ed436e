"""The state table's changelog records: key ``gate\\0vehicle``, value the vehicle's events.

A value is the JSON list of the vehicle's distinct events, each
``[occurred_at_ms, type code, direction code, cargo code, event_id]``
(codes from :mod:`gatewatch.streams.vocabulary`); a tombstone (``None``) deletes it.
"""

from __future__ import annotations

import orjson

__all__ = ["VehicleEvent", "decode_state", "encode_state", "split_key", "state_key"]

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


def encode_state(events: list[VehicleEvent]) -> bytes:
    """The changelog value of a vehicle's events."""
    # orjson's result keeps its ~4 KiB output buffer allocated (seen with orjson 3.13);
    # these values live in the table for hours, so keep a compact copy instead.
    return bytes(memoryview(orjson.dumps(events)))


def decode_state(raw: bytes) -> list[VehicleEvent]:
    """A vehicle's events from a changelog value."""
    return [(int(e[0]), int(e[1]), int(e[2]), int(e[3]), str(e[4])) for e in orjson.loads(raw)]

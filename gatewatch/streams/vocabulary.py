"""The event vocabulary of contract v1, defined once: names and their compact codes.

The names are what the contract and the API say; the codes are what per-vehicle state
stores (small integers, see :mod:`gatewatch.core.trips`). The order of ``EVENT_TYPES``
breaks ties between events of the same millisecond (queued, crossed, withdrawn).
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["CARGOS", "CARGO_CODE", "CARGO_NAME", "DIRECTIONS", "DIR_CODE", "DIR_NAME",
           "EVENT_TYPES", "PERISHABLE", "TYPE_CODE", "Cargo", "Direction", "EventType"]

EventType = Literal["queued", "crossed", "withdrawn"]
Direction = Literal["export", "import"]
Cargo = Literal["perishable", "general", "empty"]

EVENT_TYPES: Final[tuple[EventType, ...]] = ("queued", "crossed", "withdrawn")
DIRECTIONS: Final[tuple[Direction, ...]] = ("export", "import")
CARGOS: Final[tuple[Cargo, ...]] = ("perishable", "general", "empty")

#: Event type codes; their order breaks ties between events of the same millisecond.
TYPE_CODE: Final[dict[str, int]] = {name: i for i, name in enumerate(EVENT_TYPES)}
DIR_CODE: Final[dict[str, int]] = {name: i for i, name in enumerate(DIRECTIONS)}
DIR_NAME: Final[tuple[Direction, ...]] = DIRECTIONS
#: cargo code 0 is "not given"
CARGO_CODE: Final[dict[str | None, int]] = {None: 0} | {
    name: i for i, name in enumerate(CARGOS, start=1)}
CARGO_NAME: Final[tuple[Cargo | None, ...]] = (None, *CARGOS)
PERISHABLE: Final = CARGO_CODE["perishable"]

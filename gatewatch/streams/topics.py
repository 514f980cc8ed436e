"""Topic names. Every name gets the configured prefix (tests use uuid prefixes)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Topics"]


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics gatewatch reads and writes, for one prefix."""

    prefix: str = ""

    @property
    def events(self) -> str:
        """Crossing events, contract v1, key = gate_id (input)."""
        return f"{self.prefix}gate.events"

    @property
    def rejected(self) -> str:
        """Dead letters: original bytes and key, reason in headers."""
        return f"{self.prefix}gate.events.rejected"

    @property
    def windows(self) -> str:
        """Closed window counts per gate (JSON, key = gate_id)."""
        return f"{self.prefix}gate.windows"

    @property
    def alerts(self) -> str:
        """Congestion alert records (JSON, key = gate_id)."""
        return f"{self.prefix}gate.alerts"

    @property
    def alerts_undelivered(self) -> str:
        """Alert records a receiver rejected for good (``gatewatch notify`` parks them
        here): original key and bytes, reason, receiver and attempts in headers."""
        return f"{self.prefix}gate.alerts.undelivered"

    def all_created(self) -> tuple[str, ...]:
        """Topics the worker creates if missing (changelogs are Faust's own)."""
        return (self.events, self.rejected, self.windows, self.alerts, self.alerts_undelivered)

"""Gate choice that accounts for capacity (pure: explicit times, no I/O).

A coordinator asks "where should the next trucks of this cargo go?". Sending everyone to
the gate whose queue looks shortest *now* floods it by the time they arrive. Here each
gate that accepts the cargo and direction gets a *share* of new trucks sized by what it
can absorb:

- *spare capacity*: clearances per day − arrivals per day (from the gate's forecast over
  the next 24 h), floored at 0;
- the *yard as a limit*: a gate cannot absorb more in a day than its yard has room for at
  the truck's arrival (capacity − projected backlog), floored at 0.

``share = absorbable / Σ absorbable`` (``basis = "spare_capacity"``). When no gate has
spare capacity (every queue grows anyway), by the trucks each gate can still clear within
a day of their arrival (clearances per day − projected backlog, the yard as a limit:
``basis = "day_headroom"``), which levels the waits; when every queue is over a day long,
by clearance capacity, so every queue grows at the same pace (``"throughput"``); when no
gate clears anything, every share is 0 (``"none"``). Each option also carries the
forecast wait of a truck arriving at the ETA.

:class:`ForecastView` and :class:`HourView` name the members of
:class:`gatewatch.core.forecast.GateForecast` / ``HourForecast`` read here (the
protocols let a gate without a forecast fall back to its last hour's counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from gatewatch.core.signals import GateSignals
from gatewatch.gates import GateConfig

__all__ = ["Capacity", "ForecastView", "GateOption", "HourView", "capacity_of", "recommend"]

Basis = Literal["spare_capacity", "day_headroom", "throughput", "none"]


class HourView(Protocol):
    """The members of a forecast hour read here (and by the advisories)."""

    @property
    def start_ms(self) -> int: ...
    @property
    def backlog(self) -> float: ...
    @property
    def p_full(self) -> float: ...
    @property
    def wait_seconds(self) -> float | None: ...


class ForecastView(Protocol):
    """The members of a gate's forecast read here (and by the advisories)."""

    @property
    def made_at_ms(self) -> int: ...
    @property
    def basis(self) -> str: ...
    @property
    def direction(self) -> str | None: ...
    @property
    def hours(self) -> Sequence[HourView]: ...
    @property
    def backlog_now(self) -> int: ...
    @property
    def arrivals_per_day(self) -> float: ...
    @property
    def clearances_per_day(self) -> float: ...
    def at(self, t_ms: int) -> HourView | None: ...


@dataclass(frozen=True, slots=True)
class Capacity:
    """What one gate can take, as seen at a truck's arrival."""

    gate_id: str
    clearances_per_day: float
    arrivals_per_day: float
    #: projected vehicles waiting when the truck arrives
    backlog: float
    yard_capacity: int
    #: expected wait of a truck arriving then (None: unknown, nothing clears)
    wait_seconds: float | None
    #: ``forecast`` or ``last_hour`` (no forecast: the last hour's counts × 24)
    source: str = "forecast"

    @property
    def spare_per_day(self) -> float:
        return max(0.0, self.clearances_per_day - self.arrivals_per_day)

    @property
    def yard_room(self) -> float:
        return max(0.0, self.yard_capacity - self.backlog)

    @property
    def day_headroom(self) -> float:
        """Trucks that could still arrive and clear within a day (the yard permitting)."""
        return min(self.yard_room, max(0.0, self.clearances_per_day - self.backlog))

    @property
    def absorbable_per_day(self) -> float:
        """New trucks a day the gate takes without its queue growing or its yard filling."""
        return min(self.spare_per_day, self.yard_room)


@dataclass(frozen=True, slots=True)
class GateOption:
    """One recommended gate and its share of new trucks (0..1)."""

    capacity: Capacity
    share: float
    basis: Basis


def capacity_of(gate: GateConfig, signals: GateSignals, forecast: ForecastView | None,
                eta_ms: int) -> Capacity:
    """A gate's :class:`Capacity` for a truck arriving ``eta_ms`` from now: from its
    forecast (read ``eta_ms`` after the forecast was made: a forecast runs on the gate's
    event time), or without one from the last hour (× 24, backlog and wait as now)."""
    if forecast is not None:
        hour = forecast.at(forecast.made_at_ms + eta_ms)
        backlog = hour.backlog if hour is not None else float(forecast.backlog_now)
        wait = hour.wait_seconds if hour is not None else None
        if hour is None and forecast.clearances_per_day > 0:
            wait = backlog / forecast.clearances_per_day * 86_400.0
        return Capacity(gate.gate_id, forecast.clearances_per_day, forecast.arrivals_per_day,
                        backlog, gate.yard_capacity, wait)
    return Capacity(gate.gate_id, signals.crossings_last_hour * 24.0,
                    signals.arrivals_last_hour * 24.0, float(signals.backlog),
                    gate.yard_capacity, signals.estimated_wait_seconds, "last_hour")


def recommend(capacities: Sequence[Capacity]) -> list[GateOption]:
    """Shares of new trucks over ``capacities`` (see the module docstring), the largest
    share first (then the shorter wait). Shares sum to 1 unless no gate clears anything."""
    absorb = [c.absorbable_per_day for c in capacities]
    basis: Basis = "spare_capacity"
    if sum(absorb) <= 0:
        # nowhere to put them without a queue growing: the trucks each gate can still
        # clear within a day of their arrival (levels the waits towards one day)
        absorb = [c.day_headroom for c in capacities]
        basis = "day_headroom"
    if sum(absorb) <= 0:
        # every queue is over a day long: grow every queue at the same pace
        absorb = [c.clearances_per_day if c.yard_room > 0 else 0.0 for c in capacities]
        basis = "throughput"
    total = sum(absorb)
    if total <= 0:
        return [GateOption(c, 0.0, "none") for c in capacities]
    options = [GateOption(c, a / total, basis) for c, a in zip(capacities, absorb, strict=True)]
    return sorted(options, key=lambda o: (-o.share, _wait_key(o.capacity.wait_seconds),
                                          o.capacity.gate_id))


def _wait_key(wait: float | None) -> float:
    return float("inf") if wait is None else wait

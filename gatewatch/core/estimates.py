"""What a worker keeps to forecast its gates and to score its wait estimates (pure).

:class:`Estimates` holds, per gate:

- the **closed windows** it has seen (its own, and any a history store gave it through
  :meth:`Estimates.add_windows`), at most :data:`MEMORY_HOURS` of them, from which
  :mod:`gatewatch.core.forecast` learns the profiles (once per hour of event time);
- the **expected wait** for a truck joining now (:meth:`Estimates.expected_wait`): the
  forecast's wait walk from the current backlog, or ``None`` until the gate has
  :data:`MIN_ESTIMATE_HOURS` of windows (a calibrated estimate needs the recent rates);
- the **estimates shown**, one per minute of event time (:meth:`Estimates.note`), at
  most :data:`SHOWN_HOURS` back, so that every crossed truck scores the estimate shown
  when it joined (:meth:`Estimates.score`: estimate − realised wait, in seconds), and a
  running mean absolute error and bias per gate (:meth:`Estimates.errors`).

Nothing here reads a clock: event times come in as arguments.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from gatewatch.core.forecast import (
    HOUR_MS,
    CapacityWalk,
    ForecastParams,
    GateForecast,
    HourSample,
    Level,
    Profile,
    fit,
    hour_samples,
    project,
)
from gatewatch.gates import GateConfig, GateSet
from gatewatch.streams.records import WindowRecord

__all__ = ["MEMORY_HOURS", "MIN_ESTIMATE_HOURS", "SHOWN_HOURS", "ErrorSummary", "Estimates"]

#: closed windows kept per gate for the profiles (4 weeks)
MEMORY_HOURS: Final = 28 * 24
#: estimates shown kept per gate for scoring (30 days, one per minute)
SHOWN_HOURS: Final = 30 * 24
#: hours of windows before a gate's expected wait is given at all
MIN_ESTIMATE_HOURS: Final = 6
_MIN_MS = 60_000


@dataclass(frozen=True, slots=True)
class ErrorSummary:
    """Scored estimates of one gate since the worker started (seconds)."""

    scored: int
    mean_absolute_error_seconds: float | None
    bias_seconds: float | None  # mean of estimate − realised (> 0: estimates too long)


@dataclass(slots=True)
class _Gate:
    windows: dict[int, WindowRecord] = field(default_factory=dict)
    version: int = 0
    #: (hour start, windows version // 12) → samples, profile, level
    model_key: tuple[int, int] | None = None
    samples: list[HourSample] = field(default_factory=list)
    profile: Profile | None = None
    level: Level = field(default_factory=Level)
    #: (minute, windows version // 12, backlog, hours) → the forecast made then
    cached: tuple[tuple[int, int, int, int], GateForecast] | None = None
    #: (hour start, windows version // 12) → the capacity walk of the expected waits
    walk: tuple[tuple[int, int], CapacityWalk] | None = None
    #: one estimate per minute of event time from ``shown_from_min`` (NaN: none)
    shown: array[float] = field(default_factory=lambda: array("d"))
    shown_from_min: int | None = None
    scored: int = 0
    error_sum: float = 0.0
    abs_error_sum: float = 0.0


class Estimates:
    """Per-gate forecast state of one worker (see the module docstring)."""

    def __init__(self, gates: GateSet, params: ForecastParams | None = None) -> None:
        self.params = params or ForecastParams()
        self._cfg: dict[str, GateConfig] = {g.gate_id: g for g in gates.gates}
        self._gates: dict[str, _Gate] = {g.gate_id: _Gate() for g in gates.gates}

    # -- windows -------------------------------------------------------------------------

    def add_windows(self, records: Iterable[WindowRecord]) -> int:
        """Remember closed windows (a later record of a window replaces the earlier one);
        returns how many were for configured gates."""
        n = 0
        for r in records:
            g = self._gates.get(r.gate_id)
            if g is None:
                continue
            g.windows[r.start_ms] = r
            g.version += 1
            n += 1
            if len(g.windows) > MEMORY_HOURS * 12 * 1.1:
                newest = max(g.windows)
                for start in [s for s in g.windows if s < newest - MEMORY_HOURS * HOUR_MS]:
                    del g.windows[start]
        return n

    def window_count(self, gate_id: str) -> int:
        return len(self._gates[gate_id].windows)

    def _model(self, gate_id: str, at_ms: int) -> _Gate:
        """The gate's samples, profile and level as of the hour of ``at_ms`` (cached)."""
        g = self._gates[gate_id]
        # learned again each hour of event time, and after about an hour of new windows
        key = (at_ms - at_ms % HOUR_MS, g.version // 12)
        if g.model_key != key:
            p = self.params
            cfg = self._cfg[gate_id]
            g.samples = hour_samples(g.windows.values(), None, at_ms)
            g.profile, g.level = fit(g.samples, cfg.open_hours, p)
            g.model_key = key
        return g

    # -- forecasts -----------------------------------------------------------------------

    def forecast(self, gate_id: str, made_at_ms: int, backlog_now: int, hours: int = 48
                 ) -> GateForecast:
        """The gate's forecast from ``made_at_ms`` (event time) and its backlog then."""
        g = self._model(gate_id, made_at_ms)
        key = (made_at_ms // _MIN_MS, g.version // 12, backlog_now, hours)
        if g.cached is not None and g.cached[0] == key:
            return g.cached[1]
        cfg = self._cfg[gate_id]
        fc = project(gate_id=gate_id, direction=None, made_at_ms=made_at_ms,
                     backlog_now=backlog_now, profile=g.profile, level=g.level,
                     yard_capacity=cfg.yard_capacity, open_hours=cfg.open_hours,
                     hours=hours, params=self.params)
        g.cached = (key, fc)
        return fc

    def expected_wait(self, gate_id: str, at_ms: int, backlog: int) -> float | None:
        """Calibrated wait (seconds) of a truck joining at ``at_ms`` behind ``backlog``;
        None until the gate has MIN_ESTIMATE_HOURS of windows, or when it does not clear
        within the forecast's wait walk."""
        g = self._model(gate_id, at_ms)
        if len(g.samples) < MIN_ESTIMATE_HOURS:
            return None
        # the capacity walk depends on the hour, not on the backlog: made once per hour
        key = (at_ms - at_ms % HOUR_MS, g.version // 12)
        if g.walk is None or g.walk[0] != key:
            fc = self.forecast(gate_id, at_ms, backlog, hours=1)
            assert fc.walk is not None
            g.walk = (key, fc.walk)
        return g.walk[1].time_to(at_ms, backlog + 1.0)

    # -- scoring -------------------------------------------------------------------------

    def note(self, gate_id: str, at_ms: int, estimate: float | None) -> None:
        """The estimate shown at event time ``at_ms`` (the latest in a minute counts)."""
        g = self._gates[gate_id]
        minute = at_ms // _MIN_MS
        value = math.nan if estimate is None else float(estimate)
        if g.shown_from_min is None:
            g.shown_from_min = minute
        idx = minute - g.shown_from_min
        if idx < 0:
            return  # before the series (event time went back): not kept
        if idx < len(g.shown):
            g.shown[idx] = value
            return
        last = g.shown[-1] if g.shown else math.nan
        while len(g.shown) < idx:  # minutes without a note show what was shown before
            g.shown.append(last)
        g.shown.append(value)
        limit = SHOWN_HOURS * 60
        if len(g.shown) > limit + 24 * 60:
            drop = len(g.shown) - limit
            del g.shown[:drop]
            g.shown_from_min += drop

    def shown_at(self, gate_id: str, at_ms: int) -> float | None:
        """The estimate shown at event time ``at_ms`` (None: none kept)."""
        g = self._gates[gate_id]
        if g.shown_from_min is None:
            return None
        idx = at_ms // _MIN_MS - g.shown_from_min
        if not 0 <= idx < len(g.shown):
            return None
        v = g.shown[idx]
        return None if math.isnan(v) else v

    def score(self, gate_id: str, crossed_ms: int, wait_ms: int) -> float | None:
        """Score the estimate shown when a truck that crossed at ``crossed_ms`` after
        waiting ``wait_ms`` joined: estimate − realised (seconds), or None if no
        estimate was shown then."""
        if gate_id not in self._gates:
            return None
        est = self.shown_at(gate_id, crossed_ms - wait_ms)
        if est is None:
            return None
        err = est - wait_ms / 1000
        g = self._gates[gate_id]
        g.scored += 1
        g.error_sum += err
        g.abs_error_sum += abs(err)
        return err

    def errors(self, gate_id: str) -> ErrorSummary:
        g = self._gates[gate_id]
        if not g.scored:
            return ErrorSummary(0, None, None)
        return ErrorSummary(g.scored, g.abs_error_sum / g.scored, g.error_sum / g.scored)

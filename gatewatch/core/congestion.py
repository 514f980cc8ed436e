"""Congestion model and alert lifecycle per gate (pure: every function takes ``now_ms``).

Levels and hysteresis
    A gate's level is ``normal``, ``warning`` or ``critical`` from its backlog. A level
    is *raised* when the backlog reaches its raise threshold and stays there for
    ``raise_hold_ms``; it is *cleared* only when the backlog falls below the lower clear
    threshold and stays there for ``clear_hold_ms``. A backlog oscillating around one
    threshold therefore never flaps.

Alerts
    Each alert has a stable id ``<gate>:<kind>``; kinds are ``congestion`` (severity
    follows the level: warning → critical is an *update* of the same incident),
    ``perishable_wait``, ``no_data`` and ``data_quality``. An alert goes ``firing`` →
    ``resolved``; every change yields an :class:`AlertChange` that the worker publishes
    on ``gate.alerts``.

    ``perishable_wait`` has the same hysteresis as a level (:func:`next_hold`): it fires
    once the oldest perishable wait has stayed over the limit for the raise hold, and
    resolves only once it has stayed below the clear level (:data:`PERISHABLE_CLEAR_RATIO`
    of the limit) for the clear hold, so fruit trucks clearing at about the limit make
    one incident, not one per truck.

Data quality
    ``data_quality`` fires when a camera's unmatched share over the last hour jumps (at
    least :data:`DQ_MIN_READS` reads, and a share above both :data:`DQ_MIN_SHARE` and
    3 × its share over the 23 hours before: a dirty lens, a dead reader), or when a ``gate.counts``
    observation of the last hour differs from the ledger by more than
    ``count_discrepancy_vehicles`` and 10 % of the count; either must hold for
    :data:`DQ_HOLD_MS` to raise it, and be gone that long to resolve it.

No data is not a reason to resolve
    Without data (the gate silent past its ``no_data_seconds``) nothing is judged: the
    congestion level and the perishable state hold as they were, a pending change is
    dropped (its hold starts again when data returns), and the ``no_data`` alert covers
    the outage. An alert is resolved only by data that says so.

Signals
    Everything judged here (backlog, last-hour counts, estimates) comes from one
    :class:`~gatewatch.core.signals.GateSignals` per gate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from gatewatch.core.signals import GateSignals

__all__ = ["ALERT_KINDS", "LEVELS", "PERISHABLE_CLEAR_RATIO", "AlertChange", "AlertKind",
           "AlertState", "ChangeKind", "GateAlerts", "HoldState", "Level", "LevelState",
           "Severity", "Thresholds", "advance_level", "next_hold", "next_level"]

Level = Literal["normal", "warning", "critical"]
Severity = Literal["warning", "critical"]
AlertKind = Literal["congestion", "perishable_wait", "no_data", "data_quality"]
ChangeKind = Literal["fired", "escalated", "deescalated", "resolved"]
AlertStatus = Literal["firing", "resolved"]

LEVELS: Final[tuple[Level, ...]] = ("normal", "warning", "critical")
ALERT_KINDS: Final[tuple[AlertKind, ...]] = ("congestion", "perishable_wait", "no_data",
                                              "data_quality")
#: data_quality: reads a camera needs in the last hour to be judged, the unmatched share
#: it must exceed, and how long a problem must hold (and be gone) to raise (resolve) it
DQ_MIN_READS: Final = 20
DQ_MIN_SHARE: Final = 0.2
DQ_HOLD_MS: Final = 1_800_000
_RANK: Final = {name: i for i, name in enumerate(LEVELS)}
#: a firing ``perishable_wait`` resolves below this share of the limit (like a level's
#: default clear level, 90 % of its threshold)
PERISHABLE_CLEAR_RATIO: Final = 0.9


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Backlog thresholds (vehicles) with their clear levels and hold times."""

    warning: int
    critical: int
    warning_clear: int
    critical_clear: int
    raise_hold_ms: int = 60_000
    clear_hold_ms: int = 300_000


@dataclass(frozen=True, slots=True)
class LevelState:
    level: Level = "normal"
    pending: Level | None = None  # the level the backlog currently points to, if different
    pending_since_ms: int = 0


def _target(level: Level, backlog: int, t: Thresholds) -> Level:
    """Where the backlog points, with hysteresis relative to the current level."""
    if backlog >= t.critical or (level == "critical" and backlog >= t.critical_clear):
        return "critical"
    if backlog >= t.warning or (level in ("warning", "critical") and backlog >= t.warning_clear):
        return "warning"
    return "normal"


def next_level(state: LevelState, backlog: int, t: Thresholds, now_ms: int) -> LevelState:
    """Advance the level state machine by one observation at ``now_ms``."""
    return advance_level(state, _target(state.level, backlog, t), t.raise_hold_ms,
                         t.clear_hold_ms, now_ms)


def advance_level(state: LevelState, target: Level, raise_hold_ms: int, clear_hold_ms: int,
                  now_ms: int) -> LevelState:
    """Move towards ``target`` (where the observation points, hysteresis already applied)
    once it has held for the raise or clear hold; shared by levels and advisories."""
    if target == state.level:
        return LevelState(state.level)
    if state.pending != target:
        # a raise to critical passes through warning's hold: keep the earlier start
        keep = state.pending is not None and _RANK[target] > _RANK[state.level] and \
            _RANK[state.pending] > _RANK[state.level]
        state = LevelState(state.level, target, state.pending_since_ms if keep else now_ms)
    hold = raise_hold_ms if _RANK[target] > _RANK[state.level] else clear_hold_ms
    if now_ms - state.pending_since_ms >= hold:
        return LevelState(target)
    return state


@dataclass(frozen=True, slots=True)
class HoldState:
    """An on/off condition with hysteresis: ``on``, and since when the value has pointed
    the other way (``None``: it has not)."""

    on: bool = False
    pending_since_ms: int | None = None


def next_hold(state: HoldState, value: float, raise_above: float, clear_below: float,
              raise_hold_ms: int, clear_hold_ms: int, now_ms: int) -> HoldState:
    """Advance an on/off condition by one observation at ``now_ms``: it turns on once
    ``value > raise_above`` has held for ``raise_hold_ms``, and off once
    ``value < clear_below`` has held for ``clear_hold_ms``."""
    target = value >= clear_below if state.on else value > raise_above
    if target == state.on:
        return HoldState(state.on)
    since = now_ms if state.pending_since_ms is None else state.pending_since_ms
    if now_ms - since >= (raise_hold_ms if target else clear_hold_ms):
        return HoldState(target)
    return HoldState(state.on, since)


@dataclass(frozen=True, slots=True)
class AlertState:
    """One alert as published: firing (with severity) or resolved."""

    alert_id: str
    gate_id: str
    kind: AlertKind
    state: AlertStatus
    severity: Severity
    value: float
    threshold: float
    started_ms: int
    updated_ms: int
    resolved_ms: int | None = None


@dataclass(frozen=True, slots=True)
class AlertChange:
    """A change worth notifying: ``fired``, ``escalated``, ``deescalated`` or ``resolved``."""

    change: ChangeKind
    alert: AlertState
    signals: GateSignals

    @property
    def estimated_wait_seconds(self) -> float | None:
        return self.signals.estimated_wait_seconds

    @property
    def seconds_until_full(self) -> float | None:
        return self.signals.seconds_until_full


@dataclass
class GateAlerts:
    """Alert state of one gate; feed it :class:`GateSignals` with :meth:`evaluate`."""

    gate_id: str
    thresholds: Thresholds
    perishable_limit_seconds: float
    no_data_seconds: float
    level: LevelState = field(default_factory=LevelState)
    active: dict[str, AlertState] = field(default_factory=dict)
    perishable: HoldState = field(default_factory=HoldState)
    #: share of ``perishable_limit_seconds`` below which a firing perishable alert clears
    perishable_clear_ratio: float = PERISHABLE_CLEAR_RATIO
    #: a count observation this far from the ledger (and 10 %) is a data-quality problem
    count_discrepancy_vehicles: int = 20
    data_quality: HoldState = field(default_factory=HoldState)

    def evaluate(self, s: GateSignals, now_ms: int) -> list[AlertChange]:
        changes: list[AlertChange] = []

        def emit(change: ChangeKind, alert: AlertState) -> None:
            changes.append(AlertChange(change, alert, s))

        t = self.thresholds
        limit = self.perishable_limit_seconds
        oldest_perishable = s.oldest_perishable_wait_seconds or 0.0
        if s.has_data:
            self.level = next_level(self.level, s.backlog, t, now_ms)
            self.perishable = next_hold(self.perishable, oldest_perishable, limit,
                                        limit * self.perishable_clear_ratio,
                                        t.raise_hold_ms, t.clear_hold_ms, now_ms)
        else:
            # no data is never "normal": what fires keeps firing, what is quiet stays
            # quiet, and a pending change starts its hold again when data returns
            self.level = LevelState(self.level.level)
            self.perishable = HoldState(self.perishable.on)
        level = self.level.level
        backlog = float(s.backlog) if s.has_data else None
        self._set("congestion", level != "normal", level if level != "normal" else "warning",
                  backlog, float(t.critical if level == "critical" else t.warning),
                  now_ms, emit)
        self._set("perishable_wait", self.perishable.on, "warning",
                  oldest_perishable if s.has_data else None, limit, now_ms, emit)
        silent = s.silent_seconds is not None and s.silent_seconds >= self.no_data_seconds
        self._set("no_data", silent, "warning", s.silent_seconds or 0.0, self.no_data_seconds,
                  now_ms, emit)
        problem, value, threshold = self._quality_problem(s)
        if s.has_data:
            self.data_quality = next_hold(self.data_quality, 1.0 if problem else 0.0, 0.5, 0.5,
                                          DQ_HOLD_MS, DQ_HOLD_MS, now_ms)
        else:
            self.data_quality = HoldState(self.data_quality.on)
        self._set("data_quality", self.data_quality.on, "warning",
                  value if s.has_data else None, threshold, now_ms, emit)
        return changes

    def _quality_problem(self, s: GateSignals) -> tuple[bool, float, float]:
        """(a problem now, its value, its threshold): the worst camera share jump, else
        the largest recent count discrepancy; (False, 0, 0) if neither."""
        for cam in s.cameras:
            share = cam.unmatched_share_last_hour
            if share is not None and cam.reads_last_hour >= DQ_MIN_READS:
                before = cam.reads_last_day - cam.reads_last_hour  # the day before that hour
                base = (cam.unmatched_last_day - cam.unmatched_last_hour) / before \
                    if before > 0 else 0.0
                limit = max(DQ_MIN_SHARE, 3 * base)
                if share > limit:
                    return True, share, limit
        wm = s.watermark_ms
        for check in s.count_checks:
            recent = wm is None or wm - check.observed_at_ms <= 3_600_000
            limit = max(float(self.count_discrepancy_vehicles), 0.1 * check.observed)
            if recent and abs(check.discrepancy) > limit:
                return True, float(check.discrepancy), limit
        return False, 0.0, 0.0

    def restore(self, st: AlertState) -> None:
        """Take back an alert published as firing before a restart: it stays firing (and
        is not notified again) until the data resolves it."""
        self.active[st.alert_id] = st
        if st.kind == "congestion":
            self.level = LevelState(st.severity)
        elif st.kind == "perishable_wait":
            self.perishable = HoldState(True)
        elif st.kind == "data_quality":
            self.data_quality = HoldState(True)

    def _set(self, kind: AlertKind, on: bool, severity: Severity, value: float | None,
             threshold: float, now_ms: int,
             emit: Callable[[ChangeKind, AlertState], None]) -> None:
        """``value`` None: unknown now (no data), the alert keeps its last value."""
        alert_id = f"{self.gate_id}:{kind}"
        current = self.active.get(alert_id)
        if value is None:
            value = current.value if current is not None else 0.0
        if on and current is None:
            new = AlertState(alert_id, self.gate_id, kind, "firing", severity, value, threshold,
                             now_ms, now_ms)
            self.active[alert_id] = new
            emit("fired", new)
        elif on and current is not None:
            if severity != current.severity:
                new = replace(current, severity=severity, value=value, threshold=threshold,
                              updated_ms=now_ms)
                self.active[alert_id] = new
                up = _RANK[severity] > _RANK[current.severity]
                emit("escalated" if up else "deescalated", new)
            else:
                self.active[alert_id] = replace(current, value=value)
        elif not on and current is not None:
            new = replace(current, state="resolved", value=value, updated_ms=now_ms,
                          resolved_ms=now_ms)
            del self.active[alert_id]
            emit("resolved", new)

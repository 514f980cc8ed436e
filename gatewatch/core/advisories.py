"""Shipment advisories per gate and direction (pure: every function takes ``now_ms``).

Alerts say a queue is long; an advisory says what shippers should do about it:

==================  ===============================================================
``normal``          send trucks as planned
``slow_down``       the queue is building: send fewer trucks, stagger departures
``hold_shipments``  do not send (perishable) trucks now: they would wait longer than
                    the cargo keeps, or the yard is about to fill
==================  ===============================================================

The numbers behind an advisory (:class:`AdvisoryFigures`): the backlog of the direction,
clearances and arrivals expected per day, the days to drain the backlog at that net rate
(``None``: it does not drain), the longest expected wait of a truck arriving within the
next :data:`HORIZON_HOURS` (one sent now), the time the cargo keeps (the gate's
``perishable_max_wait_seconds``; for a gate that takes no perishables in that direction,
:data:`GENERAL_KEEP_FACTOR` times it) and whether that wait exceeds it, and the highest
chance of a full yard over the horizon.

Where they come from: the gate's forecast (:mod:`gatewatch.core.forecast`, read through
:class:`~gatewatch.core.recommend.ForecastView`; hours without a wait are skipped, none at
all with a backlog counts as too long); without a forecast, the last hour's counts × 24
and the backlog ÷ the crossings of the last hour, or with fewer than
:data:`MIN_CROSSINGS` crossings in that hour the longest wait so far in that direction
(the queue stood still: a truck joining now waits at least that long)
(``source = "last_hour"``).

Levels (``ratio`` = expected wait ÷ keep time, ``growing`` = arrivals > clearances):

- ``hold_shipments`` when ``ratio ≥ 1`` or the chance of a full yard ≥ 0.5;
- ``slow_down`` when ``ratio ≥ 0.5``, or ``growing`` and ``ratio ≥ 0.25``, or the chance
  of a full yard ≥ 0.2.

Hysteresis and hold times work as for the congestion levels (the same state machine,
:func:`~gatewatch.core.congestion.advance_level`): a level already reached is kept down to
:data:`CLEAR_RATIO` of its raise values, a raise must hold for
``GATEWATCH_ADVISORY_RAISE_HOLD_SECONDS`` (15 min), a clear for
``GATEWATCH_ADVISORY_CLEAR_HOLD_SECONDS`` (30 min), and without data nothing is judged (the
advisory stays as it was).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from gatewatch.core.congestion import Level, LevelState, advance_level
from gatewatch.core.recommend import ForecastView
from gatewatch.core.signals import GateSignals

__all__ = ["ADVICE", "CLEAR_RATIO", "GENERAL_KEEP_FACTOR", "HORIZON_HOURS", "MIN_CROSSINGS",
           "Advice",
           "Advisory", "AdvisoryChange", "AdvisoryFigures", "GateAdvisories", "figures_of"]

Advice = Literal["normal", "slow_down", "hold_shipments"]
ChangeKind = Literal["raised", "lowered", "cleared"]

ADVICE: Final[tuple[Advice, ...]] = ("normal", "slow_down", "hold_shipments")
#: advice ↔ the congestion level machine's states (same ranks, same holds)
_AS_LEVEL: Final[dict[Advice, Level]] = {"normal": "normal", "slow_down": "warning",
                                         "hold_shipments": "critical"}
_AS_ADVICE: Final[dict[Level, Advice]] = {v: k for k, v in _AS_LEVEL.items()}
#: a truck sent now arrives within this many hours
HORIZON_HOURS: Final = 24
#: a level reached is kept until its values fall below this share of the raise values
CLEAR_RATIO: Final = 0.9
#: general cargo and empty trucks keep this many times longer than perishables
GENERAL_KEEP_FACTOR: Final = 4
#: without a forecast, fewer crossings than this in the last hour say too little about the
#: clearance rate (a worker that just started, a queue that stood still): the longest
#: wait so far stands for the expected wait instead
MIN_CROSSINGS: Final = 6
_HOUR_MS: Final = 3_600_000


@dataclass(frozen=True, slots=True)
class AdvisoryFigures:
    """The numbers an advisory is decided from (see the module docstring)."""

    backlog: int
    clearances_per_day: float
    arrivals_per_day: float
    days_to_drain: float | None
    expected_wait_seconds: float | None
    keeps_seconds: float
    perishable: bool
    yard_full_chance: float
    source: str = "forecast"

    @property
    def wait_ratio(self) -> float:
        """Expected wait ÷ keep time; an unknown wait with a backlog counts as too long."""
        if self.expected_wait_seconds is None:
            return 0.0 if self.backlog == 0 else float("inf")
        return self.expected_wait_seconds / self.keeps_seconds

    @property
    def exceeds_keep_time(self) -> bool:
        """A truck sent now would wait longer than its cargo keeps."""
        return self.wait_ratio >= 1.0

    @property
    def growing(self) -> bool:
        return self.arrivals_per_day > self.clearances_per_day


@dataclass(frozen=True, slots=True)
class Advisory:
    """One gate direction's advisory as published (``advisory_id`` = ``gate:direction``)."""

    advisory_id: str
    gate_id: str
    direction: str
    advice: Advice
    figures: AdvisoryFigures
    #: when the current advice took effect, and when it was last re-evaluated
    since_ms: int
    updated_ms: int
    #: when the advice last left ``normal`` (the incident a CAP Update/Cancel refers to)
    started_ms: int = 0


@dataclass(frozen=True, slots=True)
class AdvisoryChange:
    """A change worth publishing: raised, lowered (still not normal) or cleared."""

    change: ChangeKind
    advisory: Advisory
    previous: Advice


def figures_of(signals: GateSignals, direction: str, forecast: ForecastView | None,
               keeps_seconds: float, perishable: bool, now_ms: int) -> AdvisoryFigures:
    """The figures of one direction of a gate at ``now_ms``: from ``forecast`` (made for
    that direction; one for both directions gives the gate's whole backlog and rates), or
    from the last hour's counts without one."""
    backlog = signals.waiting_export if direction == "export" else signals.waiting_import
    if forecast is not None:
        if forecast.direction is None:  # a forecast of both directions together
            backlog = signals.backlog
        clear, arrive = forecast.clearances_per_day, forecast.arrivals_per_day
        made = forecast.made_at_ms  # a forecast runs on the gate's event time
        ahead = [h for h in forecast.hours
                 if made - _HOUR_MS < h.start_ms <= made + HORIZON_HOURS * _HOUR_MS]
        known = [h.wait_seconds for h in ahead if h.wait_seconds is not None]
        wait = max(known) if known else (None if backlog else 0.0)
        full = max((h.p_full for h in ahead), default=0.0)
        source = "forecast"
    else:
        clear = signals.crossings_last_hour * 24.0
        arrive = signals.arrivals_last_hour * 24.0
        # nothing crossed in the hour: the queue stood still, so a truck joining now waits
        # at least as long as the one waiting longest in its direction so far
        oldest = signals.oldest_wait_export_seconds if direction == "export" \
            else signals.oldest_wait_import_seconds
        rate_known = signals.crossings_last_hour >= MIN_CROSSINGS
        wait = 0.0 if not backlog else (signals.estimated_wait_seconds if rate_known
                                         else oldest)
        full = 1.0 if signals.backlog >= signals.capacity else 0.0
        source = "last_hour"
    net = clear - arrive
    drain = 0.0 if backlog == 0 else (backlog / net if net > 0 else None)
    return AdvisoryFigures(backlog, round(clear, 1), round(arrive, 1),
                           None if drain is None else round(drain, 2), wait, keeps_seconds,
                           perishable, round(full, 3), source)


def _target(current: Advice, f: AdvisoryFigures) -> Advice:
    """Where the figures point, a level already reached kept down to CLEAR_RATIO."""
    def k(level: Advice) -> float:
        return CLEAR_RATIO if ADVICE.index(current) >= ADVICE.index(level) else 1.0
    r, full = f.wait_ratio, f.yard_full_chance
    if r >= k("hold_shipments") or full >= 0.5 * k("hold_shipments"):
        return "hold_shipments"
    ks = k("slow_down")
    if r >= 0.5 * ks or (f.growing and r >= 0.25 * ks) or full >= 0.2 * ks:
        return "slow_down"
    return "normal"


@dataclass
class GateAdvisories:
    """The advisory state of one gate, per direction it handles."""

    gate_id: str
    raise_hold_ms: int
    clear_hold_ms: int
    state: dict[str, LevelState] = field(default_factory=dict)
    current: dict[str, Advisory] = field(default_factory=dict)

    def restore(self, advisory: Advisory) -> None:
        """Take back an advisory published before a restart or rebalance: its advice
        holds, with no change to publish, until the data moves it (then the change is
        published as if this worker had raised it), so coordinators are not told the
        same advice twice."""
        self.state[advisory.direction] = LevelState(_AS_LEVEL[advisory.advice])
        self.current[advisory.direction] = advisory

    def evaluate(self, direction: str, signals: GateSignals, figures: AdvisoryFigures,
                 now_ms: int) -> AdvisoryChange | None:
        """Advance ``direction``'s advisory by one observation; the change, if any."""
        st = self.state.get(direction, LevelState())
        before: Advice = _AS_ADVICE[st.level]
        if signals.has_data:
            target = _target(before, figures)
            st = advance_level(st, _AS_LEVEL[target], self.raise_hold_ms, self.clear_hold_ms,
                               now_ms)
        else:  # no data is not "normal": hold the advice, restart a pending change
            st = LevelState(st.level)
        self.state[direction] = st
        after: Advice = _AS_ADVICE[st.level]
        old = self.current.get(direction)
        since = now_ms if old is None or after != before else old.since_ms
        started = since if before == "normal" or old is None else old.started_ms
        adv = Advisory(f"{self.gate_id}:{direction}", self.gate_id, direction, after,
                       figures if signals.has_data or old is None else old.figures,
                       since, now_ms, started)
        self.current[direction] = adv
        if after == before:
            return None
        change: ChangeKind = "cleared" if after == "normal" else (
            "raised" if ADVICE.index(after) > ADVICE.index(before) else "lowered")
        return AdvisoryChange(change, adv, before)

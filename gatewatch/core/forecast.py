"""The forecast: an explainable queue projection of one gate, hour by hour.

Nothing here reads a clock: every function takes the instant it forecasts from.

The model, in four steps (``docs/forecasting.md`` explains it with figures):

1. **Profiles** (:func:`learn_profile`). Closed windows (:class:`WindowRecord`) are
   summed into hours. For every hour of the week (0-167, UTC; Lạng Sơn is a fixed
   +07:00) it learns the mean and spread of *arrivals* and *withdrawals*, and of the
   *clearance capacity*: the crossings of hours in which a queue existed all hour
   (the backlog at both ends of the hour, when the windows carry it, or else the
   vehicles that crossed waited longer than five gaps between crossings). Hours
   without a queue understate capacity and are left out of it. An hour of the week
   seen on few weeks borrows from the same hour of the day on the other days
   (shrinkage), and an hour never queue-limited borrows the gate's overall capacity.
   The configured opening hours (``open_hours`` of the gate) set capacity to 0 when
   closed, and an hour that historically cleared nothing while trucks came is closed
   too.
2. **Recent level** (:func:`recent_level`). The last hours (6 by default) are
   compared with what the profile expected for them: their ratio is the *level* of
   arrivals and of capacity now (capacity only from queue-limited recent hours), shrunk
   towards 1 by how much a Poisson count could differ by chance, so a collapse of
   clearance is believed at once and an ordinary fluctuation is mostly ignored. With
   little history (``history_hours`` < 24) the recent rates *are* the forecast
   (``basis = "recent"``).
3. **Projection** (:func:`project`). From today's exact backlog, hour by hour:
   ``backlog' = max(0, backlog + arrivals - capacity - withdrawals)``; clearances are
   what actually left. The 80 % interval comes from the profile's hour-to-hour spread
   (summed as independent variances while a queue exists) plus the uncertainty of the
   recent level (which compounds with the horizon), as a normal approximation;
   ``p_full`` is the chance, under the same approximation, that the backlog reaches
   the yard capacity by the end of the hour.
4. **Wait** (:func:`wait_seconds`). A truck joining at ``t`` behind ``B`` vehicles
   crosses once ``B + 1`` vehicles have been cleared (first come, first served): the
   projected capacity is walked forward from ``t`` (closed hours clear nothing) until
   its sum reaches ``B + 1``. Its interval walks the backlog interval with the capacity
   scaled by its own uncertainty. Walks stop after :data:`MAX_WAIT_HOURS` (``None``:
   does not clear).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from gatewatch.streams.records import WindowRecord

__all__ = ["HOUR_MS", "LOCAL_OFFSET_HOURS", "MAX_WAIT_HOURS", "Basis", "CapacityWalk",
           "ForecastParams", "GateForecast", "HourForecast", "HourSample", "Level", "Profile",
           "SlotRates", "fit", "forecast", "hour_samples", "is_open", "learn_profile", "project",
           "recent_level", "wait_seconds"]

HOUR_MS: Final = 3_600_000
WEEK_HOURS: Final = 168
#: local time of the gates (Vietnam, no daylight saving): opening hours are local
LOCAL_OFFSET_HOURS: Final = 7
#: a wait walk stops here (120 days): longer is "does not clear"
MAX_WAIT_HOURS: Final = 24 * 120
#: the normal quantile of an 80 % central interval
Z80: Final = 1.2816
Basis = Literal["profile", "recent", "none"]


@dataclass(frozen=True, slots=True)
class HourForecast:
    start_ms: int                 # start of the hour (UTC ms)
    arrivals: float               # expected arrivals in the hour
    clearances: float             # expected crossings in the hour (limited by opening hours)
    backlog: float                # projected vehicles waiting at the end of the hour
    backlog_low: float            # 80 % interval
    backlog_high: float
    wait_seconds: float | None    # expected wait of a truck joining at the start of the hour
    wait_low_seconds: float | None
    wait_high_seconds: float | None
    p_full: float                 # chance the yard is full by the end of the hour, 0..1
    #: clearance capacity of the hour (what it could clear with a queue; 0 when closed)
    capacity: float = 0.0
    withdrawals: float = 0.0


@dataclass(frozen=True, slots=True)
class GateForecast:
    gate_id: str
    direction: str | None         # "export" | "import" | None (both directions)
    made_at_ms: int
    backlog_now: int
    hours: tuple[HourForecast, ...]
    arrivals_per_day: float       # expected over the next 24 h
    clearances_per_day: float     # expected clearance capacity over the next 24 h
    #: "profile": hour-of-week profiles (blended with the recent level); "recent": too
    #: little history, the recent rates; "none": no data at all
    basis: Basis = "none"
    #: hours of history the profiles were learned from
    history_hours: float = 0.0
    #: expected wait of a truck joining at ``made_at_ms`` (the calibrated estimate), with
    #: its 80 % interval; None when the gate does not clear within MAX_WAIT_HOURS
    wait_now_seconds: float | None = None
    wait_now_low_seconds: float | None = None
    wait_now_high_seconds: float | None = None
    #: the recent level applied to the profiles (1.0: as usual)
    arrivals_level: float = 1.0
    capacity_level: float = 1.0
    #: the capacity walk behind the waits (a wait for any backlog: ``walk.time_to``)
    walk: CapacityWalk | None = field(default=None, repr=False, compare=False)

    def at(self, t_ms: int) -> HourForecast | None:
        """The hour containing ``t_ms`` (None outside the forecast)."""
        if not self.hours:
            return None
        i = (t_ms - self.hours[0].start_ms) // HOUR_MS
        return self.hours[i] if 0 <= i < len(self.hours) else None

    def backlog_at(self, t_ms: int) -> float | None:
        """Projected backlog at ``t_ms``, linear within an hour (None outside)."""
        h = self.at(t_ms)
        if h is None:
            return None
        i = self.hours.index(h)
        begin_ms = max(h.start_ms, self.made_at_ms)
        before = float(self.backlog_now) if i == 0 else self.hours[i - 1].backlog
        span = h.start_ms + HOUR_MS - begin_ms
        share = 1.0 if span <= 0 else min(1.0, max(0.0, (t_ms - begin_ms) / span))
        return before + (h.backlog - before) * share


@dataclass(frozen=True, slots=True)
class ForecastParams:
    """Tunables of the model (the defaults are what the backtest was run with)."""

    #: hours of recent windows compared with the profile for the level
    recent_hours: int = 6
    #: history below this many hours: the recent rates are the forecast
    min_history_hours: float = 24.0
    #: weight of the hour-of-day pool against one sample of the hour of the week
    day_pool_weight: float = 4.0
    #: over-dispersion of hourly counts over Poisson (variance multiplier)
    dispersion: float = 2.0
    #: weeks of history the profiles use at most
    weeks: int = 8


# -- samples -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class HourSample:
    """One hour of history: counts summed over its windows; ``queue`` whether a queue
    existed all hour (so its crossings measure the clearance capacity)."""

    start_ms: int
    arrivals: int
    crossings: int
    withdrawals: int
    queue: bool


def _dir_counts(w: WindowRecord, direction: str | None) -> tuple[int, int, int]:
    if direction == "export":
        return w.arrivals_export, w.crossings_export, w.withdrawals_export
    if direction == "import":
        return w.arrivals_import, w.crossings_import, w.withdrawals_import
    return w.arrivals, w.crossings, w.withdrawals


def _waiting(w: WindowRecord, direction: str | None) -> int | None:
    """The backlog when the window closed, if the record carries it."""
    e, i = w.waiting_export, w.waiting_import
    if e is None or i is None:
        return None
    return int(e if direction == "export" else i if direction == "import" else e + i)


def hour_samples(windows: Iterable[WindowRecord], direction: str | None = None,
                 until_ms: int | None = None) -> list[HourSample]:
    """Windows (in any order, a later record of the same window replacing an earlier one)
    summed into complete hours before ``until_ms``, oldest first. An hour with no window
    counts as an hour of zero traffic when a neighbouring hour has one, and as a gap in
    the data (left out) otherwise."""
    latest: dict[int, WindowRecord] = {}
    for w in windows:
        if until_ms is None or w.end_ms <= until_ms:
            latest[w.start_ms] = w
    if not latest:
        return []
    sums: dict[int, list[float]] = {}
    ends: dict[int, int | None] = {}   # hour → backlog when its last window closed
    for start in sorted(latest):
        w = latest[start]
        hour = start - start % HOUR_MS
        a, c, x = _dir_counts(w, direction)
        s = sums.setdefault(hour, [0.0] * 5)
        s[0] += a
        s[1] += c
        s[2] += x
        s[3] += w.waits_count
        s[4] += w.waits_sum_seconds
        ends[hour] = _waiting(w, direction)
    first, last = min(sums), max(sums)
    if until_ms is not None:
        last = min(last, until_ms - until_ms % HOUR_MS - HOUR_MS)
    out: list[HourSample] = []
    prev_backlog: int | None = None
    for hour in range(first, last + HOUR_MS, HOUR_MS):
        if hour not in sums:
            if (hour - HOUR_MS) in sums or (hour + HOUR_MS) in sums:
                # nothing moved: the backlog is what it was
                out.append(HourSample(hour, 0, 0, 0, bool(prev_backlog)))
            else:
                prev_backlog = None
            continue
        arr, cro, wdr, n_waits, sum_waits = sums[hour]
        # the backlog when the hour's last window closed (nothing moved after it)
        backlog = ends[hour]
        if backlog is not None and prev_backlog is not None:
            floor = 1 + 0.5 * cro
            queue = prev_backlog >= floor and backlog >= floor
        else:
            # a queue existed when trucks waited longer than five gaps between crossings
            # (an empty queue clears each truck about when it arrives)
            queue = cro > 0 and n_waits > 0 and sum_waits / n_waits > 5 * 3600 / cro
        out.append(HourSample(hour, int(arr), int(cro), int(wdr), queue))
        prev_backlog = backlog
    return out


# -- profiles ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SlotRates:
    """Rates of one hour of the week (per hour)."""

    arrivals: float
    arrivals_sd: float
    capacity: float
    capacity_sd: float
    withdrawals: float
    #: whether the gate clears in this hour (opening hours, or history)
    open: bool = True


@dataclass(frozen=True, slots=True)
class Profile:
    """Hour-of-week rates of one gate (and direction); ``slots[i]`` is the hour of the
    week ``i`` (UTC hours since Monday 00:00 UTC)."""

    slots: tuple[SlotRates, ...]
    history_hours: float
    #: queue-limited hours behind the capacity figures
    capacity_hours: int = 0


def hour_of_week(t_ms: int) -> int:
    """0 = Monday 00:00-01:00 UTC (the epoch was a Thursday: 3 days in)."""
    return int((t_ms // HOUR_MS + 72) % WEEK_HOURS)


def is_open(t_ms: int, open_hours: tuple[int, int]) -> bool:
    """Whether local (+07:00) time ``t_ms`` lies in the gate's opening hours [from, to)."""
    lo, hi = open_hours
    hour = (t_ms // HOUR_MS + LOCAL_OFFSET_HOURS) % 24
    return bool(lo <= hour < hi)


def _mean_sd(xs: Sequence[float]) -> tuple[float, float, int]:
    n = len(xs)
    if n == 0:
        return 0.0, 0.0, 0
    m = sum(xs) / n
    if n < 2:
        return m, math.sqrt(max(m, 1.0)), n
    var = sum((x - m) ** 2 for x in xs) / (n - 1)
    return m, math.sqrt(var), n


def _blend(week: tuple[float, float, int], day: tuple[float, float, int], k: float
           ) -> tuple[float, float]:
    """Hour-of-week estimate shrunk towards the hour-of-day pool (``k`` pseudo-samples)."""
    mw, sw, nw = week
    md, sd, nd = day
    if nd == 0:
        return mw, sw
    if nw == 0:
        return md, sd
    w = nw / (nw + k)
    return w * mw + (1 - w) * md, w * sw + (1 - w) * sd


def _smooth_day(values: list[tuple[float, float, int]], closed: frozenset[int] = frozenset()
                ) -> list[tuple[float, float, int]]:
    """Hour-of-day (mean, sd, n) smoothed with its neighbours (weights 1-2-1 by sample
    count, circular; a ``closed`` hour is not mixed into an open one): a week of history
    gives few samples per hour."""
    out = []
    for h in range(24):
        num = sd_num = den = 0.0
        n_total = 0
        for dh, k in ((-1, 1.0), (0, 2.0), (1, 1.0)):
            if dh and ((h + dh) % 24 in closed) != (h in closed):
                continue
            m, sd, n = values[(h + dh) % 24]
            if n:
                num += k * n * m
                sd_num += k * n * sd
                den += k * n
                n_total += n
        out.append((num / den, sd_num / den, values[h][2]) if den else (0.0, 0.0, 0))
    return out


def learn_profile(samples: Sequence[HourSample], open_hours: tuple[int, int] = (0, 24),
                  params: ForecastParams = ForecastParams()) -> Profile:
    """Hour-of-week profiles from hourly samples (see the module docstring)."""
    if samples:
        horizon = samples[-1].start_ms - params.weeks * WEEK_HOURS * HOUR_MS
        samples = [s for s in samples if s.start_ms > horizon]
    by_week: list[list[HourSample]] = [[] for _ in range(WEEK_HOURS)]
    by_day: list[list[HourSample]] = [[] for _ in range(24)]
    for s in samples:
        by_week[hour_of_week(s.start_ms)].append(s)
        by_day[(s.start_ms // HOUR_MS) % 24].append(s)
    cap_all = [float(s.crossings) for s in samples if s.queue]
    cross_all = [float(s.crossings) for s in samples]
    cross_mean = sum(cross_all) / len(cross_all) if cross_all else 0.0
    cap_mean, cap_sd, _n = _mean_sd(cap_all)
    if not cap_all:  # never queue-limited: the crossings are a lower bound of capacity
        cap_mean, cap_sd = cross_mean, math.sqrt(max(cross_mean, 1.0))
    day_arr = _smooth_day([_mean_sd([float(s.arrivals) for s in d]) for d in by_day])
    day_wd = _smooth_day([_mean_sd([float(s.withdrawals) for s in d]) for d in by_day])
    closed = frozenset(
        h for h in range(24)
        if not is_open(h * HOUR_MS, open_hours) or (  # h: an hour of the UTC day
            len(by_day[h]) >= 3 and cross_mean > 0
            and sum(s.crossings for s in by_day[h]) / len(by_day[h]) < 0.05 * cross_mean))
    day_cap = _smooth_day([_mean_sd([float(s.crossings) for s in d if s.queue])
                           for d in by_day], closed)
    k = params.day_pool_weight
    slots: list[SlotRates] = []
    for i in range(WEEK_HOURS):
        t_ms = (i - 72) * HOUR_MS  # an instant in this hour of the week
        hod = (t_ms // HOUR_MS) % 24
        wk = by_week[i]
        arr, arr_sd = _blend(_mean_sd([float(s.arrivals) for s in wk]), day_arr[hod], k)
        wd, _ = _blend(_mean_sd([float(s.withdrawals) for s in wk]), day_wd[hod], k)
        cap_w = _mean_sd([float(s.crossings) for s in wk if s.queue])
        if cap_w[2] + day_cap[hod][2] == 0:
            cap, c_sd = cap_mean, cap_sd
        else:
            cap, c_sd = _blend(cap_w, day_cap[hod], k)
        # closed by the opening hours, or historically (cleared nothing in this hour)
        opened = hod not in closed
        if not opened:
            cap, c_sd = 0.0, 0.0
        slots.append(SlotRates(arr, arr_sd, cap, c_sd, wd, opened))
    return Profile(tuple(slots), float(len(samples)), len(cap_all))


# -- recent level --------------------------------------------------------------------------

#: a recent level outside [1/REGIME, REGIME] × the profile is a new regime: the profile's
#: level no longer applies and the recent rate is used as it is
REGIME: Final = 2.0


@dataclass(frozen=True, slots=True)
class Level:
    """Recent rates against the profile: multipliers and their relative uncertainty;
    ``arrivals_per_hour`` etc. are the recent rates themselves (the fallback).
    ``*_regime``: the recent rate departs so far from the profile (more than
    :data:`REGIME` times) that it replaces the profile's rate outright."""

    arrivals: float = 1.0
    arrivals_rel_sd: float = 0.0
    capacity: float = 1.0
    capacity_rel_sd: float = 0.0
    arrivals_per_hour: float = 0.0
    capacity_per_hour: float | None = None
    crossings_per_hour: float = 0.0
    withdrawals_per_hour: float = 0.0
    hours: int = 0
    arrivals_regime: bool = False
    capacity_regime: bool = False


def _shrunk_ratio(observed: float, expected: float, dispersion: float,
                  strength: float = 4.0) -> tuple[float, float]:
    """observed/expected, shrunk towards 1 in log space by how much a count could differ
    by chance (positive-part James-Stein: a departure under ~2 chance deviations is
    dropped, a large one kept); (ratio, relative sd of the observed rate)."""
    if expected <= 0:
        return 1.0, 0.0
    raw = max(observed, 0.5) / expected
    log_raw = math.log(raw)
    var0 = dispersion / max(expected, 1.0)  # of the log ratio, if nothing changed
    w = max(0.0, 1.0 - strength * var0 / (log_raw * log_raw)) if log_raw else 0.0
    return math.exp(w * log_raw), math.sqrt(dispersion / max(observed, 1.0))


def _latest(rows: list[HourSample], profile: Profile | None, capacity: bool,
            params: ForecastParams, short: int = 2, z: float = 3.0) -> list[HourSample]:
    """The hours to measure a level from: the last ``short`` of ``rows`` when they depart
    from all of them by more than ``z`` chance deviations (a change has just happened:
    a surge, a collapse), else all of them."""
    if profile is None or len(rows) <= short:
        return rows

    def ratio(part: list[HourSample]) -> tuple[float, float]:
        expected = sum(profile.slots[hour_of_week(r.start_ms)].capacity if capacity else
                       profile.slots[hour_of_week(r.start_ms)].arrivals for r in part)
        observed = sum(r.crossings if capacity else r.arrivals for r in part)
        return max(observed, 0.5) / expected if expected > 0 else 0.0, expected

    r_short, e_short = ratio(rows[-short:])
    r_all, _ = ratio(rows)
    if r_short <= 0 or r_all <= 0:
        return rows
    sd = math.sqrt(params.dispersion / max(e_short, 1.0))
    return rows[-short:] if abs(math.log(r_short / r_all)) > z * sd else rows


def recent_level(samples: Sequence[HourSample], profile: Profile | None,
                 params: ForecastParams = ForecastParams()) -> Level:
    """The level of the last ``params.recent_hours`` hourly samples against ``profile``
    (or, without one, just the recent rates); the last two hours alone when they show a
    change (:func:`_latest`)."""
    recent = list(samples[-params.recent_hours:])
    if not recent:
        return Level()
    n = len(recent)
    cross = sum(s.crossings for s in recent)
    wd = sum(s.withdrawals for s in recent)
    arr_rows = _latest(recent, profile, False, params)
    arr = sum(s.arrivals for s in arr_rows)
    queued = _latest([s for s in recent if s.queue], profile, True, params)
    cap_obs = sum(s.crossings for s in queued)
    cap_rate = cap_obs / len(queued) if queued else None
    if profile is not None and queued:
        # a new regime of clearance (a collapse) is measured over the trailing run of
        # queue-limited hours (up to a day) that each cleared under half the profile:
        # few crossings make a noisy rate
        slots = profile.slots
        exp6 = sum(slots[hour_of_week(s.start_ms)].capacity for s in queued)
        if exp6 > 0 and _shrunk_ratio(float(cap_obs), exp6, params.dispersion)[0] < 1 / REGIME:
            run: list[HourSample] = []
            for s in reversed(samples[-24:]):
                if not s.queue:
                    continue
                if s.crossings * REGIME >= slots[hour_of_week(s.start_ms)].capacity:
                    break
                run.append(s)
            if len(run) > len(queued):
                queued = run
                cap_obs = sum(s.crossings for s in run)
                cap_rate = cap_obs / len(run)
    a_sd = math.sqrt(params.dispersion / max(arr, 1))
    c_sd = math.sqrt(params.dispersion / max(cap_obs, 1)) if queued else 0.5
    base = Level(1.0, a_sd, 1.0, c_sd, arr / len(arr_rows), cap_rate, cross / n, wd / n, n)
    if profile is None:
        return base
    slots = profile.slots
    exp_arr = sum(slots[hour_of_week(s.start_ms)].arrivals for s in arr_rows)
    a, a_sd = _shrunk_ratio(float(arr), exp_arr, params.dispersion)
    c, c_sd = 1.0, 0.0
    exp_cap = sum(slots[hour_of_week(s.start_ms)].capacity for s in queued)
    if queued and exp_cap > 0:
        c, c_sd = _shrunk_ratio(float(cap_obs), exp_cap, params.dispersion)
    elif profile.capacity_hours == 0:
        c_sd = 0.5  # capacity never measured with a queue: a lower bound, uncertain
    return Level(a, a_sd, c, c_sd, base.arrivals_per_hour, cap_rate,
                 base.crossings_per_hour, base.withdrawals_per_hour, n,
                 arrivals_regime=not 1 / REGIME <= a <= REGIME,
                 capacity_regime=not 1 / REGIME <= c <= REGIME)


# -- projection ----------------------------------------------------------------------------

def _normal_sf(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2.0))


@dataclass(frozen=True, slots=True)
class _Hourly:
    arrivals: float
    arrivals_sd: float
    capacity: float
    capacity_sd: float
    withdrawals: float


def _rates(t_ms: int, profile: Profile | None, level: Level, basis: Basis,
           open_hours: tuple[int, int]) -> _Hourly:
    if basis == "profile" and profile is not None:
        s = profile.slots[hour_of_week(t_ms)]
        opened = s.open and is_open(t_ms, open_hours)
        arr = level.arrivals_per_hour if level.arrivals_regime else s.arrivals * level.arrivals
        arr_sd = math.sqrt(max(arr, 1.0)) if level.arrivals_regime else \
            s.arrivals_sd * level.arrivals
        if level.capacity_regime and level.capacity_per_hour is not None:
            cap, cap_sd = level.capacity_per_hour, math.sqrt(max(level.capacity_per_hour, 1.0))
        else:
            cap, cap_sd = s.capacity * level.capacity, s.capacity_sd * level.capacity
        # withdrawals follow the clearing (a truck leaves the queue when it moves)
        wd = s.withdrawals * (cap / s.capacity if s.capacity > 0 else 1.0)
        if not opened:
            cap = cap_sd = 0.0
        return _Hourly(arr, arr_sd, cap, cap_sd, wd)
    opened = is_open(t_ms, open_hours)
    cap_rate = level.capacity_per_hour
    if cap_rate is None:  # no queue-limited hour: what crossed is a lower bound
        cap_rate = level.crossings_per_hour
    cap = cap_rate if opened else 0.0
    # the recent hours include closed ones: scale to the open share of a day
    share = (open_hours[1] - open_hours[0]) / 24
    if level.capacity_per_hour is None and 0 < share < 1:
        cap = cap / share if opened else 0.0
    return _Hourly(level.arrivals_per_hour, math.sqrt(max(level.arrivals_per_hour, 1.0)),
                   cap, math.sqrt(max(cap, 1.0)) if cap else 0.0, level.withdrawals_per_hour)


class CapacityWalk:
    """Cumulative clearance capacity from the start of an hour, for wait walks (hourly
    steps, :data:`MAX_WAIT_HOURS` long)."""

    __slots__ = ("origin_ms", "cum")

    def __init__(self, origin_ms: int, capacities: Sequence[float]) -> None:
        self.origin_ms = origin_ms
        cum = [0.0]
        for c in capacities:
            cum.append(cum[-1] + max(0.0, c))
        self.cum = cum

    def total_at(self, t_ms: int) -> float:
        x = (t_ms - self.origin_ms) / HOUR_MS
        i = int(x)
        if i >= len(self.cum) - 1:
            return self.cum[-1]
        return self.cum[i] + (self.cum[i + 1] - self.cum[i]) * (x - i)

    def time_to(self, from_ms: int, amount: float, scale: float = 1.0) -> float | None:
        """Seconds from ``from_ms`` until ``amount`` more vehicles (capacity × ``scale``)
        have been cleared; None beyond the walk."""
        if scale <= 0:
            return None
        target = self.total_at(from_ms) + amount / scale
        cum = self.cum
        if target > cum[-1]:
            return None
        i = bisect.bisect_left(cum, target)
        if i == 0:
            return 0.0
        lo, hi = cum[i - 1], cum[i]
        x = (i - 1) + ((target - lo) / (hi - lo) if hi > lo else 0.0)
        t = self.origin_ms + x * HOUR_MS
        return max(0.0, (t - from_ms) / 1000)


def wait_seconds(ahead: float, capacities: Sequence[float], origin_ms: int,
                 join_ms: int | None = None) -> float | None:
    """Expected wait of a truck joining at ``join_ms`` (default ``origin_ms``) behind
    ``ahead`` vehicles, where ``capacities[i]`` is the clearance capacity of hour ``i``
    from ``origin_ms``: the time until ``ahead + 1`` vehicles have been cleared."""
    walk = CapacityWalk(origin_ms, capacities)
    return walk.time_to(origin_ms if join_ms is None else join_ms, max(0.0, ahead) + 1.0)


def project(*, gate_id: str, direction: str | None, made_at_ms: int, backlog_now: int,
            profile: Profile | None, level: Level, yard_capacity: int,
            open_hours: tuple[int, int] = (0, 24), hours: int = 48,
            params: ForecastParams = ForecastParams()) -> GateForecast:
    """Project the backlog ``hours`` hours ahead from ``made_at_ms`` (see the module
    docstring). Hour 0 is the (partly elapsed) hour containing ``made_at_ms``."""
    history = profile.history_hours if profile is not None else 0.0
    basis: Basis
    if profile is not None and history >= params.min_history_hours:
        basis = "profile"
    elif level.hours > 0:
        basis = "recent"
    else:
        basis = "none"
    hour0 = made_at_ms - made_at_ms % HOUR_MS
    n_walk = max(hours, MAX_WAIT_HOURS + 1)
    week = [_rates(hour0 + i * HOUR_MS, profile, level, basis, open_hours)
            for i in range(WEEK_HOURS)]
    rates = [week[i % WEEK_HOURS] for i in range(n_walk)]  # the rates repeat weekly
    first_share = (hour0 + HOUR_MS - made_at_ms) / HOUR_MS
    caps = [r.capacity for r in rates]
    walk = CapacityWalk(hour0, caps)
    cap_rel = level.capacity_rel_sd
    backlog = float(backlog_now)
    var = 0.0
    cum_arr = cum_cap = 0.0
    out: list[HourForecast] = []
    for i in range(hours):
        r = rates[i]
        share = first_share if i == 0 else 1.0
        a, c, x = r.arrivals * share, r.capacity * share, r.withdrawals * share
        start_backlog = backlog
        nxt = max(0.0, backlog + a - c - x)
        cleared = max(0.0, backlog + a - x - nxt)
        cum_arr += a
        cum_cap += c
        if nxt > 0:
            var += share * (r.arrivals_sd ** 2 + r.capacity_sd ** 2)
        else:  # an empty queue forgets: about an hour's arrivals of noise remain
            var = max(a, 1.0)
        level_sd = math.hypot(level.arrivals_rel_sd * cum_arr, cap_rel * cum_cap)
        sd = math.sqrt(var + level_sd ** 2) if nxt > 0 else math.sqrt(var)
        low, high = max(0.0, nxt - Z80 * sd), nxt + Z80 * sd
        p_full = 1.0 if nxt >= yard_capacity else (
            0.0 if sd <= 0 else _normal_sf((yard_capacity - nxt) / sd))
        join = made_at_ms if i == 0 else hour0 + i * HOUR_MS
        lo_b = start_backlog if i == 0 else out[-1].backlog_low
        hi_b = start_backlog if i == 0 else out[-1].backlog_high
        w = walk.time_to(join, start_backlog + 1.0)
        # the clearing itself is random too: ~ sqrt(n) on n vehicles to clear
        w_lo = walk.time_to(join, max(1.0, lo_b + 1.0 - Z80 * math.sqrt(
            params.dispersion * (lo_b + 1.0))), 1.0 + Z80 * cap_rel)
        w_hi = walk.time_to(join, hi_b + 1.0 + Z80 * math.sqrt(
            params.dispersion * (hi_b + 1.0)), max(0.05, 1.0 - Z80 * cap_rel))
        if w is not None:
            w_lo = min(w_lo, w) if w_lo is not None else w
        if w_hi is not None and w is not None:
            w_hi = max(w_hi, w)
        out.append(HourForecast(hour0 + i * HOUR_MS, a, cleared, nxt, low, high, w, w_lo,
                                w_hi, min(1.0, max(0.0, p_full)), c, x))
        backlog = nxt
    day = [rates[i] for i in range(24)]
    first = out[0] if out else None
    return GateForecast(
        gate_id=gate_id, direction=direction, made_at_ms=made_at_ms,
        backlog_now=backlog_now, hours=tuple(out),
        arrivals_per_day=sum(r.arrivals for r in day),
        clearances_per_day=sum(r.capacity for r in day),
        basis=basis, history_hours=history,
        wait_now_seconds=first.wait_seconds if first else
        walk.time_to(made_at_ms, backlog_now + 1.0),
        wait_now_low_seconds=first.wait_low_seconds if first else None,
        wait_now_high_seconds=first.wait_high_seconds if first else None,
        arrivals_level=level.arrivals, capacity_level=level.capacity, walk=walk)


def fit(samples: Sequence[HourSample], open_hours: tuple[int, int] = (0, 24),
        params: ForecastParams = ForecastParams()) -> tuple[Profile | None, Level]:
    """Profile and recent level from hourly samples. The profile is learned from the hours
    *before* the recent ones (``params.recent_hours``) once there is a day of them, so the
    level compares the recent hours with a past they are not part of (learned with them,
    a surge would raise its own yardstick and be under-read); its ``history_hours`` counts
    every sample."""
    if not samples:
        return None, Level()
    past = samples[:-params.recent_hours] if len(samples) - params.recent_hours >= \
        params.min_history_hours else samples
    profile = learn_profile(past, open_hours, params)
    profile = Profile(profile.slots, float(len(samples)), profile.capacity_hours)
    usable = profile.history_hours >= params.min_history_hours
    return profile, recent_level(samples, profile if usable else None, params)


def forecast(windows: Iterable[WindowRecord], *, gate_id: str, made_at_ms: int,
             backlog_now: int, yard_capacity: int, direction: str | None = None,
             open_hours: tuple[int, int] = (0, 24), hours: int = 48,
             params: ForecastParams = ForecastParams()) -> GateForecast:
    """The whole model in one call, from a gate's closed windows (any order) up to
    ``made_at_ms``."""
    profile, level = fit(hour_samples(windows, direction, made_at_ms), open_hours, params)
    return project(gate_id=gate_id, direction=direction, made_at_ms=made_at_ms,
                   backlog_now=backlog_now, profile=profile, level=level,
                   yard_capacity=yard_capacity, open_hours=open_hours, hours=hours,
                   params=params)

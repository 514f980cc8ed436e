"""History aggregations, pure: closed windows → series points (5 min, 1 h, 1 day) and
hour-of-week patterns (mean and 90th percentile). Computed in Python from the stored rows,
so SQLite and PostgreSQL give the same numbers (no SQL percentile functions).

Rules (documented in ``docs/history.md``):

- a series step with no stored window is left out: no data is not zero;
- the backlog of a step is the gate's backlog when its last window closed
  (``waiting_export + waiting_import``; ``None`` for records written before that was kept);
- a pattern's hour instances are the local hours (``utc_offset_ms``, +07:00 for Lạng Sơn)
  between the gate's first and last stored window in the range: an hour without a window
  inside that span had no transitions (0 arrivals, 0 crossings, the backlog carried over
  from the last window, no wait); hours outside it are not counted;
- mean and p90 are over the hour instances of each hour of the week (p90 interpolated
  linearly between the nearest ranks, like numpy's default).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gatewatch.streams.records import DirectionTotals, WindowRecord

__all__ = ["HOUR_MS", "STEPS", "WEEK_MS", "HourPattern", "SeriesPoint", "Stat", "backlog_of",
           "patterns_of", "percentile", "series_of"]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
#: the series steps the API accepts, in milliseconds
STEPS = {"5m": 300_000, "1h": HOUR_MS, "1d": DAY_MS}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: 1970-01-01 was a Thursday: hour-of-week 0 is Monday 00:00 local time
_EPOCH_HOUR_OF_WEEK = 3 * 24


def backlog_of(r: WindowRecord) -> int | None:
    """The gate's backlog when ``r`` closed, or ``None`` when the record does not say."""
    e, i = r.waiting_export, r.waiting_import
    if e is None and i is None:
        return None
    return int(e or 0) + int(i or 0)


@dataclass(frozen=True, slots=True)
class SeriesPoint(DirectionTotals):
    """The windows of one step ``[start_ms, end_ms)`` summed."""

    start_ms: int
    end_ms: int
    windows: int
    arrivals_export: int
    arrivals_import: int
    crossings_export: int
    crossings_import: int
    withdrawals_export: int
    withdrawals_import: int
    waits_count: int
    waits_sum_seconds: float
    waits_max_seconds: float
    backlog_end: int | None
    backlog_max: int | None

    @property
    def wait_mean_seconds(self) -> float | None:
        return self.waits_sum_seconds / self.waits_count if self.waits_count else None


def series_of(records: Iterable[WindowRecord], step_ms: int, utc_offset_ms: int = 0
              ) -> list[SeriesPoint]:
    """``records`` (one gate) summed per step; steps of a day start at local midnight
    (``utc_offset_ms``), shorter steps at UTC multiples (the same for whole-hour
    offsets). Oldest first; steps without windows are left out."""
    offset = utc_offset_ms if step_ms >= DAY_MS else 0
    buckets: dict[int, list[WindowRecord]] = {}
    for r in records:
        start = (r.start_ms + offset) // step_ms * step_ms - offset
        buckets.setdefault(start, []).append(r)
    out = []
    for start in sorted(buckets):
        rs = sorted(buckets[start], key=lambda r: r.start_ms)
        backlogs = [b for b in map(backlog_of, rs) if b is not None]
        out.append(SeriesPoint(
            start, start + step_ms, len(rs),
            sum(r.arrivals_export for r in rs), sum(r.arrivals_import for r in rs),
            sum(r.crossings_export for r in rs), sum(r.crossings_import for r in rs),
            sum(r.withdrawals_export for r in rs), sum(r.withdrawals_import for r in rs),
            sum(r.waits_count for r in rs), sum(r.waits_sum_seconds for r in rs),
            max(r.waits_max_seconds for r in rs),
            backlog_of(rs[-1]) if backlogs else None, max(backlogs) if backlogs else None))
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values``, linear between the nearest ranks;
    ``None`` for no values."""
    if not values:
        return None
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class Stat:
    """Mean and 90th percentile of a quantity over the hour instances that have it."""

    samples: int
    mean: float | None
    p90: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        if not values:
            return cls(0, None, None)
        return cls(len(values), sum(values) / len(values), percentile(values, 0.9))


@dataclass(frozen=True, slots=True)
class HourPattern:
    """One hour of the week (0 = Monday 00:00-01:00 local time)."""

    hour_of_week: int
    arrivals: Stat
    crossings: Stat
    backlog: Stat
    wait_seconds: Stat

    @property
    def weekday(self) -> str:
        return WEEKDAYS[self.hour_of_week // 24]

    @property
    def hour(self) -> int:
        return self.hour_of_week % 24


def patterns_of(records: Iterable[WindowRecord], utc_offset_ms: int = 0
                ) -> list[HourPattern]:
    """Hour-of-week patterns of ``records`` (one gate, the range already chosen): 168
    entries, Monday 00:00 first; an hour of the week never observed has empty stats."""
    hours: dict[int, list[WindowRecord]] = {}
    for r in records:
        hours.setdefault((r.start_ms + utc_offset_ms) // HOUR_MS, []).append(r)
    values: list[tuple[list[float], list[float], list[float], list[float]]] = [
        ([], [], [], []) for _ in range(168)]
    if hours:
        backlog: int | None = None
        for h in range(min(hours), max(hours) + 1):
            rs = sorted(hours.get(h, ()), key=lambda r: r.start_ms)
            for r in rs:
                b = backlog_of(r)
                backlog = b if b is not None else backlog
            arrivals, crossings, backlogs, waits = values[(h + _EPOCH_HOUR_OF_WEEK) % 168]
            arrivals.append(sum(r.arrivals for r in rs))
            crossings.append(sum(r.crossings for r in rs))
            if backlog is not None:
                backlogs.append(backlog)
            count = sum(r.waits_count for r in rs)
            if count:
                waits.append(sum(r.waits_sum_seconds for r in rs) / count)
    return [HourPattern(how, Stat.of(a), Stat.of(c), Stat.of(b), Stat.of(w))
            for how, (a, c, b, w) in enumerate(values)]

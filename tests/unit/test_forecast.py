"""The forecast model (core/forecast.py) and the per-gate estimates (core/estimates.py),
with explicit numbers and explicit times."""

from __future__ import annotations

import pytest

from gatewatch.core.estimates import MIN_ESTIMATE_HOURS, Estimates
from gatewatch.core.forecast import (
    HOUR_MS,
    HourSample,
    Level,
    fit,
    forecast,
    hour_samples,
    is_open,
    learn_profile,
    project,
    recent_level,
    wait_seconds,
)
from gatewatch.streams.records import WindowRecord
from tests.support import gates

#: Monday 2021-11-15 00:00 +07:00 (= Sunday 17:00 UTC), a whole hour
T0 = 1_636_909_200_000
W = 300_000  # 5-minute windows


def windows(hours: int, *, arrivals: int, crossings: int, start: int = T0,
            backlog: int | None = 50, closed_local: tuple[int, int] | None = None,
            wait_s: float = 3600.0) -> list[WindowRecord]:
    """``hours`` of 5-minute windows with the given counts per hour (spread evenly); no
    crossing in the local hours [from, to) of ``closed_local``."""
    out = []
    for h in range(hours):
        for k in range(12):
            s = start + h * HOUR_MS + k * W
            local = (s // HOUR_MS + 7) % 24
            shut = closed_local is not None and closed_local[0] <= local < closed_local[1]
            a = arrivals // 12 + (1 if k < arrivals % 12 else 0)
            c = 0 if shut else crossings // 12 + (1 if k < crossings % 12 else 0)
            out.append(WindowRecord("huu-nghi", s, s + W, a, 0, c, 0, 0, 0, c, c * wait_s,
                                    wait_s, "event_time", waiting_export=backlog,
                                    waiting_import=0 if backlog is not None else None))
    return out


def test_hour_samples_sum_windows_and_mark_queue_limited_hours():
    samples = hour_samples(windows(3, arrivals=24, crossings=36), None, T0 + 3 * HOUR_MS)
    assert [(s.arrivals, s.crossings) for s in samples] == [(24, 36)] * 3
    # the first hour: its trucks waited an hour, over five gaps between crossings (the
    # backlog before it is unknown); the others: a backlog (50) at both ends of the hour
    assert [s.queue for s in samples] == [True, True, True]
    quick = hour_samples(windows(1, arrivals=24, crossings=36, wait_s=60), None,
                         T0 + HOUR_MS)
    assert [s.queue for s in quick] == [False]  # waited a minute: no queue


def test_an_hour_with_no_backlog_does_not_measure_capacity():
    samples = hour_samples(windows(3, arrivals=10, crossings=10, backlog=0, wait_s=60), None,
                           T0 + 3 * HOUR_MS)
    assert not any(s.queue for s in samples)


def test_a_long_gap_in_the_data_is_left_out_not_counted_as_zero():
    ws = windows(2, arrivals=12, crossings=12) + windows(
        2, arrivals=12, crossings=12, start=T0 + 10 * HOUR_MS)
    starts = [s.start_ms for s in hour_samples(ws, None, T0 + 12 * HOUR_MS)]
    # hours 2 and 9 border data: zero hours; 3-8 are a gap
    assert starts == [T0 + h * HOUR_MS for h in (0, 1, 2, 9, 10, 11)]


def test_steady_gate_projects_the_queue_draining_at_capacity_minus_arrivals():
    ws = windows(48, arrivals=24, crossings=36)
    fc = forecast(ws, gate_id="huu-nghi", made_at_ms=T0 + 48 * HOUR_MS, backlog_now=120,
                  yard_capacity=1000, hours=24)
    assert fc.basis == "profile" and fc.history_hours == 48
    assert fc.hours[0].arrivals == pytest.approx(24) and fc.hours[0].capacity == \
        pytest.approx(36)
    assert [round(h.backlog) for h in fc.hours[:3]] == [108, 96, 84]
    assert fc.hours[9].backlog == 0  # 120 / 12 per hour = 10 hours
    # a truck joining now behind 120 waits until 121 have cleared at 36/h
    assert fc.wait_now_seconds == pytest.approx(121 / 36 * 3600)
    assert fc.arrivals_per_day == pytest.approx(24 * 24)
    assert fc.clearances_per_day == pytest.approx(36 * 24)


def test_intervals_contain_the_point_and_p_full_grows_with_the_backlog():
    ws = windows(48, arrivals=60, crossings=36)
    fc = forecast(ws, gate_id="huu-nghi", made_at_ms=T0 + 48 * HOUR_MS + 600_000,
                  backlog_now=300, yard_capacity=800, hours=48)
    for h in fc.hours:
        assert h.backlog_low <= h.backlog <= h.backlog_high
        assert h.wait_low_seconds is not None and h.wait_high_seconds is not None
        assert h.wait_seconds is not None
        assert h.wait_low_seconds <= h.wait_seconds <= h.wait_high_seconds
        assert 0 <= h.p_full <= 1
    p = [h.p_full for h in fc.hours]
    assert p == sorted(p) and p[0] < 0.01 and p[-1] > 0.99  # +24/h: full after ~21 h
    # the first hour is the rest of the current one (50 of 60 minutes)
    assert fc.hours[0].arrivals == pytest.approx(50)
    assert fc.at(fc.made_at_ms) is fc.hours[0]
    assert fc.at(fc.made_at_ms + 48 * HOUR_MS) is None


def test_a_gate_closed_at_night_clears_nothing_at_night():
    """Open 7-17 local (configured); 20 arrivals an hour all day, 60 crossings an hour
    when open: at night the backlog grows by the arrivals, by day it falls by 40/h."""
    ws = windows(72, arrivals=20, crossings=60, closed_local=(0, 7))  # none 0-7 either
    made_at = T0 + 72 * HOUR_MS  # Thursday 00:00 local
    fc = forecast(ws, gate_id="huu-nghi", made_at_ms=made_at, backlog_now=100,
                  yard_capacity=10_000, open_hours=(7, 17), hours=24)
    for h in fc.hours:
        local = (h.start_ms // HOUR_MS + 7) % 24
        if not 7 <= local < 17:
            assert h.capacity == 0 and h.clearances == 0, local
        else:
            assert h.capacity > 0
    night = fc.hours[6]  # 06:00-07:00 local, closed
    assert night.backlog == pytest.approx(100 + 7 * 20)
    # a truck joining at midnight waits for the 07:00 opening and then 101 clearances
    assert fc.wait_now_seconds is not None
    assert fc.wait_now_seconds == pytest.approx(7 * 3600 + 101 / 60 * 3600, rel=0.02)
    assert is_open(made_at + 7 * HOUR_MS, (7, 17)) and not is_open(made_at, (7, 17))


def test_opening_hours_are_also_learned_from_history():
    ws = windows(72, arrivals=20, crossings=60, closed_local=(0, 7))
    fc = forecast(ws, gate_id="huu-nghi", made_at_ms=T0 + 72 * HOUR_MS, backlog_now=100,
                  yard_capacity=10_000, hours=24)  # configured: always open
    assert [h.capacity for h in fc.hours[:7]] == [0.0] * 7


def test_zero_history_falls_back_to_recent_rates_and_says_so():
    ws = windows(5, arrivals=30, crossings=40)
    fc = forecast(ws, gate_id="huu-nghi", made_at_ms=T0 + 5 * HOUR_MS, backlog_now=80,
                  yard_capacity=500, hours=6)
    assert fc.basis == "recent" and fc.history_hours == 5
    assert fc.hours[0].arrivals == pytest.approx(30)
    assert fc.hours[0].capacity == pytest.approx(40)
    assert fc.wait_now_seconds == pytest.approx(81 / 40 * 3600)
    none = forecast([], gate_id="huu-nghi", made_at_ms=T0, backlog_now=3, yard_capacity=10)
    assert none.basis == "none" and none.wait_now_seconds is None  # nothing clears


def test_wait_is_finite_when_the_gate_is_open_and_clears_and_none_when_it_never_clears():
    assert wait_seconds(9, [10.0] * 5, T0) == pytest.approx(3600)
    assert wait_seconds(9, [0.0, 10.0], T0) == pytest.approx(7200)  # closed the first hour
    assert wait_seconds(9, [0.0] * 100, T0) is None
    assert wait_seconds(9, [10.0] * 5, T0, join_ms=T0 + 1_800_000) == pytest.approx(3600)


def test_a_collapse_of_clearance_is_believed_at_once():
    """A week at 60/h, then six hours clearing 2/h: the forecast's capacity follows the
    collapse (a new regime), not the profile."""
    ws = windows(7 * 24, arrivals=60, crossings=60)
    after = T0 + 7 * 24 * HOUR_MS
    ws += windows(6, arrivals=60, crossings=2, start=after, backlog=400)
    samples = hour_samples(ws, None, after + 6 * HOUR_MS)
    level = recent_level(samples, learn_profile(samples))
    assert level.capacity_regime and level.capacity < 0.1
    fc = forecast(ws, gate_id="huu-nghi", made_at_ms=after + 6 * HOUR_MS, backlog_now=700,
                  yard_capacity=1500, hours=24)
    assert fc.hours[3].capacity == pytest.approx(2, rel=0.01)
    assert fc.wait_now_seconds == pytest.approx(701 / 2 * 3600, rel=0.01)  # ~14.6 days


def test_an_ordinary_fluctuation_is_mostly_ignored():
    samples = [HourSample(T0 + h * HOUR_MS, 60, 60, 0, True) for h in range(7 * 24)]
    samples += [HourSample(T0 + (7 * 24 + h) * HOUR_MS, 64, 57, 0, True) for h in range(6)]
    level = recent_level(samples, learn_profile(samples))
    assert level.arrivals == pytest.approx(1.0) and level.capacity == pytest.approx(1.0)
    assert not level.arrivals_regime and not level.capacity_regime


def test_project_without_profile_and_level_is_empty_not_an_error():
    fc = project(gate_id="g", direction="export", made_at_ms=T0, backlog_now=0, profile=None,
                 level=Level(), yard_capacity=10, hours=3)
    assert fc.basis == "none" and len(fc.hours) == 3 and all(h.backlog == 0 for h in fc.hours)
    assert fc.direction == "export"


# -- estimates: expected wait and its scoring ---------------------------------------------

def test_expected_wait_needs_hours_of_windows_then_scores_the_estimate_shown():
    est = Estimates(gates())
    at = T0 + (MIN_ESTIMATE_HOURS - 1) * HOUR_MS
    est.add_windows(windows(MIN_ESTIMATE_HOURS - 1, arrivals=30, crossings=30))
    assert est.expected_wait("huu-nghi", at, 29) is None  # too little history
    est.add_windows(windows(1, arrivals=30, crossings=30, start=at))
    at += HOUR_MS
    shown = est.expected_wait("huu-nghi", at, 29)
    assert shown == pytest.approx(3600)  # 30 ahead (29 + itself) at 30/h
    est.note("huu-nghi", at, shown)
    est.note("huu-nghi", at + 5 * 60_000, 7200.0)
    assert est.shown_at("huu-nghi", at + 30_000) == pytest.approx(3600)
    assert est.shown_at("huu-nghi", at + 3 * 60_000) == pytest.approx(3600)  # carried
    assert est.shown_at("huu-nghi", at + 5 * 60_000) == 7200.0
    assert est.shown_at("huu-nghi", at - 60_000) is None
    # a truck that joined at `at` and crossed 50 minutes later: shown 3600, real 3000
    assert est.score("huu-nghi", at + 3_000_000, 3_000_000) == pytest.approx(600)
    # one that joined before anything was shown is not scored
    assert est.score("huu-nghi", at + 3_000_000, 3_600_000 + 3_000_000) is None
    assert est.score("huu-nghi", at + 5 * 60_000 + 4_000_000, 4_000_000) == \
        pytest.approx(3200)
    summary = est.errors("huu-nghi")
    assert summary.scored == 2
    assert summary.mean_absolute_error_seconds == pytest.approx(1900)
    assert summary.bias_seconds == pytest.approx(1900)
    assert est.errors("tan-thanh").scored == 0


def test_a_republished_window_replaces_the_earlier_one():
    est = Estimates(gates())
    ws = windows(1, arrivals=12, crossings=12)
    est.add_windows(ws)
    est.add_windows(ws[:3])
    assert est.window_count("huu-nghi") == 12


def test_a_surge_is_read_at_its_size_and_a_change_two_hours_old_is_seen():
    """The profile is learned from the hours before the recent ones, so a surge does not
    raise its own yardstick; a change in the last two hours replaces the six-hour level."""
    week = [HourSample(T0 + h * HOUR_MS, 48, 45, 0, True) for h in range(7 * 24)]
    after = T0 + 7 * 24 * HOUR_MS
    surge = [HourSample(after + h * HOUR_MS, 82, 45, 0, True) for h in range(6)]
    profile, level = fit(week + surge)
    assert profile is not None and profile.history_hours == 7 * 24 + 6
    # (shrunk a little towards 1 by what chance could do: about 5 % here)
    assert level.arrivals == pytest.approx(82 / 48, rel=0.06)
    collapse = [HourSample(after + h * HOUR_MS, 48, 45 if h < 4 else 1, 0, True)
                for h in range(6)]
    _profile, level = fit(week + collapse)
    assert level.capacity_regime and level.capacity_per_hour == pytest.approx(1)

"""Event-time windows: grace, lateness, idle (wall-clock) closing, rolling hour."""

from tests.support import MIN, T0, ev, ledger

SEC = 1000


def test_window_closes_on_event_time_after_grace():
    led = ledger(window_seconds=300, grace_seconds=60)
    led.apply(ev("A", "queued", T0 + 1 * MIN), T0)
    led.apply(ev("B", "queued", T0 + 2 * MIN), T0)
    assert led.advance(T0) == []
    led.apply(ev("C", "queued", T0 + 5 * MIN + 59 * SEC), T0)  # end + 59 s: still open
    assert led.advance(T0) == []
    led.apply(ev("D", "queued", T0 + 6 * MIN), T0)  # end + grace reached
    recs = led.advance(T0)
    assert len(recs) == 1
    r = recs[0]
    assert (r.gate_id, r.start_ms, r.end_ms, r.arrivals, r.closed_by) == (
        "huu-nghi", T0, T0 + 5 * MIN, 2, "event_time")


def test_late_event_within_grace_counts_after_grace_does_not():
    led = ledger(window_seconds=300, grace_seconds=60)
    led.apply(ev("A", "queued", T0 + 5 * MIN + 30 * SEC), T0)
    led.apply(ev("B", "queued", T0 + 4 * MIN), T0)  # late but within grace
    led.apply(ev("C", "queued", T0 + 7 * MIN), T0)  # closes [T0, T0+5m)
    recs = led.advance(T0)
    assert [r.arrivals for r in recs] == [1]
    led.apply(ev("D", "queued", T0 + 3 * MIN), T0)  # too late for its window
    book = led.books["huu-nghi"]
    assert book.windows.late_transitions == 1
    assert led.waiting_total("huu-nghi") == 4  # but the queue still counts it


def test_silent_gate_closes_by_wall_clock():
    led = ledger(window_seconds=300, grace_seconds=60, idle_seconds=30)
    wall = T0 + 10 * 24 * 60 * MIN  # wall clock far from event time (a replay)
    led.apply(ev("A", "queued", T0 + MIN), wall)
    assert led.advance(wall + 29 * SEC) == []
    recs = led.advance(wall + 30 * SEC + 6 * MIN)
    assert len(recs) == 1 and recs[0].closed_by == "idle" and recs[0].arrivals == 1


def test_watermark_never_moves_back_and_empty_windows_are_not_published():
    led = ledger(window_seconds=60, grace_seconds=0)
    led.apply(ev("A", "queued", T0 + 10 * MIN), T0)
    led.apply(ev("B", "queued", T0), T0)  # far behind: its window is closed already
    w = led.books["huu-nghi"].windows
    assert w.watermark_ms == T0 + 10 * MIN
    assert led.advance(T0) == []


def test_window_record_counts_by_kind_direction_and_waits():
    led = ledger(window_seconds=300, grace_seconds=0)
    led.apply(ev("A", "queued", T0, direction="import"), T0)
    led.apply(ev("A", "crossed", T0 + 2 * MIN, direction="import"), T0)
    led.apply(ev("B", "queued", T0 + MIN), T0)
    led.apply(ev("B", "withdrawn", T0 + 3 * MIN), T0)
    led.apply(ev("Z", "queued", T0 + 5 * MIN), T0)
    [r] = led.advance(T0)
    assert (r.arrivals_export, r.arrivals_import) == (1, 1)
    assert (r.crossings_export, r.crossings_import) == (0, 1)
    assert (r.withdrawals_export, r.withdrawals_import) == (1, 0)
    assert (r.waits_count, r.waits_sum_seconds, r.waits_max_seconds) == (1, 120.0, 120.0)


def test_rolling_hour_sums_the_last_twelve_windows():
    led = ledger(window_seconds=300, grace_seconds=0)
    for i in range(15):  # one arrival per 5-minute window for 75 minutes
        led.apply(ev(f"V{i}", "queued", T0 + i * 5 * MIN), T0)
    led.advance(T0)
    hour = led.books["huu-nghi"].windows.rolling_hour()
    assert hour[0] == 12

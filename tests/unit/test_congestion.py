"""Congestion levels with hysteresis and hold times, estimates, alert lifecycle."""

from gatewatch.core.congestion import GateAlerts, LevelState, Thresholds, next_level
from gatewatch.core.signals import Counts, GateSignals, estimate_wait_seconds, seconds_until_full

T = Thresholds(warning=100, critical=200, warning_clear=90, critical_clear=180,
               raise_hold_ms=60_000, clear_hold_ms=300_000)
S = 1000


def run(levels, backlog_at):
    """Feed (t_seconds, backlog) pairs; return the level after each."""
    state = LevelState()
    out = []
    for t, b in backlog_at:
        state = next_level(state, b, T, t * S)
        out.append(state.level)
    return out


def test_raise_needs_the_hold_time():
    assert run(None, [(0, 150), (30, 150), (59, 150), (60, 150)]) == [
        "normal", "normal", "normal", "warning"]


def test_brief_spike_does_not_raise():
    assert run(None, [(0, 150), (30, 80), (70, 150), (100, 150)]) == ["normal"] * 4


def test_oscillation_around_threshold_does_not_flap():
    seq = [(0, 105), (60, 105)] + [(60 + 10 * i, 95 if i % 2 else 105) for i in range(1, 60)]
    levels = run(None, seq)
    assert levels[1] == "warning"
    assert set(levels[1:]) == {"warning"}  # 95 is above warning_clear (90)


def test_clear_needs_clear_level_and_hold():
    seq = [(0, 150), (60, 150), (100, 50), (200, 50), (399, 50), (400, 50)]
    assert run(None, seq) == ["normal", "warning", "warning", "warning", "warning", "normal"]


def test_escalation_and_deescalation():
    seq = [(0, 150), (60, 150), (100, 250), (160, 250), (200, 185), (600, 185), (700, 170),
           (1000, 170)]
    assert run(None, seq) == ["normal", "warning", "warning", "critical", "critical",
                              "critical", "critical", "warning"]


def test_estimates():
    assert estimate_wait_seconds(120, 60) == 7200
    assert estimate_wait_seconds(120, 0) is None  # unknown, not a division by zero
    assert seconds_until_full(900, 1000, 50) == 7200
    assert seconds_until_full(900, 1000, -5) is None
    assert seconds_until_full(1200, 1000, 5) == 0


def signals(backlog, has_data=True, silent=0.0, perishable=0.0, crossings=60):
    return GateSignals("huu-nghi", has_data, silent, waiting_export=backlog, waiting_import=0,
                       capacity=1000,
                       last_hour=Counts(arrivals_export=70, crossings_export=crossings),
                       oldest_perishable_wait_seconds=perishable)


def alerts():
    return GateAlerts("huu-nghi", T, perishable_limit_seconds=3600, no_data_seconds=600)


def test_one_incident_fires_escalates_and_resolves_once():
    g = alerts()
    changes = []
    timeline = [(0, 150), (60, 150), (90, 95), (120, 105), (130, 250), (190, 250), (250, 250),
                (300, 50), (600, 50)]
    for t, b in timeline:
        changes += [(t, c.change, c.alert.severity) for c in g.evaluate(signals(b), t * S)]
    assert changes == [(60, "fired", "warning"), (190, "escalated", "critical"),
                       (600, "resolved", "critical")]


def test_alert_carries_estimate_and_ids():
    g = alerts()
    g.evaluate(signals(150), 0)
    [c] = g.evaluate(signals(150), 60 * S)
    assert c.alert.alert_id == "huu-nghi:congestion"
    assert c.alert.started_ms == 60 * S and c.alert.state == "firing"
    assert c.estimated_wait_seconds == 150 / 60 * 3600


def test_perishable_and_no_data_alerts_are_distinct_from_empty():
    g = alerts()
    assert g.evaluate(signals(0, perishable=4000), 0) == []  # the raise hold (60 s) first
    assert [c.alert.kind for c in g.evaluate(signals(0, perishable=4060), 60 * S)] == [
        "perishable_wait"]
    changes = g.evaluate(signals(0, has_data=False, silent=700), 61 * S)
    # the feed stopping resolves nothing: the perishable alert holds, no_data covers it
    assert [(c.alert.kind, c.change) for c in changes] == [("no_data", "fired")]
    assert set(g.active) == {"huu-nghi:perishable_wait", "huu-nghi:no_data"}
    # an empty gate that keeps reporting is not "no data"
    g2 = alerts()
    assert g2.evaluate(signals(0, silent=5), 0) == []


def test_a_pending_clear_does_not_run_through_a_data_outage():
    """The backlog fell below the clear level just before the feed stopped: the clear hold
    starts again when data returns, it does not count the silent hour as "below"."""
    g = alerts()
    for t, b in [(0, 150), (60, 150), (100, 50)]:
        g.evaluate(signals(b), t * S)
    assert g.level.level == "warning"

    def seen(b: int, t: int, **kw: object) -> list[tuple[str, str]]:
        return [(c.alert.kind, c.change) for c in g.evaluate(signals(b, **kw), t * S)]

    assert seen(50, 800, has_data=False, silent=700) == [("no_data", "fired")]
    assert seen(50, 1300) == [("no_data", "resolved")]  # the congestion alert holds
    assert seen(50, 1599) == []
    assert seen(50, 1600) == [("congestion", "resolved")]  # 300 s of data below clear

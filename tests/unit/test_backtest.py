"""The backtest (tools/backtest.py) on a short one-gate scenario: it scores, it compares
with the baselines, and it can fail."""

from __future__ import annotations

from dataclasses import replace

from gatewatch.core.forecast import GateForecast
from gatewatch.gates import parse_gates
from gatewatch.tools import backtest
from gatewatch.tools.scenarios import Scenario

GATES = parse_gates("""
version: 1
gates:
  - id: coc-nam
    name: "Cốc Nam"
    yard_capacity: 400
    thresholds: {warning: 150, critical: 300}
    simulation: {arrivals_per_hour: 12, clearance_per_hour: 13}
""", "test-gates.yaml")
SC = Scenario("tiny", "a quiet gate", start_ms=1_636_909_200_000, duration_hours=6, seed=3,
              rate=1.0, day_profile=False, initial_backlog=0.3, overrides={}, expect=[])


def bad_model(windows, gate, made_at_ms, backlog_now) -> GateForecast:
    """A deliberately bad model: the backlog multiplies by ten, the wait is a month."""
    fc = backtest.default_model(windows, gate, made_at_ms, backlog_now)
    return replace(fc, hours=tuple(replace(h, backlog=10 * h.backlog + 50,
                                           backlog_low=0, backlog_high=1e9,
                                           wait_seconds=30 * 86_400.0)
                                   for h in fc.hours))


def test_a_bad_model_is_reported_as_failing():
    res = backtest.run_scenario(SC, GATES, lead_in_days=2, model=bad_model)
    assert res.origins == 6
    goal = dict(res.goal())
    assert goal == {"backlog +6h": False, "backlog +24h": False, "wait +6h": False,
                    "wait +24h": False}
    assert not res.passed
    text = backtest.render([res])
    assert "FAILED" in text and "NOT MET" in text
    doc = res.to_json()
    assert doc["passed"] is False and doc["goal"]["backlog +24h"] is False


def test_the_backtest_scores_the_model_and_both_baselines_at_every_horizon():
    res = backtest.run_scenario(SC, GATES, lead_in_days=2)
    for h in backtest.BACKLOG_HORIZONS:
        for method in backtest.METHODS:
            assert res.scores[("backlog", h, method)].n == 6, (h, method)
    assert res.scores[("wait", 0, "model")].n > 0
    # a few trucks may never be seen crossing (a plate drawn twice by the simulator)
    assert res.waits_realised > 100 and res.waits_censored <= res.waits_realised // 100
    # persistence at +1 h is the backlog then minus the backlog now
    assert res.mae("backlog", 1, "persistence") is not None
    doc = res.to_json()
    assert set(doc["mae"]) == {"backlog", "wait"}
    assert set(doc["mae"]["backlog"]) == {"+1h", "+6h", "+24h"}
    assert "interval_coverage" in doc["mae"]["backlog"]["+6h"]["model"]


def test_a_gate_log_backtests_too(tmp_path):
    """A JSON Lines log as `gatewatch replay` reads it: its first day is history only."""
    from gatewatch.tools.simulate import Faults, TrafficModel

    sim = TrafficModel(GATES, SC.start_ms, seed=5, faults=Faults(0.0, 0.0, 0.0),
                       initial_backlog=0.3)
    log = tmp_path / "coc-nam.jsonl"
    log.write_bytes(b"\n".join(m.value for m in sim.advance(SC.start_ms + 54 * 3_600_000)))
    res = backtest.run_log(log, GATES, lead_in_days=1)
    # every hour after the first day and before the last: later ones lack their +24 h
    hours = (res.scored_to_ms - res.scored_from_ms) // 3_600_000
    assert hours >= 5 and res.origins == hours
    assert res.scores[("backlog", 24, "model")].n == hours
    assert res.scores[("wait", 0, "model")].n > 0
    assert "history only" in res.notes[0]

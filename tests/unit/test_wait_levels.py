"""Levels that mean something: the expected wait raises a gate's level (core/congestion.py),
per-gate wait thresholds and opening hours in the gate configuration (gates.py)."""

from __future__ import annotations

import pytest

from gatewatch.core.congestion import GateAlerts, LevelState, Thresholds, next_level
from gatewatch.core.signals import Counts, GateSignals
from gatewatch.errors import ConfigError
from gatewatch.gates import DEFAULT_WAIT_THRESHOLDS, parse_gates
from tests.support import ONE_GATE_YAML

T = Thresholds(warning=100, critical=200, warning_clear=90, critical_clear=180,
               raise_hold_ms=60_000, clear_hold_ms=300_000,
               wait_warning_seconds=43_200, wait_critical_seconds=172_800)
S = 1000
DAY = 86_400


def levels(seq):
    """Feed (t_seconds, backlog, expected wait seconds) triples; the level after each."""
    state, out = LevelState(), []
    for t, backlog, wait in seq:
        state = next_level(state, backlog, T, t * S, wait)
        out.append(state.level)
    return out


def test_a_multi_day_wait_is_never_normal_even_with_a_small_backlog():
    # 40 trucks (under the 100 warning), but the gate clears 1 a day: 41 days
    assert levels([(0, 40, 41 * DAY), (60, 40, 41 * DAY)]) == ["normal", "critical"]
    assert levels([(0, 40, 20 * 3600), (60, 40, 20 * 3600)]) == ["normal", "warning"]


def test_an_unknown_wait_raises_nothing_and_the_backlog_still_counts():
    assert levels([(0, 40, None), (60, 40, None)]) == ["normal", "normal"]
    assert levels([(0, 250, 600), (60, 250, 600)]) == ["normal", "critical"]


def test_a_wait_level_clears_only_below_90_percent_and_after_the_hold():
    seq = [(0, 10, 50_000), (60, 10, 50_000),        # warning (> 12 h)
           (100, 10, 40_000), (500, 10, 40_000),     # 11.1 h: above 90 % of 12 h, holds
           (600, 10, 30_000), (899, 10, 30_000), (900, 10, 30_000)]
    assert levels(seq) == ["normal", "warning", "warning", "warning", "warning", "warning",
                           "normal"]


def test_thresholds_without_wait_keep_the_backlog_rule():
    t = Thresholds(100, 200, 90, 180, 0, 0)
    assert next_level(LevelState(), 10, t, 0, 10 * DAY).level == "normal"


def signals(backlog: int, wait: float | None) -> GateSignals:
    return GateSignals("huu-nghi", True, 1.0, backlog, 0, 1500, Counts(0, 0, 1, 0),
                       expected_wait_seconds=wait)


def test_gate_alerts_fire_congestion_on_the_expected_wait():
    ga = GateAlerts("huu-nghi", T, perishable_limit_seconds=1e9, no_data_seconds=900)
    assert ga.evaluate(signals(40, 3 * DAY), 0) == []
    changes = ga.evaluate(signals(40, 3 * DAY), 60_000)
    assert [(c.change, c.alert.kind, c.alert.severity) for c in changes] == [
        ("fired", "congestion", "critical")]
    assert changes[0].estimated_wait_seconds == 3 * DAY  # the calibrated estimate


BASE = ONE_GATE_YAML


def test_open_hours_and_wait_thresholds_are_read_with_defaults():
    (g,) = parse_gates(BASE, "site.yaml").gates
    assert g.open_hours == (0, 24)
    assert (g.wait_warning_seconds, g.wait_critical_seconds) == DEFAULT_WAIT_THRESHOLDS
    (g,) = parse_gates(BASE + "    open_hours: [7, 19]\n"
                       "    wait_thresholds: {warning: 3600, critical: 7200}\n",
                       "site.yaml").gates
    assert g.open_hours == (7, 19)
    assert (g.wait_warning_seconds, g.wait_critical_seconds) == (3600, 7200)


@pytest.mark.parametrize("extra,key,reason", [
    ("    open_hours: [19, 7]\n", "gates[0].open_hours", "from < to"),
    ("    open_hours: [0, 25]\n", "gates[0].open_hours", "from < to"),
    ("    open_hours: 8\n", "gates[0].open_hours", "from < to"),
    ("    wait_thresholds: {warning: 7200, critical: 3600}\n",
     "gates[0].wait_thresholds.critical", "greater than warning"),
    ("    wait_thresholds: {warning: soon}\n", "gates[0].wait_thresholds.warning", "integer"),
    ("    wait_thresholds: {warn: 10}\n", "gates[0].wait_thresholds.warn", "unknown key"),
    ("    wait_thresholds: 3600\n", "gates[0].wait_thresholds", "mapping"),
])
def test_bad_open_hours_or_wait_thresholds_name_file_key_and_reason(extra, key, reason):
    with pytest.raises(ConfigError) as info:
        parse_gates(BASE + extra, "site.yaml")
    assert info.value.source == "site.yaml"
    assert info.value.key == key
    assert reason in info.value.reason

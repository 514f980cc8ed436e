"""Gate configuration ``accepts``/``lanes``/``open_hours`` and the capacity-aware gate
recommendations (pure: shares, bases, the forecast at the truck's arrival)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from gatewatch.core.recommend import Capacity, capacity_of, recommend
from gatewatch.core.signals import Counts, GateSignals
from gatewatch.errors import ConfigError
from gatewatch.gates import load_gates, parse_gates
from tests.support import ONE_GATE_YAML, StandInForecast, StandInHour

BASE = ONE_GATE_YAML


def test_bundled_gates_say_what_cargo_and_directions_they_handle():
    gs = load_gates()
    hn, cm, cn = gs.get("huu-nghi"), gs.get("chi-ma"), gs.get("coc-nam")
    assert hn and cm and cn
    assert hn.accepts("perishable", "export") and hn.accepts(None, None)
    assert not cm.accepts("perishable", "export") and cm.accepts("general", "import")
    assert cn.accepts("perishable", "export") and not cn.accepts("general", "import")
    assert hn.lanes == 8 and hn.open_hours == (0, 24)


def test_accepts_lanes_and_open_hours_are_parsed():
    g = parse_gates(BASE + "    accepts: {cargo: [general, perishable]}\n    lanes: 3\n"
                    "    open_hours: [7, 19]\n", "x.yaml").gates[0]
    assert g.accepts_cargo == ("perishable", "general") and g.accepts_directions == (
        "export", "import")
    assert (g.lanes, g.open_hours) == (3, (7, 19))


@pytest.mark.parametrize("extra,key,reason", [
    ("accepts: {cargo: [fruit]}", "gates[0].accepts.cargo[0]", "must be one of"),
    ("accepts: {cargo: []}", "gates[0].accepts.cargo", "non-empty"),
    ("accepts: {directions: [export, export]}", "gates[0].accepts.directions", "twice"),
    ("accepts: {lanes: 2}", "gates[0].accepts.lanes", "unknown key"),
    ("accepts: general", "gates[0].accepts", "mapping"),
    ("lanes: 0", "gates[0].lanes", ">= 1"),
    ("open_hours: [19, 7]", "gates[0].open_hours", "from < to"),
    ("open_hours: [0, 25]", "gates[0].open_hours", "from < to"),
])
def test_bad_accepts_lanes_or_hours_name_the_key(extra, key, reason):
    with pytest.raises(ConfigError) as info:
        parse_gates(BASE + f"    {extra}\n", "x.yaml")
    assert info.value.key == key and reason in info.value.reason


def cap(gate_id, clear, arrive, backlog=0.0, yard=1000, wait=None):
    return Capacity(gate_id, clear, arrive, backlog, yard, wait)


def test_shares_follow_spare_capacity_not_the_shortest_queue_now():
    # "a" looks emptiest (wait 1 h) but has little spare capacity; "b" has the most
    opts = recommend([cap("a", 100, 90, wait=3600), cap("b", 600, 300, backlog=200,
                                                          wait=7200), cap("c", 50, 60)])
    shares = {o.capacity.gate_id: o.share for o in opts}
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares == pytest.approx({"b": 300 / 310, "a": 10 / 310, "c": 0.0})
    assert [o.capacity.gate_id for o in opts] == ["b", "a", "c"]
    assert {o.basis for o in opts} == {"spare_capacity"}


def test_the_yard_limits_what_a_gate_can_absorb():
    opts = recommend([cap("a", 1000, 0, backlog=990, yard=1000), cap("b", 100, 0)])
    assert {o.capacity.gate_id: o.share for o in opts} == pytest.approx(
        {"a": 10 / 110, "b": 100 / 110})


def test_without_spare_capacity_the_waits_are_levelled_then_growth_is_shared():
    opts = recommend([cap("a", 100, 150, backlog=50), cap("b", 100, 150, backlog=90)])
    assert {o.capacity.gate_id: o.share for o in opts} == pytest.approx({"a": 50 / 60,
                                                                          "b": 10 / 60})
    assert opts[0].basis == "day_headroom"
    opts = recommend([cap("a", 100, 150, backlog=500), cap("b", 300, 400, backlog=900)])
    assert {o.capacity.gate_id: o.share for o in opts} == pytest.approx({"a": 0.25,
                                                                          "b": 0.75})
    assert opts[0].basis == "throughput"
    nothing = recommend([cap("a", 0, 10), cap("b", 0, 0, backlog=2000, yard=10)])
    assert [o.share for o in nothing] == [0.0, 0.0] and nothing[0].basis == "none"
    assert recommend([]) == []


Hour, Forecast = StandInHour, StandInForecast

def signals(backlog=40, crossed=10, arrived=12) -> GateSignals:
    return GateSignals("huu-nghi", True, 1.0, backlog, 0, 1500,
                       Counts(arrivals_export=arrived, crossings_export=crossed))


def test_capacity_reads_the_forecast_at_the_arrival_or_falls_back_to_the_last_hour():
    gate = load_gates().get("huu-nghi")
    assert gate is not None
    fc = Forecast(40, tuple(Hour(h * 3_600_000, 40 + h, 100.0 * h) for h in range(48)),
                  1000.0, 1400.0)
    c = capacity_of(gate, signals(), fc, 6 * 3_600_000 + 5)
    assert (c.backlog, c.wait_seconds, c.spare_per_day, c.source) == (46, 600.0, 400.0,
                                                                       "forecast")
    beyond = capacity_of(gate, signals(), fc, 100 * 3_600_000)
    assert beyond.backlog == 40 and beyond.wait_seconds == pytest.approx(40 / 1400 * 86400)
    c = capacity_of(gate, signals(), None, 0)
    assert (c.clearances_per_day, c.arrivals_per_day, c.backlog, c.source) == (
        240.0, 288.0, 40.0, "last_hour")
    assert c.wait_seconds == pytest.approx(40 / 10 * 3600)


def test_diversion_capacity_aware_shares_keep_the_worst_wait_lower():
    path = Path(__file__).resolve().parents[2] / "bench" / "diversion.py"
    spec = importlib.util.spec_from_file_location("diversion", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["diversion"] = mod  # dataclasses look their module up while defining
    try:
        spec.loader.exec_module(mod)
    finally:
        del sys.modules["diversion"]
    lowest, aware = mod.simulate("lowest_wait"), mod.simulate("capacity")
    assert max(w["max_wait_hours"] for w in aware.values()) < \
        0.8 * max(w["max_wait_hours"] for w in lowest.values())
    # the gate that reopens is flooded by "lowest current wait", not by the shares
    assert aware["tan-thanh"]["max_backlog"] < 0.5 * lowest["tan-thanh"]["max_backlog"]
    # capacity-aware advice never overfills a yard
    gates = load_gates()
    assert all(w["max_backlog"] <= gates.get(g).yard_capacity for g, w in aware.items())

"""What-if rehearsals: the spec grammar and its errors, the factors over time, thinning in
the simulator, and one rehearsal through the offline run."""

from __future__ import annotations

import pytest

from gatewatch.errors import ConfigError
from gatewatch.gates import load_gates
from gatewatch.settings import Settings
from gatewatch.tools.scenarios import load_scenario
from gatewatch.tools.simulate import Faults, TrafficModel
from gatewatch.tools.whatif import (
    WhatIf,
    milestones,
    parse_whatif,
    rehearse,
    render_milestones,
)

GATES = load_gates()
H = 3_600_000
DAY = 24 * H


@pytest.mark.parametrize("spec,expected", [
    ("huu-nghi.clearance=50%@+2d", ("huu-nghi", "clearance", 0.5, 2 * DAY, None)),
    ("tan-thanh.closed@+1d..+3d", ("tan-thanh", "clearance", 0.0, DAY, 3 * DAY)),
    ("*.arrivals=150%@+1d", ("*", "arrivals", 1.5, DAY, None)),
    ("chi-ma.arrivals=80%", ("chi-ma", "arrivals", 0.8, 0, None)),
    ("coc-nam.clearance=0%@+6h..+12.5h", ("coc-nam", "clearance", 0.0, 6 * H, 12.5 * H)),
])
def test_specs(spec, expected):
    c = parse_whatif(spec, GATES)
    assert (c.gate_id, c.kind, c.factor, c.from_ms, c.until_ms) == expected


@pytest.mark.parametrize("spec,reason", [
    ("mong-cai.closed@+1d", "no gate 'mong-cai'"),
    ("huu-nghi.closed", "closed needs a time"),
    ("huu-nghi.clearance=half", "expected GATE.clearance=N%"),
    ("huu-nghi.clearance=50", "expected GATE.clearance=N%"),
    ("huu-nghi.speed=50%", "expected GATE.clearance=N%"),
    ("huu-nghi.clearance=50%@2d", "expected GATE.clearance=N%"),
    ("huu-nghi.closed@+3d..+1d", "ends (+1d) before it starts (+3d)"),
    ("*.arrivals=5000%", "more than 1000%"),
])
def test_bad_specs_name_the_spec_and_the_reason(spec, reason):
    with pytest.raises(ConfigError) as info:
        parse_whatif(spec, GATES)
    assert info.value.source == "--what-if" and info.value.key == repr(spec)
    assert reason in info.value.reason


def test_factors_over_time_multiply_and_the_peak_is_the_thinning_rate():
    t0 = 1_000_000
    w = WhatIf([parse_whatif("tan-thanh.closed@+1d..+3d", GATES),
                parse_whatif("*.arrivals=150%@+1d", GATES),
                parse_whatif("tan-thanh.arrivals=50%@+2d", GATES)], t0)
    assert w.factor("tan-thanh", "clearance", t0 + DAY - 1) == 1.0
    assert w.factor("tan-thanh", "clearance", t0 + DAY) == 0.0
    assert w.factor("tan-thanh", "clearance", t0 + 3 * DAY) == 1.0
    assert w.factor("huu-nghi", "clearance", t0 + 2 * DAY) == 1.0
    assert w.factor("tan-thanh", "arrivals", t0 + 2 * DAY) == 0.75
    assert w.peak("tan-thanh", "arrivals") == 1.5 and w.peak("tan-thanh", "clearance") == 1.0


def test_a_closed_gate_clears_nothing_in_its_window_and_clears_again_after():
    t0 = 1_640_000_000_000
    w = WhatIf([parse_whatif("huu-nghi.closed@+2h..+4h", GATES)], t0)
    model = TrafficModel(GATES, t0, seed=3, faults=Faults(0, 0, 0), whatif=w)
    crossed: list[int] = []
    for step in range(1, 6 * 60 + 1):
        for out in model.advance(t0 + step * 60_000):
            if out.key == b"huu-nghi" and b'"crossed"' in out.value:
                crossed.append(out.send_ms)
    hours = [(t - t0) // H for t in crossed]
    assert hours.count(2) == hours.count(3) == 0
    assert hours.count(1) > 30 and hours.count(4) > 30  # ~62 an hour otherwise


def test_a_rehearsal_reports_when_each_gate_reaches_each_level(tmp_path):
    path = tmp_path / "short.yaml"
    path.write_text("""
name: short
description: "Tân Thanh under pressure"
start: "2021-08-02T00:00:00+07:00"
duration_hours: 8
seed: 7
initial_backlog: 0.9
gates:
  tan-thanh: {arrivals_multiplier: 1.5}
expect: []
""")
    sc = load_scenario(str(path))
    settings = Settings(advisory_raise_hold_seconds=600, advisory_clear_hold_seconds=600)
    r = rehearse(sc, GATES, settings, ["tan-thanh.closed@+1h..+8h"])
    assert r.lines[1] == "what-if: tan-thanh clearance x0 from +1 h until +8 h"
    tt = r.what_if["tan-thanh"]
    assert {"warning", "critical", "hold_shipments"} <= tt.keys()
    assert tt["critical"] < r.planned.get("tan-thanh", {}).get("critical", 99)
    assert r.what_if_waiting["tan-thanh"] > r.planned_waiting["tan-thanh"] + 200
    row = next(line for line in r.lines if line.startswith("tan-thanh"))
    assert f"+{tt['critical']:.1f} h" in row and f"+{tt['hold_shipments']:.1f} h" in row


def test_milestones_come_from_alert_and_advisory_records():
    changes = [{"gate_id": "a", "kind": "congestion", "change": "fired", "severity": "warning",
                "hours": 1.0},
               {"gate_id": "a", "kind": "congestion", "change": "escalated",
                "severity": "critical", "hours": 2.0},
               {"gate_id": "b", "kind": "congestion", "change": "fired", "severity": "critical",
                "hours": 3.0},
               {"gate_id": "b", "kind": "perishable_wait", "change": "fired",
                "severity": "warning", "hours": 0.5}]
    advisories = [{"gate_id": "a", "advice": "slow_down", "hours": 0.2},
                  {"gate_id": "a", "advice": "hold_shipments", "hours": 2.5},
                  {"gate_id": "a", "advice": "hold_shipments", "hours": 4.0}]
    assert milestones(changes, advisories) == {
        "a": {"warning": 1.0, "critical": 2.0, "hold_shipments": 2.5},
        "b": {"warning": 3.0, "critical": 3.0}}
    lines = render_milestones(GATES, {}, {"huu-nghi": {"warning": 1.25}})
    assert "never → +1.2 h" in next(ln for ln in lines if ln.startswith("huu-nghi"))

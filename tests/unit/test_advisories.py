"""Shipment advisories: the figures, the levels, hysteresis and hold times with explicit
times, no data, the records and texts, and the processor's tick."""

from __future__ import annotations

import orjson
import pytest

from gatewatch.alerts.advisories import encode_advisory
from gatewatch.core.advisories import GateAdvisories, figures_of
from gatewatch.core.processor import Processor, SourceRecord
from gatewatch.core.signals import Counts, GateSignals
from gatewatch.gates import load_gates
from gatewatch.settings import Settings
from tests.support import StandInForecast, StandInHour, ev, message

MIN = 60_000
H = 3_600_000
KEEPS = 6 * 3600.0


Hour, Forecast = StandInHour, StandInForecast

def sig(export=100, imp=0, crossed=10, arrived=10, has_data=True) -> GateSignals:
    return GateSignals("tan-thanh", has_data, 1.0, export, imp, 1200,
                       Counts(arrivals_export=arrived, crossings_export=crossed))


def fc(wait_h: float, arrive=1000.0, clear=1000.0, p_full=0.0, now=0) -> Forecast:
    return Forecast(100, tuple(Hour(now + i * H, 100, wait_h * 3600, p_full)
                               for i in range(48)), arrive, clear, made_at_ms=now)


def test_figures_from_a_forecast():
    f = figures_of(sig(export=300), "export", fc(2, arrive=900, clear=1200, p_full=0.3),
                   KEEPS, True, 0)
    assert (f.backlog, f.clearances_per_day, f.arrivals_per_day) == (300, 1200, 900)
    assert f.days_to_drain == 1.0 and f.expected_wait_seconds == 7200
    assert f.yard_full_chance == 0.3 and not f.exceeds_keep_time and f.source == "forecast"
    grow = figures_of(sig(export=300), "export", fc(8, arrive=1300, clear=1200), KEEPS, True, 0)
    assert grow.days_to_drain is None and grow.exceeds_keep_time and grow.growing


def test_figures_without_a_forecast_come_from_the_last_hour():
    f = figures_of(sig(export=50, imp=20, crossed=10, arrived=12), "import", None, KEEPS,
                   True, 0)
    assert (f.backlog, f.clearances_per_day, f.arrivals_per_day, f.source) == (
        20, 240.0, 288.0, "last_hour")
    assert f.expected_wait_seconds == 70 / 10 * 3600 and f.days_to_drain is None


def advisories() -> GateAdvisories:
    return GateAdvisories("tan-thanh", raise_hold_ms=MIN, clear_hold_ms=5 * MIN)


def step(ga: GateAdvisories, wait_h: float, t: int, **kw):
    s = kw.pop("signals", sig())
    return ga.evaluate("export", s, figures_of(s, "export", fc(wait_h, now=t, **kw), KEEPS,
                                               True, t), t)


def test_levels_rise_after_the_raise_hold_and_clear_after_the_clear_hold():
    ga = advisories()
    assert step(ga, 1, 0) is None                        # ratio 1/6: normal
    assert step(ga, 3.5, 1 * MIN) is None                # slow_down pending
    ch = step(ga, 3.5, 2 * MIN)                          # held a minute: raised
    assert ch and (ch.change, ch.previous, ch.advisory.advice) == ("raised", "normal",
                                                                    "slow_down")
    assert ch.advisory.since_ms == 2 * MIN
    assert step(ga, 7, 3 * MIN) is None
    ch = step(ga, 7, 4 * MIN)
    assert ch and (ch.change, ch.advisory.advice) == ("raised", "hold_shipments")
    # just under the limit (ratio 0.95 ≥ 0.9): hysteresis keeps holding
    for t in range(5, 20):
        assert step(ga, 5.7, t * MIN) is None
    assert ga.current["export"].advice == "hold_shipments"
    # well under: the clear hold (5 min) must pass; a relapse restarts it
    assert step(ga, 4, 20 * MIN) is None
    assert step(ga, 4, 24 * MIN) is None
    assert step(ga, 7, 24 * MIN + 30_000) is None
    assert step(ga, 4, 25 * MIN) is None
    assert step(ga, 4, 29 * MIN) is None
    ch = step(ga, 4, 30 * MIN)
    assert ch and (ch.change, ch.advisory.advice) == ("lowered", "slow_down")
    step(ga, 0.5, 31 * MIN)
    ch = step(ga, 0.5, 36 * MIN)
    assert ch and (ch.change, ch.advisory.advice, ch.previous) == ("cleared", "normal",
                                                                    "slow_down")


def test_a_growing_queue_or_a_filling_yard_slows_down_earlier():
    ga = advisories()
    step(ga, 2, 0, arrive=1200, clear=1000)              # ratio 1/3 and growing
    assert step(ga, 2, MIN, arrive=1200, clear=1000).advisory.advice == "slow_down"
    ga = advisories()
    step(ga, 0.5, 0, p_full=0.6)
    assert step(ga, 0.5, MIN, p_full=0.6).advisory.advice == "hold_shipments"


def test_without_data_the_advice_holds_and_a_pending_change_restarts():
    ga = advisories()
    step(ga, 7, 0)
    step(ga, 7, MIN)
    assert ga.current["export"].advice == "hold_shipments"
    for t in range(2, 30):
        assert step(ga, 0, t * MIN, signals=sig(has_data=False)) is None
    assert ga.current["export"].advice == "hold_shipments"
    assert ga.current["export"].figures.expected_wait_seconds == 7 * 3600  # last known


def test_the_record_and_its_texts():
    ga = advisories()
    step(ga, 7, 0, arrive=1300, clear=1200)
    ch = step(ga, 7, MIN, arrive=1300, clear=1200)
    gate = load_gates().get("tan-thanh")
    assert ch and gate
    doc = orjson.loads(encode_advisory(ch, gate))
    assert doc["advisory_id"] == "tan-thanh:export" and doc["advice"] == "hold_shipments"
    assert doc["change"] == "raised" and doc["previous"] == "normal"
    assert doc["figures"]["days_to_drain"] is None and doc["figures"]["exceeds_keep_time"]
    assert doc["since"] == "1970-01-01T00:01:00.000Z"
    assert "TẠM DỪNG GỬI HÀNG" in doc["message"]["vi"] and "Tân Thanh" in doc["message"]["vi"]
    assert doc["message"]["en"].startswith("[HOLD SHIPMENTS] Tan Thanh Border Gate (export)")
    assert "7 h 00 min" in doc["message"]["en"] and "6 h 00 min" in doc["message"]["en"]


def coc_nam_held(raise_hold_s: int = 0, clear_hold_s: int | None = None):
    """A processor holding coc-nam's 60 trucks queued over 7 h, nobody crossed (coc-nam
    handles exports only): a truck joining now waits at least as long as the first has
    (7 h > 6 h), so hold_shipments is due."""
    holds = {} if clear_hold_s is None else {"advisory_clear_hold_seconds": clear_hold_s}
    proc = Processor(load_gates(), Settings(advisory_raise_hold_seconds=raise_hold_s, **holds))
    t0 = 1_700_000_000_000
    msgs = [message(ev(f"v{i}", "queued", t0 - (60 - i) * 7 * MIN, "coc-nam"))
            for i in range(60)]
    proc.apply_batch([SourceRecord("t", 0, i, t0, k, v) for i, (k, v) in enumerate(msgs)],
                     t0 + 100)
    return proc, t0


def test_the_processor_tick_advises_each_direction_a_gate_handles():
    proc, t0 = coc_nam_held(raise_hold_s=60)
    assert proc.tick(t0 + 1000).advisories == []         # pending (raise hold)
    assert proc.tick(t0 + 30_000).advisories == []       # advised at most once a minute
    changes = proc.tick(t0 + 61_000).advisories
    assert [(c.advisory.advisory_id, c.advisory.advice) for c in changes] == [
        ("coc-nam:export", "hold_shipments")]
    # under a day of history the forecast only extrapolates: the last hour gives the figures
    assert changes[0].advisory.figures.source == "last_hour"
    assert set(proc.advisories["coc-nam"].current) == {"export"}


@pytest.mark.parametrize("advice", ["normal", "slow_down", "hold_shipments"])
def test_every_advice_has_both_languages(advice):
    from gatewatch.alerts.advisories import TEMPLATES
    assert set(TEMPLATES[advice]) == {"vi", "en"}


def test_alertmanager_gets_an_advisory_as_gate_shipment_advisory():
    from gatewatch.alerts.advisories import as_alert_record
    from gatewatch.alerts.notify import to_alertmanager

    ga = advisories()
    gate = load_gates().get("tan-thanh")
    assert gate
    step(ga, 7, 0)
    raised = orjson.loads(encode_advisory(step(ga, 7, MIN), gate))
    rec = as_alert_record(raised)
    assert rec
    am = to_alertmanager(rec, 2 * MIN, 60)
    assert am["labels"] == {"alertname": "GateShipmentAdvisory", "gate": "tan-thanh",
                            "kind": "shipment_advisory", "severity": "critical",
                            "source": "gatewatch", "direction": "export",
                            "cargo": "all", "advice": "hold_shipments"}
    assert am["annotations"]["summary"].startswith("[HOLD SHIPMENTS]")
    assert am["endsAt"] > am["startsAt"]
    step(ga, 0, 2 * MIN)
    cleared = orjson.loads(encode_advisory(step(ga, 0, 7 * MIN), gate))
    assert cleared["change"] == "cleared"
    done = as_alert_record(cleared)
    assert done and done["state"] == "resolved" and done["severity"] == "critical"
    assert to_alertmanager(done, 8 * MIN, 60)["endsAt"] == "1970-01-01T00:07:00.000Z"
    assert as_alert_record({"advisory_id": "x"}) is None


def test_without_crossings_the_longest_wait_so_far_is_the_expected_wait():
    s = GateSignals("tan-thanh", True, 1.0, 30, 5, 1200, Counts(arrivals_export=4),
                    oldest_wait_export_seconds=5000.0, oldest_wait_import_seconds=300.0)
    assert figures_of(s, "export", None, KEEPS, True, 0).expected_wait_seconds == 5000.0
    assert figures_of(s, "import", None, KEEPS, True, 0).expected_wait_seconds == 300.0
    # a forecast whose hours know no wait, with trucks waiting: too long (hold)
    f = figures_of(sig(), "export", Forecast(100, (Hour(0, 100, None),), 10, 0), KEEPS, True, 0)
    assert f.expected_wait_seconds is None and f.exceeds_keep_time


def test_advisories_in_the_cap_feed_alert_update_cancel_and_valid_cap():
    from xml.etree import ElementTree as ET

    from gatewatch.alerts.advisories import advisory_notices
    from gatewatch.alerts.cap import CAP_NS, cap_entries, cap_message, find_message
    from tests.support import cap_errors

    gates = load_gates()
    gate = gates.get("tan-thanh")
    assert gate
    ga = advisories()
    records = []
    for t, wait in ((0, 3.5), (MIN, 3.5), (2 * MIN, 7), (3 * MIN, 7), (4 * MIN, 0),
                    (9 * MIN, 0)):
        ch = step(ga, wait, t)
        if ch:
            records.append(orjson.loads(encode_advisory(ch, gate)))
    assert [(r["change"], r["advice"]) for r in records] == [
        ("raised", "slow_down"), ("raised", "hold_shipments"), ("cleared", "normal")]
    kinds = []
    for upto in (1, 2, 3):
        [n] = advisory_notices(records[:upto], gates, 10 * MIN)
        kinds.append(n.msg_type)
        doc = cap_message(n, "gatewatch@langson.example")
        assert cap_errors(doc) == [], doc
        info = ET.fromstring(doc).find(f"{{{CAP_NS}}}info")  # noqa: S314 - our own output
        assert info is not None and info.findtext(f"{{{CAP_NS}}}language") == "vi-VN"
        if upto == 2:
            assert info.findtext(f"{{{CAP_NS}}}severity") == "Severe"
            assert "TẠM DỪNG GỬI HÀNG" in (info.findtext(f"{{{CAP_NS}}}headline") or "")
    assert kinds == ["Alert", "Update", "Cancel"]
    [first] = advisory_notices(records[:1], gates, 10 * MIN)
    [cancel] = advisory_notices(records, gates, 10 * MIN)
    assert cancel.original_identifier == first.identifier  # the Cancel names the Alert
    # every record's message, for fetching the ones the feed replaced (find_message)
    every = advisory_notices(records, gates, 10 * MIN, every=True)
    assert [n.msg_type for n in every] == kinds
    assert find_message(first.identifier, [cancel], every) == first
    # joined with the alerts; a Cancel leaves after 24 h
    assert len(cap_entries([], advisory_notices(records, gates, 10 * MIN), gates=gates,
                           now_ms=10 * MIN)) == 1
    assert advisory_notices(records, gates, 9 * MIN + 24 * H + 1) == []


def test_a_gate_moved_to_another_worker_loses_its_advisories():
    proc, t0 = coc_nam_held()
    proc.tick(t0 + 1000)
    assert proc.advisories["coc-nam"].current["export"].advice == "hold_shipments"
    proc.rebuild([], t0 + 2000, gates_held=set())  # its partition went elsewhere
    assert proc.advisories["coc-nam"].current == {}


def test_a_forecast_runs_on_event_time_and_may_cover_both_directions():
    # made at the gate's watermark, hours behind the wall clock (a replay): read from there
    late = Forecast(100, tuple(Hour(i * H, 100, 7200.0) for i in range(48)), 10, 20,
                    made_at_ms=0, direction=None)
    f = figures_of(sig(export=30, imp=12), "export", late, KEEPS, True, now_ms=5 * 24 * H)
    assert f.expected_wait_seconds == 7200.0 and f.backlog == 42  # both directions


def test_a_restart_takes_back_the_advice_in_force_and_does_not_publish_it_again():
    from gatewatch.alerts.advisories import advisory_states
    gate = load_gates().get("coc-nam")
    assert gate
    first, t0 = coc_nam_held(clear_hold_s=0)
    (raised,) = first.tick(t0 + 1000).advisories
    records = [orjson.loads(encode_advisory(raised, gate))]
    # a restarted worker with the same state: without the read-back it raises it again
    again, _ = coc_nam_held(clear_hold_s=0)
    assert [c.change for c in again.tick(t0 + 70_000).advisories] == ["raised"]
    restarted, _ = coc_nam_held(clear_hold_s=0)
    (state,) = advisory_states(records)
    assert (state.advisory_id, state.advice, state.since_ms) == (
        "coc-nam:export", "hold_shipments", t0 + 1000)
    assert restarted.restore_advisories([state]) == 1
    assert restarted.tick(t0 + 70_000).advisories == []  # the same advice: nothing new
    assert restarted.advisories["coc-nam"].current["export"].since_ms == t0 + 1000
    # the trucks cross: the advice clears, from the advice in force
    crossed = [message(ev(f"v{i}", "crossed", t0 + 80_000 + i, "coc-nam")) for i in range(60)]
    restarted.apply_batch([SourceRecord("t", 0, 100 + i, t0 + 90_000, k, v)
                           for i, (k, v) in enumerate(crossed)], t0 + 90_000)
    changes = [c for t in (140_000, 200_000, 260_000)
               for c in restarted.tick(t0 + t).advisories]
    assert [(c.change, c.previous) for c in changes] == [("cleared", "hold_shipments")]
    assert changes[0].advisory.started_ms == t0 + 1000  # the incident CAP refers to


def test_advisories_read_back_skip_cleared_malformed_and_foreign_ones():
    from gatewatch.alerts.advisories import advisory_states
    gate = load_gates().get("coc-nam")
    assert gate
    proc, t0 = coc_nam_held()
    (raised,) = proc.tick(t0 + 1000).advisories
    held = orjson.loads(encode_advisory(raised, gate))
    cleared = held | {"advice": "normal", "change": "cleared", "previous": "hold_shipments",
                      "since": "2023-11-14T22:20:00.000Z", "updated_at": "2023-11-14T22:20:00.000Z"}
    # cleared later: nothing in force; a record without an id or a time is skipped
    assert advisory_states([held, cleared, {"advice": "hold_shipments"},
                            held | {"advisory_id": "x:export", "since": "soon"}]) == []
    # a gate it does not hold, or a direction coc-nam does not handle (imports): not taken
    other, _ = coc_nam_held()
    import_side = held | {"advisory_id": "coc-nam:import", "direction": "import"}
    foreign = held | {"advisory_id": "huu-nghi:export", "gate_id": "huu-nghi"}
    assert other.restore_advisories(advisory_states([import_side, foreign])) == 0

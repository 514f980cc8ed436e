"""Alert lifecycles over days, through the Processor with explicit times: every firing alert
ends resolved or still tracked; perishable waits have hysteresis and hold times; no alert
resolves because data stopped; alert metrics stay visible while a gate has no data."""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry

from gatewatch.alerts.evaluator import encode_alert, firing_states
from gatewatch.core.congestion import AlertChange, AlertState
from gatewatch.core.processor import Processor, SourceRecord
from gatewatch.streams.codec import encode_event
from gatewatch.streams.records import CrossingEvent
from gatewatch.web.metrics import GateCollector, GatewatchMetrics
from tests.support import MIN, T0, ev, gates, processor

HOUR = 60 * MIN
_offsets = iter(range(10**9))


def rec(e: CrossingEvent) -> SourceRecord:
    return SourceRecord("gate.events", 0, next(_offsets), e.occurred_at_ms,
                        e.gate_id.encode(), encode_event(e))


def changes(fx_alerts: list[AlertChange]) -> list[tuple[str, str]]:
    return [(c.alert.kind, c.change) for c in fx_alerts]


def play(p: Processor, events: list[CrossingEvent], start: int, end: int,
         step: int = MIN) -> list[tuple[int, str, str]]:
    """Apply ``events`` minute by minute at their own time and tick; (t, kind, change)."""
    pending = sorted(events, key=lambda e: e.occurred_at_ms)
    out: list[tuple[int, str, str]] = []
    now, i = start, 0
    while now < end:
        now += step
        batch = []
        while i < len(pending) and pending[i].occurred_at_ms <= now:
            batch.append(rec(pending[i]))
            i += 1
        fx = p.apply_batch(batch, now)
        out += [(now, k, c) for k, c in changes(fx.alerts)]
        out += [(now, k, c) for k, c in changes(p.tick(now).alerts)]
    return out


# --- item 6: perishable hysteresis and holds ---------------------------------------------------

def test_fruit_trucks_clearing_at_about_the_limit_make_one_incident_in_12_hours():
    """A perishable truck every 10 min, each clearing 5 min over or under the 6 h limit:
    the oldest perishable wait saws around the limit all day. It used to fire and resolve
    with each truck (72 times in 12 h); it is one incident now."""
    p = processor()  # default holds (60 s / 300 s) and perishable limit (6 h)
    limit = 6 * HOUR
    events = []
    for i in range(12 * 6 + 36):
        queued = T0 + i * 10 * MIN
        events += [ev(f"F{i}", "queued", queued, cargo="perishable"),
                   ev(f"F{i}", "crossed", queued + limit + (5 if i % 2 else -5) * MIN,
                      cargo="perishable")]
    for m in range(0, 18 * 60, 4):  # other traffic keeps the feed alive
        events.append(ev(f"G{m}", "queued", T0 + m * MIN))
    seen = play(p, events, T0, T0 + 18 * HOUR)
    perishable = [(t, c) for t, k, c in seen if k == "perishable_wait"]
    assert len([c for _t, c in perishable if c == "fired"]) == 1, perishable
    assert perishable[0][0] > T0 + limit  # it did fire: the trucks did wait over the limit


def test_perishable_fires_after_the_raise_hold_and_resolves_below_the_clear_level():
    p = processor(perishable_max_wait_seconds=3600, no_data_seconds=7200)
    p.apply_batch([rec(ev("F", "queued", T0, cargo="perishable"))], T0)
    fx = p.apply_batch([rec(ev("K", "queued", T0 + 61 * MIN))], T0 + 61 * MIN)
    assert changes(fx.alerts) == []  # over the limit for 60 s, not yet for the raise hold
    fx = p.apply_batch([rec(ev("L", "queued", T0 + 62 * MIN))], T0 + 62 * MIN)
    assert changes(fx.alerts) == [("perishable_wait", "fired")]
    # F crosses: the oldest perishable wait is 0, below 90 % of the limit; the clear hold
    # (300 s) must pass before the alert resolves
    p.apply_batch([rec(ev("F", "crossed", T0 + 63 * MIN, cargo="perishable"))], T0 + 63 * MIN)
    assert changes(p.tick(T0 + 67 * MIN).alerts) == []
    assert changes(p.tick(T0 + 68 * MIN).alerts) == [("perishable_wait", "resolved")]


# --- item 6: no alert resolves because data stopped --------------------------------------------

def test_a_sensor_outage_resolves_nothing_and_the_data_resolves_it_after_the_clear_hold():
    """Congestion and a perishable wait fire; the cameras go dark for 3 h (the watermark
    follows the clock, the perishable wait keeps growing): only no_data fires. When the
    feed returns showing the queue gone, both resolve after the clear hold, not at once,
    and not as a new incident. (The feed-alive trucks overtake the queue: reconciliation
    would set the queue aside as unconfirmed, which is not what this test is about.)"""
    p = processor(perishable_max_wait_seconds=3600, reconcile=False)
    queue = [ev(f"V{i}", "queued", T0 + i * 1000) for i in range(11)]
    queue.append(ev("F", "queued", T0, cargo="perishable"))
    alive = [ev(f"K{m}", kind, T0 + m * MIN + (kind == "crossed"))
             for m in range(0, 62, 5) for kind in ("queued", "crossed")]
    seen = play(p, queue + alive, T0 - MIN, T0 + 62 * MIN)
    assert {(k, c) for _t, k, c in seen} == {("congestion", "fired"),
                                             ("perishable_wait", "fired")}
    # the outage: nothing but ticks for 3 hours
    outage = [(t, k, c) for t in range(T0 + 63 * MIN, T0 + 243 * MIN, MIN)
              for k, c in changes(p.tick(t).alerts)]
    assert [(k, c) for _t, k, c in outage] == [("no_data", "fired")]
    assert {a.kind for a in p.alerts["huu-nghi"].active.values()} == {
        "congestion", "perishable_wait", "no_data"}
    # the feed returns: every truck crossed during the outage
    back = T0 + 243 * MIN
    gone = [ev(e.vehicle_id, "crossed", back - MIN, cargo=e.cargo) for e in queue]
    fx = p.apply_batch([rec(e) for e in gone], back)
    assert changes(fx.alerts) == [("no_data", "resolved")]
    assert changes(p.tick(back + 4 * MIN).alerts) == []  # the clear hold starts with data
    assert sorted(changes(p.tick(back + 5 * MIN).alerts)) == [
        ("congestion", "resolved"), ("perishable_wait", "resolved")]


# --- item 5: orphaned alerts -------------------------------------------------------------------

def published(p: Processor, fx_alerts: list[AlertChange]) -> list[dict[str, object]]:
    """The gate.alerts records of these changes, as a restarted worker reads them back."""
    gs = p.gates
    out = []
    for c in fx_alerts:
        gate = gs.get(c.alert.gate_id)
        assert gate is not None
        out.append(orjson.loads(encode_alert(c, gate, "http://runbook")))
    return out


def test_a_firing_alert_of_a_gate_whose_state_expired_is_restored_and_then_resolved():
    """A Tết closure longer than the retention: congestion fires, the gate goes silent, the
    sweep expires every vehicle (the changelog holds nothing for the gate), the worker
    restarts. The worker that holds the gate's partition takes the alert back although the
    gate has no vehicle state, and the data resolves it when the feed returns."""
    settings = {"retention_seconds": 3600, "max_wait_seconds": 7200}
    before = processor(**settings)
    table: dict[bytes, bytes | None] = {}
    records: list[dict[str, object]] = []
    now = T0
    for i in range(12):
        now = T0 + i * 10_000
        fx = before.apply_batch([rec(ev(f"V{i}", "queued", now))], now)
        table.update({w.key: w.value for w in fx.writes})
        records += published(before, fx.alerts)
    fx = before.tick(now + 2 * MIN)
    records += published(before, fx.alerts)
    closed = T0 + 5 * 24 * HOUR  # five days later, still closed
    records += published(before, before.tick(closed).alerts)
    for step in before.sweep():
        table.update({w.key: w.value for w in step.writes})
    assert {str(r["kind"]) for r in records if r["state"] == "firing"} == {
        "congestion", "no_data"}
    assert {k: v for k, v in table.items() if v is not None} == {}  # all expired

    after = processor(**settings)  # the restart
    after.rebuild([(k, v, 0) for k, v in table.items()], closed + MIN, gates_held={"huu-nghi"})
    assert after.owned_gates() == {"huu-nghi"}
    assert after.restore_alerts(firing_states(records)) == 2
    assert changes(after.tick(closed + 2 * MIN).alerts) == []  # still tracked, not re-fired
    # the feed returns: two trucks waiting, far below the clear level
    back = closed + HOUR
    fx = after.apply_batch([rec(ev("N1", "queued", back)), rec(ev("N2", "queued", back))],
                           back)
    assert changes(fx.alerts) == [("no_data", "resolved")]
    assert changes(after.tick(back + 5 * MIN).alerts) == [("congestion", "resolved")]
    assert after.alerts["huu-nghi"].active == {}


def test_restore_skips_gates_on_partitions_this_worker_does_not_hold():
    p = processor()
    p.rebuild([], T0, gates_held={"huu-nghi"})
    theirs = AlertState("tan-thanh:congestion", "tan-thanh", "congestion", "firing",
                        "warning", 12, 10, T0, T0)
    ours = AlertState("huu-nghi:no_data", "huu-nghi", "no_data", "firing", "warning",
                      1000, 900, T0, T0)
    assert p.restore_alerts([theirs, ours]) == 1
    assert p.alerts["tan-thanh"].active == {} and list(p.alerts["huu-nghi"].active) == [
        "huu-nghi:no_data"]
    # a later rebalance moves huu-nghi away: its alert state goes with it
    p.rebuild([], T0 + MIN, gates_held={"tan-thanh"})
    assert p.alerts["huu-nghi"].active == {} and p.owned_gates() == {"tan-thanh"}


# --- item 9: alert metrics of a gate without data ----------------------------------------------

def test_alert_active_is_exported_for_a_gate_without_data():
    p = processor()
    p.apply_batch([rec(ev(f"V{i}", "queued", T0 + i * 1000)) for i in range(12)], T0 + MIN)
    assert changes(p.tick(T0 + 2 * MIN).alerts) == [("congestion", "fired")]
    assert changes(p.tick(T0 + 20 * MIN).alerts) == [("no_data", "fired")]
    registry = CollectorRegistry()
    GatewatchMetrics(registry, gates())
    registry.register(GateCollector(p, wall_ms=lambda: T0 + 20 * MIN))
    get = registry.get_sample_value
    assert get("gate_has_data", {"gate": "huu-nghi"}) == 0
    assert get("gate_alert_active",
               {"gate": "huu-nghi", "kind": "no_data", "severity": "warning"}) == 1
    assert get("gate_alert_active",
               {"gate": "huu-nghi", "kind": "congestion", "severity": "warning"}) == 1
    assert get("gate_congestion_level", {"gate": "huu-nghi"}) is None  # as documented
    assert get("gate_vehicles_waiting", {"gate": "huu-nghi", "direction": "export"}) is None

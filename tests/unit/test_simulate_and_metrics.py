"""The simulator's ground truth vs the ledger, and the metrics read from the ledger."""

from prometheus_client import CollectorRegistry

from gatewatch.core.ledger import Ledger
from gatewatch.gates import load_gates
from gatewatch.streams.codec import Decoder
from gatewatch.streams.records import CrossingEvent
from gatewatch.tools.simulate import Faults, TrafficModel
from gatewatch.web.metrics import GateCollector, GatewatchMetrics
from tests.support import MIN, T0, ev, gates, processor


def run_model(seed: int, hours: float = 6, rate: float = 5.0):
    gs = load_gates(None)
    model = TrafficModel(gs, T0, rate=rate, seed=seed,
                         faults=Faults(duplicate=0.05, late=0.05, malformed=0.02),
                         initial_backlog=0.2)
    out = list(model.advance(T0 + int(hours * 3_600_000)))
    out += list(model.advance(T0 + int(hours * 3_600_000) + 3_600_000 * 24 * 0))
    return gs, model, out


def test_simulator_is_deterministic_under_a_seed():
    _, _, a = run_model(3, hours=1)
    _, _, b = run_model(3, hours=1)
    _, _, c = run_model(4, hours=1)
    assert [o.value for o in a] == [o.value for o in b]
    assert [o.value for o in a] != [o.value for o in c]


def test_ledger_matches_simulated_ground_truth_despite_feed_faults():
    gs, model, out = run_model(11, hours=6)
    led = Ledger(gs, 300, 60, 30)
    dec = Decoder(gs.ids())
    rejected = 0
    # deliver everything, including late ones still pending at the end
    pending = model.in_flight()
    for o in out + pending:
        res = dec.decode(o.value, o.key, T0 + 10 * 3_600_000)
        if isinstance(res, CrossingEvent):
            led.apply(res, T0)
        else:
            rejected += 1
            assert not o.valid
    assert rejected == sum(1 for o in out + pending if not o.valid) > 0
    assert {g: led.waiting_total(g) for g in gs.ids()} == model.waiting()


def test_collector_exports_waiting_and_hides_no_data_gates():
    gs = gates()
    proc = processor(no_data_seconds=300)
    led = proc.ledger
    led.apply(ev("A", "queued", T0), T0)
    led.apply(ev("B", "queued", T0 + MIN, direction="import", cargo="perishable"), T0)
    registry = CollectorRegistry()
    GatewatchMetrics(registry, gs)
    now = {"ms": T0 + 10_000}
    registry.register(GateCollector(proc, wall_ms=lambda: now["ms"]))
    get = registry.get_sample_value
    assert get("gate_vehicles_waiting", {"gate": "huu-nghi", "direction": "export"}) == 1
    assert get("gate_vehicles_waiting", {"gate": "huu-nghi", "direction": "import"}) == 1
    assert get("gate_has_data", {"gate": "huu-nghi"}) == 1
    assert get("gate_oldest_wait_seconds", {"gate": "huu-nghi", "direction": "export"}) == 60
    assert get("gate_oldest_perishable_wait_seconds", {"gate": "huu-nghi"}) == 0
    assert get("gate_seconds_since_last_event", {"gate": "huu-nghi"}) == 10
    # tan-thanh never sent anything: no data, and no "0 waiting"
    assert get("gate_has_data", {"gate": "tan-thanh"}) == 0
    assert get("gate_vehicles_waiting", {"gate": "tan-thanh", "direction": "export"}) is None
    # huu-nghi goes silent past no_data_seconds
    now["ms"] = T0 + 301_000
    assert get("gate_has_data", {"gate": "huu-nghi"}) == 0
    assert get("gate_vehicles_waiting", {"gate": "huu-nghi", "direction": "export"}) is None


def test_no_plate_in_any_label():
    gs = gates()
    proc = processor()
    proc.ledger.apply(ev("12C-04567", "queued", T0), T0)
    registry = CollectorRegistry()
    GatewatchMetrics(registry, gs)
    registry.register(GateCollector(proc, lambda: T0))
    for metric in registry.collect():
        for sample in metric.samples:
            assert "12C-04567" not in str(sample.labels)


def test_opening_hours_season_and_day_profile():
    import orjson

    from gatewatch.gates import parse_gates
    from gatewatch.streams.codec import parse_timestamp_ms

    gs = parse_gates("""
version: 1
gates:
  - id: tan-thanh
    name: "Tân Thanh"
    yard_capacity: 1000
    thresholds: {warning: 500, critical: 900}
    simulation: {arrivals_per_hour: 40, clearance_per_hour: 60, open_hours: [7, 19],
                 perishable_share: 0.1, perishable_share_by_month: {8: 0.9}}
""", "t.yaml")
    start = parse_timestamp_ms("2021-08-02T00:00:00+07:00")
    assert start is not None
    model = TrafficModel(gs, start, seed=3, faults=Faults(0, 0, 0), day_profile=True)
    docs = [orjson.loads(o.value) for o in model.advance(start + 48 * 3_600_000)]
    crossed_hours = {(parse_timestamp_ms(d["occurred_at"]) // 3_600_000 + 7) % 24
                     for d in docs if d["type"] == "crossed"}
    assert crossed_hours and crossed_hours <= set(range(7, 19))  # clears only when open
    queued = [d for d in docs if d["type"] == "queued"]
    perishable = sum(d["cargo"] == "perishable" for d in queued) / len(queued)
    assert perishable > 0.8  # August: dragon-fruit season
    night = sum(1 for d in queued if (parse_timestamp_ms(d["occurred_at"]) // 3_600_000 + 7)
                % 24 in (1, 2, 3))
    morning = sum(1 for d in queued if (parse_timestamp_ms(d["occurred_at"]) // 3_600_000
                                        + 7) % 24 in (8, 9, 10))
    assert morning > 3 * night  # the day profile

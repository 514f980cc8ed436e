"""The fast /metrics renderer gives exactly what prometheus_client's generate_latest
gives, for the worker's own registry with data (process, GC and platform collectors
included) and for odd label values."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gatewatch.core.processor import Processor, SourceRecord
from gatewatch.gates import load_gates
from gatewatch.settings import Settings
from gatewatch.tools.simulate import Faults, TrafficModel
from gatewatch.web.exposition import render
from gatewatch.web.metrics import GateCollector, GatewatchMetrics, LagSample, scrape


def test_worker_registry_renders_exactly_as_generate_latest():
    gates = load_gates(None)
    registry = CollectorRegistry()
    metrics = GatewatchMetrics(registry, gates)
    proc = Processor(gates, Settings(alert_raise_hold_seconds=0, alert_clear_hold_seconds=0,
                                     perishable_max_wait_seconds=3600))
    start = 1_790_000_000_000
    model = TrafficModel(gates, start, rate=6, seed=3, faults=Faults(0.05, 0.05, 0.0),
                         initial_backlog=0.2)
    now = start + 3 * 3_600_000
    records = [SourceRecord("gate.events", 0, i, now, out.key, out.value)
               for i, out in enumerate(model.advance(now))]
    fx = proc.apply_batch(records, now)
    metrics.events_processed.inc(fx.processed)
    assert fx.waits  # crossings with a measured wait: the histogram has samples
    metrics.events_rejected.labels("not_json").inc(3)
    registry.register(GateCollector(
        proc, lambda: now,
        lambda: [LagSample("gate.events", 0, 12, 1.5), LagSample("gate.events", 1, 0, 0.0)]))
    proc.evaluate(now)
    scrape(registry, metrics)  # a scrape-duration observation in the histogram
    # process and GC metrics move between two reads: compare on one snapshot of them
    snapshot = Snapshot(list(registry.collect()))
    expected = generate_latest(snapshot)
    for part in (b"gate_vehicles_waiting{", b"gate_wait_seconds_bucket{",
                 b"gate_congestion_level{",
                 b"gatewatch_scrape_duration_seconds_bucket{", b"process_cpu_seconds_total ",
                 b"python_gc_objects_collected_total{", b"python_info{"):
        assert part in expected
    assert render(snapshot) == expected
    assert render(snapshot) == expected  # and again from the label cache


class Snapshot:
    """A registry whose collect() replays metrics read once."""

    def __init__(self, metrics: list) -> None:
        self.metrics = metrics

    def collect(self):
        return iter(self.metrics)


def test_odd_names_values_and_special_floats_render_as_generate_latest():
    registry = CollectorRegistry()
    g = Gauge("odd_gauge", 'help with "quotes", \\ and\nnewline', ["where", "what"],
              registry=registry)
    g.labels('a "quoted" gate', "back\\slash").set(float("inf"))
    g.labels("new\nline", "Hữu Nghị").set(float("nan"))
    g.labels("big", "small").set(123456789.0)
    Counter("odd_counter", "c", registry=registry).inc(0.1)
    h = Histogram("odd_hist", "h", buckets=(0.5, 10, 1e7), registry=registry)
    h.observe(3)
    Gauge("fn_gauge", "f", registry=registry).set_function(lambda: 1_790_000_000.25)
    assert render(registry) == generate_latest(registry)

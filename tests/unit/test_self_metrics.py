"""The worker observes itself on its own registry: process, GC and platform metrics and the
time to render /metrics; and a metric name used twice fails at start-up, not at scrape."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.parser import text_string_to_metric_families

from gatewatch.agents.app import create_app
from gatewatch.core.processor import Processor, SourceRecord
from gatewatch.gates import load_gates
from gatewatch.settings import Settings
from gatewatch.streams.codec import encode_count
from gatewatch.streams.records import CountObservation
from gatewatch.tools.simulate import Faults, TrafficModel
from gatewatch.web.metrics import GateCollector, GatewatchMetrics, LagSample, scrape

NOW = 1_790_000_000_000 + 3 * 3_600_000


def _worker():
    return create_app(Settings.from_env({}), load_gates(None))


def _families(body: bytes) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(body.decode())}


def _busy_collectors(lag: bool) -> list[GateCollector]:
    """The worker's GateCollector over three hours of simulated traffic, so that every
    family it can yield has samples (and the alert state has levels)."""
    gates = load_gates(None)
    proc = Processor(gates, Settings(alert_raise_hold_seconds=0, alert_clear_hold_seconds=0,
                                     perishable_max_wait_seconds=60),
                     counts_topic="gate.counts")
    start = NOW - 3 * 3_600_000
    model = TrafficModel(gates, start, rate=6, seed=3, faults=Faults(0.0, 0.0, 0.0),
                         initial_backlog=0.9)
    fx = proc.apply_batch([SourceRecord("gate.events", 0, i, NOW, out.key, out.value)
                           for i, out in enumerate(model.advance(NOW))], NOW)
    assert fx.processed and not fx.dead_letters
    proc.tick(NOW)  # closes the windows the forecast gauges are made from
    # a yard count (the count-check families are absent until one arrives)
    count = CountObservation("yard-1", "huu-nghi", "export", 10, NOW - 60_000, "yard_sensor")
    fx = proc.apply_batch([SourceRecord("gate.counts", 0, 0, NOW, b"huu-nghi",
                                        encode_count(count))], NOW)
    assert not fx.dead_letters
    proc.evaluate(NOW)
    return [GateCollector(proc, lambda: NOW,
                          (lambda: [LagSample("gate.events", 0, 5, 1.0)]) if lag else None)]


def test_a_fresh_worker_registry_exposes_process_gc_platform_and_scrape_duration():
    gw = _worker()
    first = _families(scrape(gw.registry, gw.metrics))
    for name in ("process_cpu_seconds", "process_resident_memory_bytes",
                 "process_open_fds", "python_gc_objects_collected", "python_gc_collections",
                 "python_info", "gatewatch_scrape_duration_seconds"):
        assert first.get(name), f"{name} missing from the worker's /metrics"
    assert any(s.value > 0 for s in first["process_resident_memory_bytes"])

    def count(fams: dict[str, list]) -> float:
        (c,) = [s.value for s in fams["gatewatch_scrape_duration_seconds"]
                if s.name == "gatewatch_scrape_duration_seconds_count"]
        return c

    # each scrape is observed after its render, so scrape n shows the n - 1 before it
    counts = [count(first)] + [count(_families(scrape(gw.registry, gw.metrics)))
                               for _ in range(3)]
    assert counts == [0.0, 1.0, 2.0, 3.0]
    total = [s.value for s in _families(scrape(gw.registry, gw.metrics))
             ["gatewatch_scrape_duration_seconds"]
             if s.name == "gatewatch_scrape_duration_seconds_sum"]
    assert total[0] > 0


def test_every_metric_of_the_worker_has_a_documented_prefix():
    gw = _worker()
    names = {f.name for f in gw.registry.collect()}
    assert {n.split("_", 1)[0] for n in names} == {"gate", "gatewatch", "process", "python"}


def test_a_name_clash_fails_at_registration_not_at_scrape():
    (gate_c,) = _busy_collectors(lag=True)
    registry = CollectorRegistry()
    GatewatchMetrics(registry, load_gates(None))
    registry.register(gate_c)
    with pytest.raises(ValueError, match="gate_vehicles_waiting"):
        Gauge("gate_vehicles_waiting", "a second definition", registry=registry)
    with pytest.raises(ValueError, match="gate_arrivals"):  # a counter's name and _total
        Counter("gate_arrivals", "a second definition", registry=registry)
    with pytest.raises(ValueError, match="gatewatch_consumer_lag_seconds"):
        Gauge("gatewatch_consumer_lag_seconds", "a second definition", registry=registry)
    with pytest.raises(ValueError, match="gate_congestion_level"):
        Gauge("gate_congestion_level", "a second definition", registry=registry)
    with pytest.raises(ValueError):
        registry.register(gate_c)
    # the other order: a collector whose names are taken is refused
    taken = CollectorRegistry()
    Gauge("gate_alert_active", "taken first", registry=taken)
    with pytest.raises(ValueError, match="gate_alert_active"):
        taken.register(gate_c)
    with pytest.raises(ValueError, match="gatewatch_events_processed"):
        GatewatchMetrics(registry, load_gates(None))


def test_the_worker_refuses_to_start_on_a_registry_with_a_clashing_metric():
    registry = CollectorRegistry()
    Gauge("gate_estimated_wait_seconds", "defined elsewhere", registry=registry)
    with pytest.raises(ValueError, match="gate_estimated_wait_seconds"):
        create_app(Settings.from_env({}), load_gates(None), registry=registry)


@pytest.mark.parametrize("lag", [True, False])
def test_describe_names_exactly_what_collect_yields(lag):
    for collector in _busy_collectors(lag):
        described = list(collector.describe())
        collected = list(collector.collect())
        assert all(not m.samples for m in described)
        assert all(m.samples for m in collected), "the fixture should fill every family"
        assert sorted((m.name, m.type) for m in described) == \
            sorted((m.name, m.type) for m in collected)

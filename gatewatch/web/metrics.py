"""Prometheus metrics, bundled against an injected registry.

Two kinds:

- event-driven counters and the wait histogram live in :class:`GatewatchMetrics`
  and are updated by the agent;
- state (backlog now, windows, oldest waits, staleness, lag) is read from the
  :class:`~gatewatch.core.ledger.Ledger` at scrape time by :class:`LedgerCollector`,
  so it can never drift from the per-vehicle state.

Labels are bounded: gate ids come from the gate configuration, directions and
reasons from fixed sets. No plate number is ever a label.

Metric names, by prefix:

- ``gate_*``: the border, per gate (vehicles waiting, arrivals, crossings, waits,
  congestion level, alerts). Labels are bounded (gate, direction, level, kind,
  severity); never a plate.
- ``gatewatch_*``: the worker itself (events processed and rejected, batches,
  readiness, broker, consumer lag, vehicles tracked, ``gatewatch_scrape_duration_seconds``).
- ``process_*`` and ``python_*``: prometheus_client's process, GC and platform
  collectors (CPU, memory, open files, garbage collections, Python version).

Every collector on the registry describes its metric families (the custom collectors
through ``describe()``), so a name used twice fails at start-up in
``registry.register`` with a ``ValueError`` instead of producing a broken exposition.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gatewatch.core.ledger import Ledger
from gatewatch.core.trips import CARGO_CODE, DIR_NAME
from gatewatch.gates import GateSet
from gatewatch.streams.records import REJECT_REASONS
from gatewatch.web.exposition import render

__all__ = ["SCRAPE_BUCKETS_SECONDS", "WAIT_BUCKETS_SECONDS", "GatewatchMetrics", "LagSample",
           "LedgerCollector", "scrape"]

#: Wait-time histogram buckets: 5 min … 16 days (Dec 2021 waits were 15-17 days).
WAIT_BUCKETS_SECONDS = (300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0,
                        86400.0, 172800.0, 345600.0, 691200.0, 1382400.0)

#: /metrics render-time buckets: 1 ms … 5 s.
SCRAPE_BUCKETS_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                          2.5, 5.0)


@dataclass(frozen=True, slots=True)
class LagSample:
    """Consumer lag of one input partition."""

    topic: str
    partition: int
    messages: int
    seconds: float


class GatewatchMetrics:
    """Counters and histograms the agent updates, and the worker's self-observability
    (process, GC and platform collectors, scrape duration); create one per registry."""

    def __init__(self, registry: CollectorRegistry, gates: GateSet) -> None:
        self.registry = registry
        self.events_processed = Counter(
            "gatewatch_events_processed", "Valid crossing events processed (incl. duplicates)",
            registry=registry)
        self.events_duplicate = Counter(
            "gatewatch_events_duplicate",
            "Valid events that changed no count (duplicates and re-reads)",
            registry=registry)
        self.events_rejected = Counter(
            "gatewatch_events_rejected", "Messages dead-lettered, by reason", ["reason"],
            registry=registry)
        for reason in REJECT_REASONS:
            self.events_rejected.labels(reason)
        self.windows_closed = Counter(
            "gatewatch_windows_closed", "Windows closed and published", ["closed_by"],
            registry=registry)
        self.vehicles_expired = Counter(
            "gatewatch_vehicles_expired",
            "Vehicle states dropped: finished past retention, or waiting past max wait",
            ["state"], registry=registry)
        self.alerts_published = Counter(
            "gatewatch_alerts_published", "Alert changes published on gate.alerts",
            registry=registry)
        self.batches = Counter(
            "gatewatch_batches", "Event batches processed by the agent", registry=registry)
        self.wait = Histogram(
            "gate_wait_seconds", "Measured queued→crossed wait of vehicles that crossed",
            ["gate"], buckets=WAIT_BUCKETS_SECONDS, registry=registry)
        self.ready = Gauge(
            "gatewatch_ready", "1 when the worker is consuming (assigned, recovered)",
            registry=registry)
        self.broker_up = Gauge(
            "gatewatch_broker_up", "1 while the Kafka broker answers metadata requests "
            "(checked every second)", registry=registry)
        self.scrape_duration = Histogram(
            "gatewatch_scrape_duration_seconds",
            "Time to render /metrics (observed after the render: a scrape shows the ones "
            "before it)", buckets=SCRAPE_BUCKETS_SECONDS, registry=registry)
        for gate in gates.gates:
            self.wait.labels(gate.gate_id)
        ProcessCollector(registry=registry)
        GCCollector(registry=registry)
        PlatformCollector(registry=registry)


def scrape(registry: CollectorRegistry, metrics: GatewatchMetrics) -> bytes:
    """The /metrics body of ``registry``; the time to render it is observed in
    ``gatewatch_scrape_duration_seconds``."""
    start = time.perf_counter()
    body = render(registry)
    metrics.scrape_duration.observe(time.perf_counter() - start)
    return body


class LedgerCollector(Collector):
    """Per-gate state metrics read from the ledger when Prometheus scrapes."""

    def __init__(self, ledger: Ledger, gates: GateSet, window_seconds: int,
                 wall_ms: Callable[[], int],
                 lag: Callable[[], list[LagSample]] | None = None) -> None:
        self.ledger = ledger
        self.gates = gates
        self.window_seconds = window_seconds
        self.wall_ms = wall_ms
        self.lag = lag

    def describe(self) -> Iterator[Metric]:
        """The families ``collect`` yields, without samples, so that ``registry.register``
        refuses a metric-name clash (tests/unit/test_self_metrics.py keeps the two equal)."""
        names = ("arrivals", "crossings", "withdrawals")
        gauges = ["gate_vehicles_waiting", "gate_has_data", "gate_yard_occupancy_ratio",
                  "gate_yard_capacity_vehicles", "gate_backlog_threshold_vehicles",
                  "gate_oldest_wait_seconds", "gate_oldest_perishable_wait_seconds",
                  "gate_seconds_since_last_event", "gate_last_event_timestamp_seconds",
                  "gate_watermark_timestamp_seconds",
                  *(f"gate_{n}_last_window" for n in names),
                  *(f"gate_{n}_last_hour" for n in names), "gatewatch_vehicles_tracked"]
        if self.lag is not None:
            gauges += ["gatewatch_consumer_lag_messages", "gatewatch_consumer_lag_seconds"]
        for name in gauges:
            yield GaugeMetricFamily(name, "")
        for name in (*(f"gate_{n}" for n in names), "gatewatch_late_transitions"):
            yield CounterMetricFamily(name, "")

    def collect(self) -> Iterator[Metric]:
        now = self.wall_ms()
        g = GaugeMetricFamily
        gd = ["gate", "direction"]
        waiting = g("gate_vehicles_waiting",
                    "Vehicles waiting in the gate's queue now (absent when no data)", labels=gd)
        has_data = g("gate_has_data", "1 if the gate sent events recently, 0 = no data",
                     labels=["gate"])
        occupancy = g("gate_yard_occupancy_ratio", "Vehicles waiting / yard capacity",
                      labels=["gate"])
        capacity = g("gate_yard_capacity_vehicles", "Configured yard capacity",
                     labels=["gate"])
        thresholds = g("gate_backlog_threshold_vehicles", "Configured backlog thresholds",
                       labels=["gate", "level"])
        oldest = g("gate_oldest_wait_seconds",
                   "Event-time age of the oldest vehicle still waiting (0 if none)", labels=gd)
        oldest_p = g("gate_oldest_perishable_wait_seconds",
                     "Age of the oldest perishable-cargo vehicle still waiting (0 if none)",
                     labels=["gate"])
        since = g("gate_seconds_since_last_event",
                  "Wall-clock seconds since the gate's last event reached the worker",
                  labels=["gate"])
        last_ts = g("gate_last_event_timestamp_seconds", "Event time of the latest event",
                    labels=["gate"])
        wm = g("gate_watermark_timestamp_seconds", "The gate's event-time watermark",
               labels=["gate"])
        names = ("arrivals", "crossings", "withdrawals")
        last_win = [g(f"gate_{n}_last_window", f"{n.capitalize()} in the last closed "
                      f"{self.window_seconds} s window", labels=gd) for n in names]
        hour = [g(f"gate_{n}_last_hour", f"{n.capitalize()} in the hour of windows up to "
                  "the watermark", labels=gd) for n in names]
        totals = [CounterMetricFamily(f"gate_{n}", f"{n.capitalize()} (queue transitions) "
                                      "since the worker started", labels=gd) for n in names]
        tracked = g("gatewatch_vehicles_tracked", "Vehicle states held in memory",
                    labels=["gate"])
        late = CounterMetricFamily("gatewatch_late_transitions",
                                   "Transitions too late for their (closed) window",
                                   labels=["gate"])
        perishable = CARGO_CODE["perishable"]
        for gate in self.gates.gates:
            gid = gate.gate_id
            book = self.ledger.books[gid]
            fresh = book.has_data(now)
            has_data.add_metric([gid], 1.0 if fresh else 0.0)
            capacity.add_metric([gid], float(gate.yard_capacity))
            thresholds.add_metric([gid, "warning"], float(gate.warning_threshold))
            thresholds.add_metric([gid, "critical"], float(gate.critical_threshold))
            tracked.add_metric([gid], float(len(book.vehicles)))
            late.add_metric([gid], float(book.windows.late_transitions))
            for k in range(3):
                for d in (0, 1):
                    totals[k].add_metric([gid, DIR_NAME[d]], float(book.totals[k * 2 + d]))
            if book.last_event_wall_ms is not None:
                since.add_metric([gid], max(0.0, (now - book.last_event_wall_ms) / 1000))
            if book.last_event_ms is not None:
                last_ts.add_metric([gid], book.last_event_ms / 1000)
            ref = book.windows.watermark_ms
            if ref is not None:
                wm.add_metric([gid], ref / 1000)
            if not fresh:
                continue
            occupancy.add_metric([gid], sum(book.waiting_count) / gate.yard_capacity)
            for d in (0, 1):
                waiting.add_metric([gid, DIR_NAME[d]], float(book.waiting_count[d]))
                first = book.oldest_waiting_ms(direction=d)
                age = 0.0 if first is None or ref is None else max(0.0, (ref - first) / 1000)
                oldest.add_metric([gid, DIR_NAME[d]], age)
            first_p = book.oldest_waiting_ms(cargo=perishable)
            oldest_p.add_metric([gid], 0.0 if first_p is None or ref is None
                                else max(0.0, (ref - first_p) / 1000))
            lc = book.windows.last_closed()
            hc = book.windows.rolling_hour()
            for k in range(3):
                for d in (0, 1):
                    i = k * 2 + d
                    last_win[k].add_metric([gid, DIR_NAME[d]], float(lc.counts[i] if lc else 0))
                    hour[k].add_metric([gid, DIR_NAME[d]], float(hc[i]))
        yield from (waiting, has_data, occupancy, capacity, thresholds, oldest, oldest_p,
                    since, last_ts, wm, *last_win, *hour, *totals, tracked, late)
        if self.lag is not None:
            lag_m = g("gatewatch_consumer_lag_messages",
                      "Messages behind the fetch high watermark", labels=["topic", "partition"])
            lag_s = g("gatewatch_consumer_lag_seconds",
                      "Age of the oldest unprocessed message (0 when caught up)",
                      labels=["topic", "partition"])
            for s in self.lag():
                lag_m.add_metric([s.topic, str(s.partition)], float(s.messages))
                lag_s.add_metric([s.topic, str(s.partition)], s.seconds)
            yield lag_m
            yield lag_s

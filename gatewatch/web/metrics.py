"""Prometheus metrics, bundled against an injected registry.

Two kinds:

- event-driven counters and the wait histogram live in :class:`GatewatchMetrics`
  and are updated by the agent;
- state (backlog now, windows, oldest waits, staleness, congestion level, active
  alerts, estimates, lag) is read at scrape time by :class:`GateCollector` from the
  processor's per-gate signals, so it can never drift from the per-vehicle state.

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
from collections.abc import Callable, Iterable, Iterator
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
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from gatewatch.core.congestion import LEVELS
from gatewatch.core.ledger import WAIT_BUCKETS_MS
from gatewatch.core.processor import Processor
from gatewatch.core.signals import GateSignals
from gatewatch.gates import GateSet
from gatewatch.streams.records import REJECT_REASONS
from gatewatch.streams.vocabulary import DIR_NAME
from gatewatch.web.exposition import render

__all__ = ["ERROR_BUCKETS_SECONDS", "FORECAST_HORIZONS", "SCRAPE_BUCKETS_SECONDS",
           "WAIT_BUCKETS_SECONDS", "GateCollector", "GatewatchMetrics", "LagSample", "scrape"]

#: Wait-time histogram buckets: 5 min … 16 days (Dec 2021 waits were 15-17 days).
WAIT_BUCKETS_SECONDS = tuple(ms / 1000 for ms in WAIT_BUCKETS_MS)

#: Wait-estimate error buckets (estimate − realised): ± 5 min … ± 16 days.
_ERR = (300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0, 172800.0,
        345600.0, 691200.0, 1382400.0)
ERROR_BUCKETS_SECONDS = (*(-b for b in reversed(_ERR)), 0.0, *_ERR)
#: forecast gauges' horizons (label value, hours ahead)
FORECAST_HORIZONS = (("1h", 1), ("6h", 6), ("24h", 24))

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
    """Counters and histograms the agent updates; create one per registry."""

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
        self.gate_events_rejected = Counter(
            "gate_events_rejected",
            "Valid-looking events of a configured gate dead-lettered, by gate and reason "
            "(from_the_future: a camera clock ahead; too_old: behind the gate's horizon)",
            ["gate", "reason"], registry=registry)
        for gate in gates.gates:
            for reason in ("from_the_future", "too_old"):
                self.gate_events_rejected.labels(gate.gate_id, reason)
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
        self.state_writes_failed = Counter(
            "gatewatch_state_writes_failed",
            "State-table changelog writes refused for the record itself (e.g. too large); "
            "dead-lettered with reason state_write_failed", registry=registry)
        self.rebuild_failures = Counter(
            "gatewatch_rebuild_failures",
            "Failed attempts at rebuilding the core after a recovery (each is tried again; "
            "the worker is not ready meanwhile)", registry=registry)
        self.count_observations = Counter(
            "gatewatch_count_observations", "Valid count observations read from gate.counts",
            registry=registry)
        self.reconciliations_published = Counter(
            "gatewatch_reconciliations_published",
            "Reconciliation audit records (pairings, set-asides) published on "
            "gate.reconciliations", registry=registry)
        self.batches = Counter(
            "gatewatch_batches", "Event batches processed by the agent", registry=registry)
        self.ready = Gauge(
            "gatewatch_ready", "1 when the worker is consuming (assigned, recovered)",
            registry=registry)
        self.broker_up = Gauge(
            "gatewatch_broker_up", "1 while the Kafka broker answers metadata requests "
            "(checked every second)", registry=registry)
        self.wait_estimate_error = Histogram(
            "gate_wait_estimate_error_seconds",
            "Expected wait shown when a crossed vehicle joined minus its measured wait "
            "(> 0: the estimate was too long), one observation per scored crossing",
            ["gate"], buckets=ERROR_BUCKETS_SECONDS, registry=registry)
        for gate in gates.gates:
            self.wait_estimate_error.labels(gate.gate_id)
        self.scrape_duration = Histogram(
            "gatewatch_scrape_duration_seconds",
            "Time to render /metrics (observed after the render: a scrape shows the ones "
            "before it)", buckets=SCRAPE_BUCKETS_SECONDS, registry=registry)
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


class GateCollector(Collector):
    """Per-gate state, congestion and alert metrics, read from the processor's
    :class:`~gatewatch.core.signals.GateSignals` when Prometheus scrapes."""

    def __init__(self, processor: Processor, wall_ms: Callable[[], int],
                 lag: Callable[[], list[LagSample]] | None = None) -> None:
        self.processor = processor
        self.window_seconds = processor.settings.window_seconds
        #: highest value exported per series of the event-set counters (see _monotonic)
        self._exported: dict[tuple[str, ...], float] = {}
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
                  *(f"gate_{n}_last_hour" for n in names), "gatewatch_vehicles_tracked",
                  "gate_congestion_level", "gate_alert_active", "gate_estimated_wait_seconds",
                  "gate_yard_full_in_seconds", "gate_forecast_vehicles_waiting",
                  "gate_forecast_wait_seconds"]
        gauges += [name for name, _help, _labels in _QUALITY]
        if self.lag is not None:
            gauges += ["gatewatch_consumer_lag_messages", "gatewatch_consumer_lag_seconds"]
        for name in gauges:
            yield GaugeMetricFamily(name, "")
        for name in (*(f"gate_{n}" for n in names), "gatewatch_late_transitions"):
            yield CounterMetricFamily(name, "")
        yield HistogramMetricFamily("gate_wait_seconds", "")

    def _monotonic(self, key: tuple[str, ...], value: float) -> float:
        """Counters of the event set (totals, the wait histogram) step back by one when a
        late event contradicts an earlier one (a withdrawal before a counted crossing);
        Prometheus would read that as a reset, so the exported value holds its highest."""
        top = self._exported.get(key)
        if top is None or value > top:
            self._exported[key] = value
            return value
        return top

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
        waits = HistogramMetricFamily(
            "gate_wait_seconds", "Measured queued→crossed wait of vehicles that crossed (of "
            "the event set: the vehicles held plus those expired since the worker started)",
            labels=["gate"])
        tracked = g("gatewatch_vehicles_tracked", "Vehicle states held in memory",
                    labels=["gate"])
        late = CounterMetricFamily("gatewatch_late_transitions",
                                   "Transitions too late for their (closed) window",
                                   labels=["gate"])
        level = g("gate_congestion_level",
                  "0 normal, 1 warning, 2 critical (absent when no data)", labels=["gate"])
        active = g("gate_alert_active", "1 while the alert fires (with or without data)",
                   labels=["gate", "kind", "severity"])
        est_wait = g("gate_estimated_wait_seconds",
                     "Estimated wait for a vehicle joining now: the forecast's calibrated "
                     "expected wait once the gate has a day of windows, before that "
                     "backlog ÷ crossings per hour (absent when unknown)", labels=["gate"])
        fc_waiting = g("gate_forecast_vehicles_waiting",
                       "Forecast backlog this far ahead (docs/forecasting.md)",
                       labels=["gate", "horizon"])
        fc_wait = g("gate_forecast_wait_seconds",
                    "Forecast expected wait of a vehicle joining this far ahead (absent when "
                    "it would not clear)", labels=["gate", "horizon"])
        full = g("gate_yard_full_in_seconds",
                 "Predicted time until the yard is full at the last hour's net inflow "
                 "(absent when not filling)", labels=["gate"])
        proc = self.processor
        signals: list[GateSignals] = []
        for gate in proc.gates.gates:
            gid = gate.gate_id
            s = proc.signals(gid, now)
            signals.append(s)
            fresh = s.has_data
            has_data.add_metric([gid], 1.0 if fresh else 0.0)
            capacity.add_metric([gid], float(gate.yard_capacity))
            thresholds.add_metric([gid, "warning"], float(gate.warning_threshold))
            thresholds.add_metric([gid, "critical"], float(gate.critical_threshold))
            tracked.add_metric([gid], float(s.vehicles_tracked))
            late.add_metric([gid], float(s.late_transitions))
            for k in range(3):
                for d in (0, 1):
                    totals[k].add_metric([gid, DIR_NAME[d]], self._monotonic(
                        (gid, str(k), str(d)), float(s.totals.get(k, d))))
            cumulative, buckets = 0, []
            for bound, n in zip((*WAIT_BUCKETS_SECONDS, float("inf")), s.wait_buckets,
                                strict=True):
                cumulative += n
                le = "+Inf" if bound == float("inf") else floatToGoString(bound)  # type: ignore[no-untyped-call]
                buckets.append((le, self._monotonic((gid, "wait", le), float(cumulative))))
            waits.add_metric([gid], buckets, self._monotonic((gid, "wait_sum"),
                                                             s.wait_sum_seconds))
            if s.silent_seconds is not None:
                since.add_metric([gid], max(0.0, s.silent_seconds))
            if s.last_event_ms is not None:
                last_ts.add_metric([gid], s.last_event_ms / 1000)
            if s.watermark_ms is not None:
                wm.add_metric([gid], s.watermark_ms / 1000)
            ga = proc.alerts[gid]
            for a in ga.active.values():  # whatever the data: no_data and what it holds
                active.add_metric([gid, a.kind, a.severity], 1.0)
            if not fresh:
                continue
            occupancy.add_metric([gid], s.backlog / gate.yard_capacity)
            for d, n, age in ((0, s.waiting_export, s.oldest_wait_export_seconds),
                              (1, s.waiting_import, s.oldest_wait_import_seconds)):
                waiting.add_metric([gid, DIR_NAME[d]], float(n))
                oldest.add_metric([gid, DIR_NAME[d]], age or 0.0)
            oldest_p.add_metric([gid], s.oldest_perishable_wait_seconds or 0.0)
            lw = s.last_window
            for k in range(3):
                for d in (0, 1):
                    last_win[k].add_metric([gid, DIR_NAME[d]],
                                           float(lw.get(k, d) if lw else 0))
                    hour[k].add_metric([gid, DIR_NAME[d]], float(s.last_hour.get(k, d)))
            if s.silent_seconds is None:
                continue
            level.add_metric([gid], float(LEVELS.index(ga.level.level)))
            if s.estimated_wait_seconds is not None:
                est_wait.add_metric([gid], s.estimated_wait_seconds)
            if s.seconds_until_full is not None:
                full.add_metric([gid], s.seconds_until_full)
            fc = proc.forecast(gid, now, hours=25)
            if fc is not None and fc.basis != "none":
                for label, h in FORECAST_HORIZONS:
                    at = fc.made_at_ms + h * 3_600_000
                    backlog = fc.backlog_at(at)
                    hf = fc.at(at)
                    if backlog is not None:
                        fc_waiting.add_metric([gid, label], backlog)
                    if hf is not None and hf.wait_seconds is not None:
                        fc_wait.add_metric([gid, label], hf.wait_seconds)
        yield from (waiting, has_data, occupancy, capacity, thresholds, oldest, oldest_p,
                    since, last_ts, wm, *last_win, *hour, *totals, waits, tracked, late,
                    level, active, est_wait, full, fc_waiting, fc_wait)
        yield from _quality(signals)
        if self.lag is not None:
            lag_m = g("gatewatch_consumer_lag_messages",
                      "Messages behind the fetch high watermark", labels=["topic", "partition"])
            lag_s = g("gatewatch_consumer_lag_seconds",
                      "Age of the oldest unprocessed message (0 when caught up)",
                      labels=["topic", "partition"])
            for sample in self.lag():
                lag_m.add_metric([sample.topic, str(sample.partition)], float(sample.messages))
                lag_s.add_metric([sample.topic, str(sample.partition)], sample.seconds)
            yield lag_m
            yield lag_s


_GD = ["gate", "direction"]
_CAM = ["gate", "camera", "window"]

#: data-quality gauges: (name, help, labels); ``camera`` is one of
#: :data:`gatewatch.core.signals.CAMERAS`, ``window`` ``1h`` or ``24h`` (event time)
_QUALITY: tuple[tuple[str, str, list[str]], ...] = (
    ("gate_vehicles_unconfirmed", "Waiting vehicles set aside as unconfirmed (overtaken by "
     "far more vehicles than the gate allows since last read; not in "
     "gate_vehicles_waiting; absent when no data)", _GD),
    ("gate_vehicles_paired", "Waiting vehicles set aside as misread: paired with an "
     "unmatched crossing or withdrawal whose plate is one OCR confusion away, or a misread "
     "re-read of another waiting vehicle (not in gate_vehicles_waiting; absent when no "
     "data)", _GD),
    ("gate_camera_reads", "Reads of a camera in the window (queue end: arrivals; gate "
     "line: crossings and withdrawals)", _CAM),
    ("gate_camera_unmatched", "Reads of a camera with no matching read at the other "
     "camera (gate line: no queued read; queue end: now unconfirmed)", _CAM),
    ("gate_camera_paired", "Unmatched gate-line reads that reconciliation paired with a "
     "waiting vehicle", _CAM),
    ("gate_camera_unmatched_ratio", "Unmatched reads / reads of a camera in the window "
     "(absent without reads)", _CAM),
    ("gate_count_observed", "The latest count observation (gate.counts) of the vehicles "
     "waiting (absent until one arrived)", _GD),
    ("gate_count_observed_timestamp_seconds", "Time (occurred_at) of the latest count "
     "observation", _GD),
    ("gate_count_discrepancy", "Ledger backlog now minus the latest count observation "
     "(positive: the ledger holds more vehicles; absent until one arrived)", _GD),
)


def _quality(signals: Iterable[GateSignals]) -> Iterator[Metric]:
    """The data-quality families of :data:`_QUALITY`, for the gates this worker holds:
    vehicles set aside (with data only, like the backlog), camera reads and unmatched
    shares over the last hour and day, and the latest count observation beside the
    ledger (absent until one arrived)."""
    fam = {name: GaugeMetricFamily(name, text, labels=labels)
           for name, text, labels in _QUALITY}
    for s in signals:
        gid = s.gate_id
        if not s.owned:
            continue
        if s.has_data:
            for d, unconfirmed, paired in ((0, s.unconfirmed_export, s.paired_export),
                                           (1, s.unconfirmed_import, s.paired_import)):
                fam["gate_vehicles_unconfirmed"].add_metric([gid, DIR_NAME[d]],
                                                            float(unconfirmed))
                fam["gate_vehicles_paired"].add_metric([gid, DIR_NAME[d]], float(paired))
        for cam in s.cameras:
            for window, reads, unmatched, paired, share in (
                    ("1h", cam.reads_last_hour, cam.unmatched_last_hour,
                     cam.paired_last_hour, cam.unmatched_share_last_hour),
                    ("24h", cam.reads_last_day, cam.unmatched_last_day,
                     cam.paired_last_day, cam.unmatched_share_last_day)):
                labels = [gid, cam.camera, window]
                fam["gate_camera_reads"].add_metric(labels, float(reads))
                fam["gate_camera_unmatched"].add_metric(labels, float(unmatched))
                if cam.camera.endswith("-gate"):  # only gate-line reads are paired
                    fam["gate_camera_paired"].add_metric(labels, float(paired))
                if share is not None:
                    fam["gate_camera_unmatched_ratio"].add_metric(labels, share)
        for check in s.count_checks:
            labels = [gid, check.direction]
            fam["gate_count_observed"].add_metric(labels, float(check.observed))
            fam["gate_count_observed_timestamp_seconds"].add_metric(
                labels, check.observed_at_ms / 1000)
            fam["gate_count_discrepancy"].add_metric(labels, float(check.discrepancy))
    yield from fam.values()

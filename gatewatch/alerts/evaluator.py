"""Alert evaluation inside the worker: ledger → signals → congestion model → records.

:class:`AlertEvaluator` turns each gate's book into :class:`GateSignals`, runs the
pure :class:`~gatewatch.core.congestion.GateAlerts`, and returns the JSON records to
publish on ``gate.alerts`` (key = gate_id). :class:`AlertCollector` exports
``gate_congestion_level``, ``gate_alert_active`` and the estimates at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import orjson
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gatewatch.alerts.texts import render
from gatewatch.core.congestion import (
    LEVELS,
    AlertChange,
    AlertState,
    GateAlerts,
    GateSignals,
    LevelState,
    Thresholds,
    estimate_wait_seconds,
    seconds_until_full,
)
from gatewatch.core.ledger import Ledger
from gatewatch.core.trips import CARGO_CODE
from gatewatch.gates import GateConfig, GateSet
from gatewatch.streams.codec import format_ms, parse_timestamp_ms

__all__ = ["AlertCollector", "AlertEvaluator", "encode_alert"]

_PERISHABLE = CARGO_CODE["perishable"]


def encode_alert(change: AlertChange, gate: GateConfig, runbook_url: str) -> bytes:
    """The ``gate.alerts`` record of one alert change."""
    a = change.alert
    s = change.signals
    return orjson.dumps({
        "alert_id": a.alert_id, "gate_id": a.gate_id, "gate_name": gate.name,
        "gate_name_en": gate.name_en, "kind": a.kind, "state": a.state,
        "change": change.change, "severity": a.severity, "value": a.value,
        "threshold": a.threshold, "waiting": s.backlog,
        "estimated_wait_seconds": change.estimated_wait_seconds, "estimated": True,
        "yard_capacity": s.capacity,
        "yard_occupancy_ratio": round(s.backlog / s.capacity, 4) if s.capacity else None,
        "seconds_until_yard_full": change.seconds_until_full,
        "started_at": format_ms(a.started_ms), "updated_at": format_ms(a.updated_ms),
        "resolved_at": format_ms(a.resolved_ms) if a.resolved_ms is not None else None,
        "message": render(change, gate, runbook_url),
        "runbook_url": f"{runbook_url.rstrip('/')}#{a.kind}",
    })


class AlertEvaluator:
    """Alert state of every gate this worker holds."""

    def __init__(self, gates: GateSet, ledger: Ledger, *, raise_hold_seconds: int,
                 clear_hold_seconds: int, perishable_max_wait_seconds: int,
                 runbook_url: str) -> None:
        self.gates = gates
        self.ledger = ledger
        self.runbook_url = runbook_url
        self.alerts: dict[str, GateAlerts] = {
            g.gate_id: GateAlerts(
                g.gate_id,
                Thresholds(g.warning_threshold, g.critical_threshold, g.warning_clear,
                           g.critical_clear, raise_hold_seconds * 1000,
                           clear_hold_seconds * 1000),
                perishable_limit_seconds=float(g.perishable_max_wait_seconds
                                               or perishable_max_wait_seconds),
                no_data_seconds=ledger.books[g.gate_id].no_data_ms / 1000)
            for g in gates.gates}

    def signals(self, gate: GateConfig, now_ms: int) -> GateSignals | None:
        """The gate's signals, or None if this worker never saw the gate."""
        book = self.ledger.books[gate.gate_id]
        if book.last_event_wall_ms is None:
            return None
        silent = (now_ms - book.last_event_wall_ms) / 1000
        hour = book.windows.rolling_hour()
        wm = book.windows.watermark_ms
        first = book.oldest_waiting_ms(cargo=_PERISHABLE)
        perishable = 0.0 if first is None or wm is None else max(0.0, (wm - first) / 1000)
        return GateSignals(
            gate_id=gate.gate_id, has_data=book.has_data(now_ms),
            silent_seconds=silent, backlog=sum(book.waiting_count),
            capacity=gate.yard_capacity, arrivals_last_hour=hour[0] + hour[1],
            crossings_last_hour=hour[2] + hour[3], withdrawals_last_hour=hour[4] + hour[5],
            oldest_perishable_wait_seconds=perishable)

    def evaluate(self, now_ms: int, gate_ids: set[str] | None = None
                 ) -> list[tuple[str, bytes]]:
        """Evaluate every gate (or those named); returns (gate_id, record) per change."""
        out: list[tuple[str, bytes]] = []
        for gate in self.gates.gates:
            if gate_ids is not None and gate.gate_id not in gate_ids:
                continue
            sig = self.signals(gate, now_ms)
            if sig is None:
                continue
            for change in self.alerts[gate.gate_id].evaluate(sig, now_ms):
                out.append((gate.gate_id, encode_alert(change, gate, self.runbook_url)))
        return out

    def restore(self, records: list[dict[str, object]], owned: set[str]) -> int:
        """Re-establish firing alerts from ``gate.alerts`` after a restart, so an incident
        that was already notified is not notified again. Returns how many."""
        latest: dict[str, dict[str, object]] = {}
        for doc in records:
            if doc.get("gate_id") in owned and isinstance(doc.get("alert_id"), str):
                latest[str(doc["alert_id"])] = doc
        restored = 0
        for aid, doc in latest.items():
            if doc.get("state") != "firing":
                continue
            gate_id, kind, severity = str(doc["gate_id"]), str(doc["kind"]), str(doc["severity"])
            ga = self.alerts.get(gate_id)
            if ga is None or severity not in LEVELS:
                continue
            started = parse_timestamp_ms(str(doc.get("started_at"))) or 0
            updated = parse_timestamp_ms(str(doc.get("updated_at"))) or started
            ga.active[aid] = AlertState(aid, gate_id, kind, "firing", severity,
                                        float(doc.get("value") or 0),  # type: ignore[arg-type]
                                        float(doc.get("threshold") or 0),  # type: ignore[arg-type]
                                        started, updated)
            if kind == "congestion":
                ga.level = LevelState(severity)
            restored += 1
        return restored

    def reset(self, gate_id: str) -> None:
        """Forget a gate's alert state (its partition moved to another worker)."""
        a = self.alerts[gate_id]
        self.alerts[gate_id] = GateAlerts(gate_id, a.thresholds, a.perishable_limit_seconds,
                                          a.no_data_seconds)


class AlertCollector(Collector):
    """Congestion level, active alerts and estimates, read at scrape time."""

    def __init__(self, evaluator: AlertEvaluator, wall_ms: Callable[[], int]) -> None:
        self.evaluator = evaluator
        self.wall_ms = wall_ms

    def describe(self) -> Iterator[Metric]:
        """The families ``collect`` yields, without samples, so that ``registry.register``
        refuses a metric-name clash (tests/unit/test_self_metrics.py keeps the two equal)."""
        for name in ("gate_congestion_level", "gate_alert_active",
                     "gate_estimated_wait_seconds", "gate_yard_full_in_seconds"):
            yield GaugeMetricFamily(name, "")

    def collect(self) -> Iterator[Metric]:
        now = self.wall_ms()
        level = GaugeMetricFamily(
            "gate_congestion_level", "0 normal, 1 warning, 2 critical (absent when no data)",
            labels=["gate"])
        active = GaugeMetricFamily(
            "gate_alert_active", "1 while the alert fires", labels=["gate", "kind", "severity"])
        wait = GaugeMetricFamily(
            "gate_estimated_wait_seconds",
            "Estimated wait for a vehicle joining now: backlog ÷ crossings per hour "
            "(absent when unknown: nothing crossed in the last hour)", labels=["gate"])
        full = GaugeMetricFamily(
            "gate_yard_full_in_seconds",
            "Predicted time until the yard is full at the last hour's net inflow "
            "(absent when not filling)", labels=["gate"])
        ev = self.evaluator
        for gate in ev.gates.gates:
            sig = ev.signals(gate, now)
            if sig is None or not sig.has_data:
                continue
            ga = ev.alerts[gate.gate_id]
            level.add_metric([gate.gate_id], float(LEVELS.index(ga.level.level)))
            for a in ga.active.values():
                active.add_metric([gate.gate_id, a.kind, a.severity], 1.0)
            est = estimate_wait_seconds(sig.backlog, sig.crossings_last_hour)
            if est is not None:
                wait.add_metric([gate.gate_id], est)
            net = sig.arrivals_last_hour - sig.crossings_last_hour - sig.withdrawals_last_hour
            until = seconds_until_full(sig.backlog, sig.capacity, net)
            if until is not None:
                full.add_metric([gate.gate_id], until)
        yield from (level, active, wait, full)

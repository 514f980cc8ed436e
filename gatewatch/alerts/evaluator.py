"""Alert records: what the worker publishes on ``gate.alerts``, and reading them back.

The decisions (levels, hysteresis, hold times, which alert fires) are made in the pure
core (:class:`~gatewatch.core.congestion.GateAlerts`, driven by
:class:`~gatewatch.core.processor.Processor`). This module turns each
:class:`~gatewatch.core.congestion.AlertChange` into its JSON record (key = alert id,
``gate_id:kind``: the topic is compacted, so each alert keeps its latest record),
with the texts in Vietnamese and English, and parses published records back into
:class:`~gatewatch.core.congestion.AlertState` so a restarted worker does not notify an
incident twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson

from gatewatch.alerts.texts import render
from gatewatch.core.congestion import ALERT_KINDS, AlertChange, AlertState
from gatewatch.gates import GateConfig
from gatewatch.streams.codec import format_ms, parse_timestamp_ms

__all__ = ["encode_alert", "firing_states"]


def encode_alert(change: AlertChange, gate: GateConfig, runbook_url: str) -> bytes:
    """The ``gate.alerts`` record of one alert change."""
    a = change.alert
    s = change.signals
    return orjson.dumps({
        "alert_id": a.alert_id, "gate_id": a.gate_id, "gate_name": gate.name,
        "gate_name_en": gate.name_en, "kind": a.kind, "state": a.state,
        "change": change.change, "severity": a.severity, "value": a.value,
        "threshold": a.threshold, "waiting": s.backlog,
        "estimated_wait_seconds": s.estimated_wait_seconds, "estimated": True,
        "yard_capacity": s.capacity,
        "yard_occupancy_ratio": round(s.backlog / s.capacity, 4) if s.capacity else None,
        "seconds_until_yard_full": s.seconds_until_full,
        "started_at": format_ms(a.started_ms), "updated_at": format_ms(a.updated_ms),
        "resolved_at": format_ms(a.resolved_ms) if a.resolved_ms is not None else None,
        "message": render(change, gate, runbook_url),
        "runbook_url": f"{runbook_url.rstrip('/')}#{a.kind}",
    })


def firing_states(records: Iterable[Mapping[str, object]]) -> list[AlertState]:
    """The alerts still firing according to published records (latest record per
    alert id wins; malformed records are skipped).

    "Latest" is the greatest ``updated_at``, then the later one read: records read from
    several partitions come in no global order, and a topic written before alerts were
    keyed by alert id holds an alert's older records on its gate's partition."""
    latest: dict[str, tuple[int, Mapping[str, object]]] = {}
    for doc in records:
        if isinstance(doc.get("alert_id"), str) and isinstance(doc.get("gate_id"), str):
            aid = str(doc["alert_id"])
            updated = parse_timestamp_ms(str(doc.get("updated_at"))) or 0
            if aid not in latest or updated >= latest[aid][0]:
                latest[aid] = (updated, doc)
    out: list[AlertState] = []
    for aid, (_, doc) in latest.items():
        kind, severity = doc.get("kind"), doc.get("severity")
        if doc.get("state") != "firing" or kind not in ALERT_KINDS \
                or severity not in ("warning", "critical"):
            continue
        started = parse_timestamp_ms(str(doc.get("started_at"))) or 0
        updated = parse_timestamp_ms(str(doc.get("updated_at"))) or started
        out.append(AlertState(aid, str(doc["gate_id"]), kind, "firing", severity,
                              _num(doc.get("value")), _num(doc.get("threshold")),
                              started, updated))
    return out


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0

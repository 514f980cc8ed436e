"""Alert texts (VI/EN), the gate.alerts record, and its Alertmanager form."""

import orjson

from gatewatch.alerts.evaluator import encode_alert
from gatewatch.alerts.notify import to_alertmanager
from gatewatch.alerts.texts import format_duration
from gatewatch.core.congestion import AlertChange, AlertState
from gatewatch.core.signals import Counts, GateSignals
from gatewatch.gates import load_gates
from tests.support import T0

GATE = load_gates(None).get("tan-thanh")


def change(state="firing", severity="critical", crossings=60, kind="congestion"):
    sig = GateSignals("tan-thanh", True, 1.0, waiting_export=912, waiting_import=0,
                      capacity=1200,
                      last_hour=Counts(arrivals_export=100, crossings_export=crossings),
                      oldest_perishable_wait_seconds=0.0)
    alert = AlertState("tan-thanh:" + kind, "tan-thanh", kind, state, severity, 912, 900,
                       T0, T0 + 60_000, T0 + 120_000 if state == "resolved" else None)
    return AlertChange("escalated" if state == "firing" else "resolved", alert, sig)


def test_record_carries_gate_level_waiting_estimate_and_both_languages():
    doc = orjson.loads(encode_alert(change(), GATE, "http://rb"))
    assert (doc["alert_id"], doc["state"], doc["severity"], doc["waiting"]) == (
        "tan-thanh:congestion", "firing", "critical", 912)
    assert doc["estimated_wait_seconds"] == 912 / 60 * 3600 and doc["estimated"] is True
    assert doc["started_at"] == "2021-12-01T00:00:00.000Z" and doc["resolved_at"] is None
    assert doc["message"]["vi"].startswith("[NGHIÊM TRỌNG] Cửa khẩu Tân Thanh: 912 xe đang chờ")
    assert "ngưỡng 900" in doc["message"]["vi"] and "15 giờ 12 phút (ước tính)" in \
        doc["message"]["vi"]
    assert doc["message"]["en"].startswith("[CRITICAL] Tan Thanh Border Gate: 912 vehicles")
    assert "rising" in doc["message"]["en"] and "http://rb#congestion" in doc["message"]["en"]


def test_unknown_estimate_is_said_not_divided_by_zero():
    doc = orjson.loads(encode_alert(change(crossings=0), GATE, "http://rb"))
    assert doc["estimated_wait_seconds"] is None
    assert "unknown" in doc["message"]["en"] and "chưa xác định" in doc["message"]["vi"]


def test_resolved_record_and_alertmanager_form():
    doc = orjson.loads(encode_alert(change(state="resolved"), GATE, "http://rb"))
    assert doc["state"] == "resolved" and doc["resolved_at"] == "2021-12-01T00:02:00.000Z"
    assert doc["message"]["en"].startswith("[RESOLVED]")
    am = to_alertmanager(doc, T0 + 200_000, 60)
    assert am["labels"] == {"alertname": "GateCongestion", "gate": "tan-thanh",
                            "kind": "congestion", "severity": "critical",
                            "source": "gatewatch", "cargo": "all", "direction": "all"}
    assert am["endsAt"] == doc["resolved_at"]
    firing = to_alertmanager(orjson.loads(encode_alert(change(), GATE, "x")), T0, 60)
    assert firing["endsAt"] == "2021-12-01T00:04:00.000Z"  # four resend intervals ahead
    assert firing["annotations"]["summary_vi"].startswith("[NGHIÊM TRỌNG]")


def test_durations():
    assert format_duration(None, "en") == "unknown"
    assert format_duration(125 * 60, "en") == "2 h 05 min"
    assert format_duration(16 * 86400 + 3 * 3600, "vi") == "16 ngày 3 giờ"
    assert format_duration(59, "vi") == "1 phút"

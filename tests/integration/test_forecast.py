"""The forecast through a real worker: the forecast endpoint and its errors, the forecast
gauges, and the wait-estimate error histogram observed when trucks that joined under a
shown estimate cross."""

from __future__ import annotations

import time

import orjson
import pytest

from tests.support import ev, message, poll, produce

pytestmark = pytest.mark.integration

HOUR = 3_600_000
GATE = "huu-nghi"


def history(now: int) -> list[tuple[bytes, bytes]]:
    """Eight past hours at Hữu Nghị (9 to 1 hours ago): six trucks an hour join and cross
    20 minutes later; ten more joined in the last hours and still wait."""
    out = []
    for h in range(9, 1, -1):
        for i in range(6):
            t = now - h * HOUR + i * 600_000
            out.append(message(ev(f"H{h}-{i}", "queued", t, GATE)))
            out.append(message(ev(f"H{h}-{i}", "crossed", t + 1_200_000, GATE)))
    for i in range(10):
        out.append(message(ev(f"W-{i}", "queued", now - 3 * HOUR + i * 60_000, GATE)))
    return out


def get_json(w, path: str) -> tuple[int, dict]:
    status, body = w.get(path)
    return status, orjson.loads(body) if body.startswith(b"{") else {}


def test_forecast_endpoint_gauges_and_estimate_scoring(bootstrap, worker_factory, test_id):
    w = worker_factory()
    w.wait_ready()
    topic = f"{test_id}-gate.events"
    now = int(time.time() * 1000) - 60_000
    produce(bootstrap, topic, history(now))

    def forecast() -> dict | None:
        status, doc = get_json(w, f"/api/v1/gates/{GATE}/forecast?hours=30")
        return doc if status == 200 and doc.get("basis") == "recent" else None

    doc = poll(forecast, 30, "a forecast from the recent rates", alive=w.check_alive)
    assert doc["owned"] is True and doc["backlog_now"] == 10 and len(doc["hours"]) == 30
    assert doc["history_hours"] >= 6
    assert doc["expected_wait_seconds"] is not None and doc["expected_wait_seconds"] > 0
    for h in doc["hours"]:
        assert h["backlog_low"] <= h["backlog"] <= h["backlog_high"]
        assert 0 <= h["p_full"] <= 1
    for bad in ("0", "169", "abc", "", "48.5"):
        status, err = get_json(w, f"/api/v1/gates/{GATE}/forecast?hours={bad}")
        assert status == 400 and err["error"]["code"] == "bad_hours", bad
    status, err = get_json(w, "/api/v1/gates/mong-cai/forecast")
    assert status == 404 and err["error"]["code"] == "unknown_gate"
    _, spec = get_json(w, "/openapi.json")
    assert "/api/v1/gates/{gate_id}/forecast" in spec["paths"]

    def gauges() -> dict | None:
        m = w.metrics()
        found = {(name, dict(labels)["horizon"]): v for (name, labels), v in m.items()
                 if name.startswith("gate_forecast_") and ("gate", GATE) in labels}
        return found if len(found) == 6 else None

    found = poll(gauges, 15, "the forecast gauges at 1h, 6h, 24h", alive=w.check_alive)
    assert found[("gate_forecast_vehicles_waiting", "1h")] >= 0
    assert found[("gate_forecast_wait_seconds", "24h")] > 0

    # three trucks join now, under the estimate the gate shows; after a tick has noted
    # it (a second of silence), they cross: each scores the estimate shown
    def gate() -> dict:
        return get_json(w, f"/api/v1/gates/{GATE}")[1]

    assert gate()["wait_estimate"]["basis"] == "forecast"
    joined = now + 60_000
    produce(bootstrap, topic, [message(ev(f"N-{i}", "queued", joined + i, GATE))
                               for i in range(3)])
    poll(lambda: (g := gate()).get("waiting", {}).get("total") == 13
         and g["seconds_since_last_event"] >= 1.5, 20, "the new trucks applied and a tick",
         alive=w.check_alive)
    produce(bootstrap, topic, [message(ev(f"N-{i}", "crossed", joined + 30_000 + i, GATE))
                               for i in range(3)])

    def scored() -> float | None:
        count = w.metrics().get(("gate_wait_estimate_error_seconds_count",
                                 frozenset({("gate", GATE)})), 0)
        return count if count >= 3 else None

    poll(scored, 20, "three wait-estimate errors observed", alive=w.check_alive)
    est = gate()["wait_estimate"]
    assert est["scored"] >= 3
    assert est["mean_absolute_error_seconds"] is not None and est["bias_seconds"] is not None

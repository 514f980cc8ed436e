"""Every panel query of the generated dashboards parses and returns data from a real
Prometheus scraping a real worker fed by simulated Lạng Sơn traffic.

Most panels fill from the simulator within seconds. The "active alerts" panel needs an
alert firing *now*; the simulator's Tân Thanh backlog is a near-critical random walk that
reaches the lowered warning threshold after anything from seconds to minutes (and may drop
back below it), so the test itself parks vehicles there that never cross: the warning
fires deterministically and stays firing.

The forecast panels need a forecast (a few hours of windows: eight past hours at Tân
Thanh are produced first). The wait-estimate error panels need crossings that score an
expected wait shown when the truck joined; under this test's mix (parked trucks, the
simulator's backlog) none reliably happens within the deadline, so their queries must be
accepted by Prometheus but need not return data here (tests/integration/test_forecast.py
observes the histogram through a real worker).
"""

from __future__ import annotations

import math
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import orjson
import pytest
import yaml

from gatewatch.streams.codec import encode_count
from gatewatch.streams.records import CountObservation
from gatewatch.tools.dashboards import build_all, panel_queries
from tests.support import (
    OUTPUT,
    ROOT,
    Service,
    binary,
    ev,
    message,
    produce,
    start_prometheus,
)

pytestmark = pytest.mark.integration

#: Tân Thanh's lowered thresholds, and the vehicles the test parks there (never crossing)
WARNING, CRITICAL, PARKED = 20, 400, 25
#: seconds for every panel to show data once Prometheus is ready (typically ~10 s; the
#: margin is for a loaded 2-core CI machine)
DEADLINE = 180
#: the panels of this metric only have to parse here (see the module docstring)
SCORED = "gate_wait_estimate_error_seconds"


def query(prom: str, expr: str) -> tuple[str, list]:
    """(status, result); status is "success", a PromQL error, or a transport error."""
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            err = orjson.loads(body)
        except orjson.JSONDecodeError:  # e.g. 503 while the TSDB starts
            return f"transport: HTTP {exc.code} {body[:80]!r}", []
        return f"{err.get('errorType', 'error')}: {err.get('error', '')}", []
    except OSError as exc:  # refused, reset, timed out under load
        return f"transport: {exc}", []
    return doc["status"], doc["data"]["result"]


def past_hours(now: int, gate: str = "tan-thanh") -> list[tuple[bytes, bytes]]:
    """Eight past hours (9 to 1 hours ago) of six trucks an hour joining and crossing 20
    minutes later: enough windows for the gate's forecast."""
    out = []
    for h in range(9, 1, -1):
        for i in range(6):
            t = now - h * 3_600_000 + i * 600_000
            out.append(message(ev(f"12C-8{h}{i:03d}", "queued", t, gate, event_id=f"past-{h}-{i}")))
            out.append(message(ev(f"12C-8{h}{i:03d}", "crossed", t + 1_200_000, gate,
                                  event_id=f"past-{h}-{i}-x")))
    return out


def has_numbers(result: list) -> bool:
    return any(not math.isnan(float(s["value"][1])) for s in result)


def test_every_panel_query_returns_data(bootstrap, worker_factory, test_id, tmp_path):
    binary("prometheus")
    gates = yaml.safe_load((ROOT / "gatewatch/data/langson-gates.yaml").read_text())
    assert gates["gates"][1]["id"] == "tan-thanh"
    gates["gates"][1]["thresholds"] = {"warning": WARNING, "critical": CRITICAL}
    (tmp_path / "gates.yaml").write_text(yaml.safe_dump(gates, allow_unicode=True))
    w = worker_factory(GATEWATCH_GATES=str(tmp_path / "gates.yaml"),
                       GATEWATCH_ALERT_RAISE_HOLD_SECONDS="0")
    w.wait_ready()
    # queued before the simulator's own Tân Thanh backlog (from 10 min ago), so event time
    # stays in order and no window closes early
    since = int(time.time() * 1000) - 20 * 60_000
    # vehicles the simulator does not know, so they never clear (after past hours for the
    # forecast, in event time order)
    produce(bootstrap, f"{test_id}-gate.events", past_hours(since - 3_600_000) +
            [message(ev(f"12C-9{i:04d}", "queued", since + i, "tan-thanh",
                        event_id=f"parked-{i}")) for i in range(PARKED)])
    # a yard count for the data-quality panel's count discrepancy (absent without one)
    produce(bootstrap, f"{test_id}-gate.counts", [(b"tan-thanh", encode_count(
        CountObservation("yard-1", "tan-thanh", "export", 3, since, "yard_sensor")))])
    sim = Service([sys.executable, "-m", "gatewatch", "simulate", "--rate", "200",
                   "--initial-backlog", "0.5"], OUTPUT / f"{test_id}-simulate.log",
                  env=dict(w.env))
    cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
           "scrape_configs": [{"job_name": "gatewatch", "static_configs": [
               {"targets": [f"127.0.0.1:{w.port}"]}]}]}
    try:
        prom, url = start_prometheus(tmp_path, test_id, cfg)
    except BaseException:
        sim.stop()
        raise
    try:
        queries = [(uid, title, expr.replace("$gate", "tan-thanh"))
                   for uid, doc in build_all().items() for title, expr in panel_queries(doc)]
        assert len(queries) >= 15
        pending = {q: "not queried yet" for q in queries}
        started = time.monotonic()
        deadline = started + DEADLINE
        while pending and time.monotonic() < deadline:
            for uid, title, expr in list(pending):
                status, result = query(url, expr)
                # a query Prometheus rejects is broken now; only transport errors are retried
                assert status == "success" or status.startswith("transport:"), \
                    f"{uid} / {title}: {expr}: {status}"
                if status == "success" and (has_numbers(result) or SCORED in expr):
                    del pending[uid, title, expr]
                else:
                    pending[uid, title, expr] = f"{status}, result {result!r:.200}"
            if pending:
                time.sleep(1.0)
        assert not pending, (
            f"after {time.monotonic() - started:.0f} s (deadline {DEADLINE} s) still no data "
            "for: " + "; ".join(f"{uid} / {title}: {expr} (last: {last})"
                                for (uid, title, expr), last in pending.items()))
        status, labels = query(url, "count by (gate) (gate_has_data)")
        assert status == "success" and len(labels) == 5  # the gate variable's values
    finally:
        prom.stop()
        sim.stop()
        assert os.path.exists(OUTPUT / f"{test_id}-simulate.log")

"""Every panel query of the generated dashboards parses and returns data from a real
Prometheus scraping a real worker fed by simulated Lạng Sơn traffic."""

from __future__ import annotations

import math
import os
import sys
import urllib.parse
import urllib.request

import orjson
import pytest
import yaml

from gatewatch.dashboards import build_all, panel_queries
from tests.conftest import OUTPUT, ROOT, poll
from tests.integration.test_alerting import Service, binary, start_prometheus

pytestmark = pytest.mark.integration


def query(prom: str, expr: str) -> tuple[str, list]:
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            doc = orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        return orjson.loads(exc.read()).get("error", "error"), []
    except OSError as exc:
        return str(exc), []
    return doc["status"], doc["data"]["result"]


def has_numbers(result: list) -> bool:
    return any(not math.isnan(float(s["value"][1])) for s in result)


def test_every_panel_query_returns_data(bootstrap, worker_factory, test_id, tmp_path):
    binary("prometheus")
    gates = yaml.safe_load((ROOT / "gatewatch/data/langson-gates.yaml").read_text())
    gates["gates"][1]["thresholds"] = {"warning": 20, "critical": 400}  # Tân Thanh alerts
    (tmp_path / "gates.yaml").write_text(yaml.safe_dump(gates, allow_unicode=True))
    w = worker_factory(GATEWATCH_GATES=str(tmp_path / "gates.yaml"),
                       GATEWATCH_ALERT_RAISE_HOLD_SECONDS="0")
    w.wait_ready()
    sim = Service([sys.executable, "-m", "gatewatch", "simulate", "--rate", "200",
                   "--initial-backlog", "0.5"], OUTPUT / f"{test_id}-simulate.log",
                  env=dict(w.env))
    cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
           "scrape_configs": [{"job_name": "gatewatch", "static_configs": [
               {"targets": [f"127.0.0.1:{w.port}"]}]}]}
    prom, url = start_prometheus(tmp_path, test_id, cfg)
    try:
        queries = [(uid, title, expr.replace("$gate", "tan-thanh"))
                   for uid, doc in build_all().items() for title, expr in panel_queries(doc)]
        assert len(queries) >= 15
        pending = list(queries)

        def all_have_data() -> bool:
            for item in list(pending):
                status, result = query(url, item[2])
                assert status == "success" or "connection" in str(status).lower() \
                    or "refused" in str(status).lower(), f"{item}: {status}"
                if status == "success" and has_numbers(result):
                    pending.remove(item)
            return not pending
        poll(all_have_data, 120, "data for every panel query", interval=1.0)
        status, labels = query(url, "count by (gate) (gate_has_data)")
        assert status == "success" and len(labels) == 5  # the gate variable's values
    finally:
        prom.stop()
        sim.stop()
        assert os.path.exists(OUTPUT / f"{test_id}-simulate.log")

"""Dashboards as code: the committed JSON is what the generator makes, and the push
command talks Grafana's HTTP API. No Grafana server can run here, so the push is
tested against a small fake of Grafana's API (a mock, by necessity)."""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from gatewatch.tools.dashboards import (
    DATASOURCE_UID,
    HISTORY_DATASOURCE_UID,
    SQL_MACROS,
    build_all,
    expand_sql,
    panel_queries,
    push,
    sql_queries,
)

ROOT = Path(__file__).resolve().parents[2]


def test_committed_dashboards_equal_the_generated_ones():
    built = build_all()
    on_disk = {p.stem: json.loads(p.read_text()) for p in (ROOT / "dashboards").glob("*.json")}
    assert set(on_disk) == {"gatewatch-wall", "gatewatch-gate"}
    for uid, doc in built.items():
        assert on_disk[uid] == doc, f"dashboards/{uid}.json is stale: run " \
                                    "`gatewatch dashboards generate`"


def test_wall_dashboard_has_what_the_operations_center_needs():
    wall = build_all()["gatewatch-wall"]
    titles = " ".join(p["title"] for p in wall["panels"])
    for word in ("Congestion level", "Vehicles waiting", "Backlog trend",
                 "Arrivals vs crossings", "Estimated wait", "Oldest perishable wait",
                 "Active alerts"):
        assert word in titles
    assert all(p["datasource"]["uid"] == DATASOURCE_UID for p in wall["panels"])
    gate = build_all()["gatewatch-gate"]
    assert gate["templating"]["list"][0]["name"] == "gate"
    assert all("$gate" in q or "gatewatch_" in q for _, q in panel_queries(gate))


def test_forecast_and_history_panels():
    wall, gate = build_all()["gatewatch-wall"], build_all()["gatewatch-gate"]
    wall_q = " ".join(q for _, q in panel_queries(wall))
    for metric in ("gate_forecast_vehicles_waiting", "gate_forecast_wait_seconds",
                   "gate_wait_estimate_error_seconds"):
        assert metric in wall_q
        assert metric in " ".join(q for _, q in panel_queries(gate))
    sql = sql_queries(gate)
    assert len(sql) == 4 and sql_queries(wall) == []
    for panel in gate["panels"]:
        uids = {t["datasource"]["uid"] for t in panel["targets"]}
        assert uids == ({HISTORY_DATASOURCE_UID} if any("rawSql" in t for t in panel["targets"])
                        else {DATASOURCE_UID}), panel["title"]
    for _title, q in sql:
        # only the macros the tests expand (and the PostgreSQL check runs) appear
        rest = q
        for m in SQL_MACROS:
            rest = rest.replace(m, "")
        assert "$" not in rest, q
        assert "'$gate'" in q and "$" not in expand_sql(q, "huu-nghi", 0, 86_400)


def test_provisioning_points_at_the_same_datasource():
    ds = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/gatewatch.yml")
                        .read_text())
    assert ds["datasources"][0]["uid"] == DATASOURCE_UID
    pg = ds["datasources"][1]
    assert (pg["uid"], pg["type"]) == (HISTORY_DATASOURCE_UID, "grafana-postgresql-datasource")
    prov = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/gatewatch.yml")
                          .read_text())
    assert prov["providers"][0]["type"] == "file"


class FakeGrafana:
    """Just enough of Grafana's HTTP API for `gatewatch dashboards push` (a mock)."""

    def __init__(self, token: str) -> None:
        self.calls: list[tuple[str, str, dict]] = []
        self.datasources: dict[str, dict] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _body(self) -> dict:
                n = int(self.headers.get("Content-Length", 0))
                return json.loads(self.rfile.read(n) or b"{}")

            def _reply(self, status: int, doc: dict) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                body = self._body()
                outer.calls.append((method, self.path, body))
                if self.headers.get("Authorization") != f"Bearer {token}":
                    return self._reply(401, {"message": "Unauthorized"})
                if method == "POST" and self.path == "/api/datasources":
                    if body["uid"] in outer.datasources:
                        return self._reply(409, {"message": "data source exists"})
                    outer.datasources[body["uid"]] = body
                    return self._reply(200, {"id": 1, "message": "Datasource added"})
                if method == "PUT" and self.path.startswith("/api/datasources/uid/"):
                    outer.datasources[self.path.rsplit("/", 1)[1]] = body
                    return self._reply(200, {"message": "Datasource updated"})
                if method == "POST" and self.path == "/api/dashboards/db":
                    return self._reply(200, {"status": "success",
                                             "uid": body["dashboard"]["uid"]})
                return self._reply(404, {"message": "not found"})

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._handle("PUT")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_push_uploads_datasource_and_dashboards_and_updates_on_rerun():
    fake = FakeGrafana("tok")
    try:
        done = push(fake.url, "tok", "http://127.0.0.1:9090", ROOT / "dashboards")
        assert sorted(done) == ["gatewatch-gate", "gatewatch-wall"]
        assert fake.datasources[DATASOURCE_UID]["url"] == "http://127.0.0.1:9090"
        uploaded = [b["dashboard"]["uid"] for m, p, b in fake.calls if p == "/api/dashboards/db"]
        assert sorted(uploaded) == ["gatewatch-gate", "gatewatch-wall"]
        push(fake.url, "tok", "http://prom:9090", ROOT / "dashboards")  # datasource exists
        assert fake.datasources[DATASOURCE_UID]["url"] == "http://prom:9090"
    finally:
        fake.server.shutdown()


def test_push_without_the_grafana_extra_says_how_to_install_it(monkeypatch, capsys):
    from gatewatch.cli import main

    monkeypatch.setitem(sys.modules, "grafana_client", None)  # as if not installed
    fake = FakeGrafana("tok")
    try:
        code = main(["dashboards", "push", "--dir", str(ROOT / "dashboards"),
                     "--grafana-url", fake.url, "--token", "tok"])
    finally:
        fake.server.shutdown()
    err = capsys.readouterr().err
    assert code != 0
    assert err.startswith("gatewatch: error: ") and err.count("\n") == 1
    assert err.rstrip().endswith("pip install 'gatewatch[grafana]'")
    assert fake.calls == []

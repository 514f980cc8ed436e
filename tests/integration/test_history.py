"""The history store end to end: Alembic migrations on a real PostgreSQL (started by the
session from Debian's package) and on SQLite; a real worker and real `gatewatch history`
processes against the real broker writing the same windows into SQLite and PostgreSQL; a
republished window replacing its row; a second consumer group re-reading the topics without
double counting; the worker's history API (JSON, CSV, patterns, 400, 503); start-up errors
for a bad URL; a real gate log imported offline into PostgreSQL, twice."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from sqlalchemy import inspect

from gatewatch.errors import HistoryError
from gatewatch.history.schema import metadata
from gatewatch.history.store import HistoryStore
from gatewatch.streams.codec import format_ms
from tests.support import OUTPUT, ROOT, Service, ev, free_port, message, poll, produce

pytestmark = pytest.mark.integration

FIVE = 300_000
EXAMPLE = ROOT / "examples" / "huu-nghi-log-2021-12-20.csv"
EXAMPLE_ARGS = ["--map", "gate_id=CuaKhau,vehicle_id=BienSo,occurred_at=ThoiGian,type=SuKien,"
                "direction=Huong,cargo=HangHoa", "--types",
                "queued=vao_bai,crossed=qua_cua,withdrawn=roi_bai",
                "--directions", "export=xuat,import=nhap"]


def gatewatch(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gatewatch", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=dict(os.environ, **env))


def call(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def metric(port: int, name: str, **labels: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
            text = r.read().decode()
    except OSError:
        return None
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def test_migrations_bring_an_empty_postgresql_and_sqlite_to_head(postgres, test_id, tmp_path):
    for url in (postgres.create_database(f"{test_id}_mig"), f"sqlite:///{tmp_path}/m.sqlite3"):
        store = HistoryStore(url)
        assert store.revision() is None
        assert store.migrate() == "0001" and store.migrate() == "0001"
        insp = inspect(store.engine)
        assert {"windows", "alerts", "history_version"} <= set(insp.get_table_names())
        for table in metadata.sorted_tables:
            assert {c["name"] for c in insp.get_columns(table.name)} == \
                {c.name for c in table.columns}, (url, table.name)
            assert insp.get_pk_constraint(table.name)["constrained_columns"] == \
                [c.name for c in table.primary_key.columns]
        store.close()


def history_proc(test_id: str, name: str, env: dict[str, str]) -> tuple[Service, int]:
    port = free_port()
    OUTPUT.mkdir(exist_ok=True)
    svc = Service([sys.executable, "-m", "gatewatch", "history", "--metrics-port", str(port)],
                  OUTPUT / f"{test_id}-history-{name}.log", env=dict(os.environ, **env))
    return svc, port


def test_worker_and_history_fill_sqlite_and_postgresql_and_the_api_reads_them(
        bootstrap, worker_factory, postgres, test_id, tmp_path):
    lite_url = f"sqlite:///{tmp_path}/history.sqlite3"
    pg_url = postgres.create_database(f"{test_id}_e2e")
    base = {"GATEWATCH_KAFKA_BOOTSTRAP": bootstrap, "GATEWATCH_TOPIC_PREFIX": f"{test_id}-",
            "PYTHONUNBUFFERED": "1"}
    w = worker_factory(GATEWATCH_HISTORY_URL=lite_url, GATEWATCH_IDLE_SECONDS="2")
    w.wait_ready()
    # the worker opens the store read-only: before `gatewatch history` created it, a 503
    status, _, body = call(f"{w.url}/api/v1/gates/huu-nghi/history")
    assert status == 503 and orjson.loads(body)["error"]["code"] == "history_unavailable"
    assert not (tmp_path / "history.sqlite3").exists()

    # 6 windows of huu-nghi, 3 hours ago: in window i, i + 1 trucks queue and one crosses
    t0 = (int(time.time() * 1000) - 3 * 3_600_000) // 3_600_000 * 3_600_000
    msgs = []
    for i in range(6):
        for v in range(i + 1):
            msgs.append(message(ev(f"{test_id}-{i}-{v}", "queued", t0 + i * FIVE + 1000 + v)))
        msgs.append(message(ev(f"{test_id}-{i}-0", "crossed", t0 + i * FIVE + 200_000)))
    # a truck two hours later moves the watermark: the six windows close in event time (its
    # own window would close only after ~6 minutes of silence, after this test)
    msgs.append(message(ev(f"{test_id}-late", "queued", t0 + 2 * 3_600_000)))
    produce(bootstrap, f"{test_id}-gate.events", msgs)

    services = []
    try:
        lite, lite_port = history_proc(test_id, "sqlite", base | {
            "GATEWATCH_HISTORY_URL": lite_url, "GATEWATCH_APP_ID": f"{test_id}-app"})
        pg, pg_port = history_proc(test_id, "pg", base | {
            "GATEWATCH_HISTORY_URL": pg_url, "GATEWATCH_APP_ID": f"{test_id}-pg"})
        services += [lite, pg]
        stores = [HistoryStore(lite_url, readonly=True), HistoryStore(pg_url, readonly=True)]

        def stored(store: HistoryStore) -> int:
            try:
                return len(store.windows("huu-nghi", t0, t0 + 3_600_000))
            except Exception:  # noqa: BLE001 - not created yet
                return -1
        for store in stores:
            poll(lambda s=store: stored(s) == 6, 90, f"6 windows in {store.describe()}")
        lite_rows, pg_rows = (s.windows("huu-nghi", t0, t0 + 3_600_000) for s in stores)
        assert [(r.start_ms, r.arrivals, r.crossings, r.waits_count) for r in lite_rows] == \
            [(t0 + i * FIVE, i + 1, 1, 1) for i in range(6)]
        assert pg_rows == lite_rows
        for port in (lite_port, pg_port):  # its own lag metric, and rows written
            poll(lambda p=port: metric(p, "gatewatch_history_lag_records",
                                       topic="gate.windows") == 0, 30, "history lag 0")
            assert (metric(port, "gatewatch_history_rows_written_total", table="windows")
                    or 0) >= 6

        # a republished window (as a restarted worker publishes it) replaces its row
        first = orjson.loads(orjson.dumps({
            "gate_id": "huu-nghi", "window_start": format_ms(t0),
            "window_end": format_ms(t0 + FIVE), "size_seconds": 300,
            "arrivals": {"export": 4, "import": 0, "total": 4},
            "crossings": {"export": 1, "import": 0, "total": 1},
            "withdrawals": {"export": 0, "import": 0, "total": 0},
            "waits": {"count": 1, "sum_seconds": 199.0, "max_seconds": 199.0},
            "closed_by": "idle", "republished": True}))
        produce(bootstrap, f"{test_id}-gate.windows", [(b"huu-nghi", orjson.dumps(first))])
        # an alert record (as the worker publishes it), twice: stored once
        alert = {"alert_id": "huu-nghi:congestion", "gate_id": "huu-nghi",
                 "kind": "congestion", "state": "firing", "change": "fired",
                 "severity": "warning", "value": 640, "threshold": 600, "waiting": 640,
                 "started_at": format_ms(t0), "updated_at": format_ms(t0),
                 "resolved_at": None, "message": "Hữu Nghị: 640 xe đang chờ"}
        produce(bootstrap, f"{test_id}-gate.alerts",
                [(b"huu-nghi:congestion", orjson.dumps(alert))] * 2)
        for store in stores:
            poll(lambda s=store: s.windows("huu-nghi", t0, t0 + 1)[0].arrivals == 4, 30,
                 f"the republished window in {store.describe()}")
            assert stored(store) == 6
            assert store.windows("huu-nghi", t0, t0 + 1)[0].republished
            poll(lambda s=store: s.count("alerts") == 1, 30, "the alert record stored")
            assert store.alerts("huu-nghi") == [alert]

        # a second group re-reads both topics from their start: the same rows, none added
        again, again_port = history_proc(test_id, "again", base | {
            "GATEWATCH_HISTORY_URL": lite_url, "GATEWATCH_APP_ID": f"{test_id}-again"})
        services.append(again)
        poll(lambda: (metric(again_port, "gatewatch_history_records_total",
                             topic="gate.windows") or 0) >= 7, 60, "the replay read 7 windows")
        poll(lambda: metric(again_port, "gatewatch_history_lag_records",
                            topic="gate.windows") == 0, 30, "the replay's lag 0")
        assert (metric(again_port, "gatewatch_history_rows_written_total", table="windows")
                or 0) >= 6  # the original and the republished record of a window: one row
        assert stored(stores[0]) == 6 and stores[0].count("alerts") == 1
        assert stores[0].windows("huu-nghi", t0, t0 + 3_600_000)[0].arrivals == 4

        # the worker's API reads the SQLite store
        q = f"from={format_ms(t0).replace('+', '%2B')}&to={format_ms(t0 + 3_600_000)}"
        status, _, body = call(f"{w.url}/api/v1/gates/huu-nghi/history?{q}&step=1h")
        doc = orjson.loads(body)
        assert status == 200 and doc["step"] == "1h" and len(doc["points"]) == 1
        point = doc["points"][0]
        assert point["windows"] == 6 and point["arrivals"]["total"] == 4 + 2 + 3 + 4 + 5 + 6
        assert point["crossings"]["total"] == 6 and point["waits"]["count"] == 6
        status, headers, body = call(f"{w.url}/api/v1/gates/huu-nghi/history?{q}&step=5m",
                                     Accept="text/csv")
        assert status == 200 and headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(body.decode())))
        assert [int(r["arrivals"]) for r in rows] == [4, 2, 3, 4, 5, 6]
        assert rows[0]["start"] == format_ms(t0)
        status, _, body2 = call(f"{w.url}/api/v1/gates/huu-nghi/history?{q}&step=5m&format=csv")
        assert status == 200 and body2 == body
        status, _, body = call(f"{w.url}/api/v1/gates/huu-nghi/patterns?weeks=1")
        hours = orjson.loads(body)["hours"]
        assert status == 200 and len(hours) == 168
        hour = hours[((t0 + 7 * 3_600_000) // 3_600_000 + 72) % 168]  # +07:00, Monday first
        assert hour["arrivals"] == {"samples": 1, "mean": 24.0, "p90": 24.0}
        assert hour["crossings"]["mean"] == 6.0 and hour["wait_seconds"]["samples"] == 1
        for path, code in (("history?step=2h", "bad_step"), ("history?format=xml", "bad_format"),
                           ("history?from=yesterday", "bad_timestamp"),
                           ("patterns?weeks=0", "bad_weeks")):
            status, _, body = call(f"{w.url}/api/v1/gates/huu-nghi/{path}")
            assert status == 400 and orjson.loads(body)["error"]["code"] == code, path
        assert call(f"{w.url}/api/v1/gates/mong-cai/history")[0] == 404
    finally:
        for svc in services:
            svc.stop()
    for svc in services:
        assert svc.proc.returncode == 0  # a clean stop on SIGTERM


def test_a_bad_history_url_fails_start_up_naming_the_variable(tmp_path):
    closed = free_port()
    out = gatewatch("history", GATEWATCH_HISTORY_URL=f"postgresql://gw:pw@127.0.0.1:{closed}/h")
    assert out.returncode == 2
    assert out.stderr.startswith("gatewatch: error: environment: GATEWATCH_HISTORY_URL: ")
    assert "Connection refused" in out.stderr and "pw" not in out.stderr.replace("pwd", "")
    out = gatewatch("worker", GATEWATCH_HISTORY_URL="mysql://u@h/db")
    assert out.returncode == 2
    assert "GATEWATCH_HISTORY_URL: 'mysql' is not a supported database URL" in out.stderr
    out = gatewatch("replay", str(EXAMPLE), "--to-history", *EXAMPLE_ARGS,
                    GATEWATCH_HISTORY_URL="sqlite://")
    assert out.returncode == 2 and "GATEWATCH_HISTORY_URL: names no file" in out.stderr


def test_a_gate_log_imported_offline_twice_into_postgresql_counts_once(postgres, test_id,
                                                                       tmp_path: Path):
    url = postgres.create_database(f"{test_id}_log")
    counts = []
    for _ in range(2):
        out = gatewatch("replay", str(EXAMPLE), "--to-history", *EXAMPLE_ARGS,
                        GATEWATCH_HISTORY_URL=url)
        assert out.returncode == 3, out.stderr  # 3: the log has rejected rows (reported)
        assert "9 events from 2021-12-20T00:02:11.000Z" in out.stdout
        store = HistoryStore(url, readonly=True)
        counts.append((store.count("windows"), store.count("alerts")))
        store.close()
    assert counts[0] == counts[1] and counts[0][0] > 0
    store = HistoryStore(url, readonly=True)
    day = 1_639_958_400_000  # 2021-12-20T00:00:00Z
    rows = store.windows("huu-nghi", day, day + 86_400_000)
    assert sum(r.arrivals for r in rows) == 3 and sum(r.crossings for r in rows) == 1
    assert [p.arrivals for p in store.series("huu-nghi", day, day + 86_400_000, "1d",
                                             7 * 3_600_000)] == [3]
    with pytest.raises(HistoryError, match="read-only transaction"):  # as the worker opens it
        store.put_windows(rows[:1], 0)

"""`gatewatch replay` imports a real-looking gate log (Vietnamese columns, local times,
duplicates and broken rows) into exact counts, and reports every bad row."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import orjson
import pytest

from tests.support import ROOT, poll

pytestmark = pytest.mark.integration

LOG = ROOT / "examples" / "huu-nghi-log-2021-12-20.csv"
ARGS = ["--map", "gate_id=CuaKhau,vehicle_id=BienSo,occurred_at=ThoiGian,type=SuKien,"
        "direction=Huong,cargo=HangHoa",
        "--types", "queued=vao_bai,crossed=qua_cua,withdrawn=roi_bai",
        "--directions", "export=xuat,import=nhap"]
#: hand-computed from the sample log
EXPECTED = {"huu-nghi": {"total": 2, "export": 1, "import": 1},
            "tan-thanh": {"total": 1, "export": 1, "import": 0},
            "chi-ma": {"total": 1, "export": 1, "import": 0}}


def test_replay_round_trips_the_sample_log(worker_factory, tmp_path):
    w = worker_factory()
    w.wait_ready()
    report = tmp_path / "bad.jsonl"
    for _ in range(2):  # replaying the same file twice changes no count
        proc = subprocess.run([sys.executable, "-m", "gatewatch", "replay", str(LOG), *ARGS,
                               "--report", str(report)], env=w.env, capture_output=True,
                              text=True, timeout=120, cwd=ROOT)
        assert proc.returncode == 3, proc.stdout + proc.stderr  # 3: some rows were rejected
        assert "13 rows: 9 good, 4 rejected" in proc.stdout
        assert "row 9: unknown_gate" in proc.stdout and "row 10: missing_field" in proc.stdout
    bad = [orjson.loads(line) for line in report.read_text().splitlines()]
    assert [(b["row"], b["reason"]) for b in bad] == [
        (9, "unknown_gate"), (10, "missing_field"), (11, "bad_timestamp"), (12, "invalid_value")]

    def counts() -> dict | None:
        with urllib.request.urlopen(f"{w.url}/api/v1/gates", timeout=5) as r:
            gates = {g["gate_id"]: g["waiting"] for g in orjson.loads(r.read())["gates"]}
        got = {g: gates[g] for g in EXPECTED}
        return got if got == EXPECTED else None
    poll(counts, 30, "the counts the sample log implies")
    m = w.metrics()
    assert m[("gatewatch_events_processed_total", frozenset())] == 18  # 9 good rows, twice


def test_replay_dry_run_and_clear_errors(tmp_path):
    good = tmp_path / "log.jsonl"
    good.write_text('{"gate_id": "huu-nghi", "vehicle_id": "A", "occurred_at": '
                    '"2021-12-20 08:00:00", "type": "queued"}\n'
                    'not json\n'
                    '[1, 2]\n')
    proc = subprocess.run([sys.executable, "-m", "gatewatch", "replay", str(good),
                           "--dry-run"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 3
    assert "3 rows: 1 good, 2 rejected (unparseable 2)" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "gatewatch", "replay", str(good),
                          "--map", "plate=BienSo"], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert bad.returncode == 2 and "--map: unknown field 'plate'" in bad.stderr


def test_scenario_live_plays_into_a_running_worker(worker_factory):
    w = worker_factory()
    w.wait_ready()
    proc = subprocess.run([sys.executable, "-m", "gatewatch", "scenario",
                           "clearance-collapse-2021", "--live", "--speed", "36000"],
                          env=w.env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    def backlog() -> int:
        with urllib.request.urlopen(f"{w.url}/api/v1/gates", timeout=5) as r:
            gates = orjson.loads(r.read())["gates"]
        return sum(g["waiting"]["total"] for g in gates if g["waiting"])
    poll(lambda: backlog() > 3000, 60, "the 2021 backlog building up in the worker")

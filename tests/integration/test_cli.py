"""The commands a person types: `gatewatch broker` and `gatewatch run` start, report
readiness, and stop cleanly, leaving no process behind."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from gatewatch.gates import load_gates
from gatewatch.tools.live import display_width
from tests.support import OUTPUT, ROOT, free_port, poll

pytestmark = pytest.mark.integration


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def processes_with_env(assignment: str) -> list[int]:
    """Pids of live processes whose environment contains ``NAME=value``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if assignment.encode() in environ and state != "Z":
            pids.append(int(entry.name))
    return pids


def test_broker_command_reports_ready_and_stops_on_sigterm():
    port = free_port()
    OUTPUT.mkdir(exist_ok=True)
    log = OUTPUT / f"broker-cmd-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gatewatch", "broker", "--port",
                                 str(port)], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            poll(lambda: b"ready on 127.0.0.1:%d" % port in log.read_bytes(), 30,
                 "broker readiness line")
            assert port_open(port)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert not port_open(port)
    assert b"stopped" in log.read_bytes()


def live_view_rows(text: str, names: list[str]) -> dict[str, int] | None:
    """The waiting count of every gate in one refresh of the live view, from the last
    block of ``text`` where each gate's row shows a number; None if there is none yet."""
    for block in reversed(re.split(r"^gatewatch  \d\d:\d\d:\d\d  ", text, flags=re.M)[1:]):
        rows = {n: re.search(rf"^  {re.escape(n)} +(\d+) ", block, re.M) for n in names}
        if all(rows.values()):
            return {n: int(m.group(1)) for n, m in rows.items() if m}
    return None


def test_run_command_shows_urls_and_a_live_view_and_ctrl_c_leaves_nothing_behind():
    web, broker = free_port(), free_port()
    OUTPUT.mkdir(exist_ok=True)
    log = OUTPUT / f"run-cmd-{web}.log"
    log_dir = OUTPUT / f"run-cmd-{web}-logs"
    names = [g.name for g in load_gates().gates]
    store = OUTPUT / f"run-cmd-{web}-history.sqlite3"
    env = dict(os.environ, GATEWATCH_APP_ID=f"run-{web}", PYTHONUNBUFFERED="1",
               GATEWATCH_HISTORY_URL=f"sqlite:///{store}")
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gatewatch", "run", "--web-port",
                                 str(web), "--broker-port", str(broker), "--refresh", "1",
                                 "--log-dir", str(log_dir)], env=env,
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            def backlog() -> bool:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{web}/metrics",
                                                timeout=2) as r:
                        body = r.read().decode()
                except OSError:
                    return False
                return 'gate_vehicles_waiting{direction="export",gate="huu-nghi"}' in body
            poll(backlog, 60, "gate_vehicles_waiting for huu-nghi")
            rows = poll(lambda: live_view_rows(log.read_text(), names), 60,
                        "a live-view row with a number for every bundled gate")
            assert isinstance(rows, dict) and sorted(rows) == sorted(names)
            proc.send_signal(signal.SIGINT)  # Ctrl-C
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert "stopped broker, worker, simulator and history" in text
    assert not port_open(web) and not port_open(broker)
    assert processes_with_env(f"GATEWATCH_APP_ID=run-{web}") == []  # all children gone

    # the URLs a newcomer needs, then the live view, which said it waited for the worker
    for url in ("/metrics", "/api/v1/gates", "/wall", "/healthz", "/readyz"):
        assert f"http://127.0.0.1:{web}{url}" in text, url
    assert f"127.0.0.1:{broker}" in text and "topic gate.events" in text
    assert "waiting for the worker..." in text
    # the logs went to the files it named, not to the terminal
    named = dict(re.findall(r"^ +(?:logs +)?(worker|simulator|history|broker) +(\S+\.log)$",
                            text, re.M))
    assert sorted(named) == ["broker", "history", "simulator", "worker"], text
    for name, path in named.items():
        assert (ROOT / path).resolve() == (log_dir / f"{name}.log").resolve()
        assert (ROOT / path).is_file()
    worker_log = (log_dir / "worker.log").read_text()
    assert "[INFO] [^Worker]: Starting" in worker_log
    assert "simulate: " in (log_dir / "simulator.log").read_text()
    # gatewatch history ran beside the worker, into the store it named
    assert re.search(r"^  history   http://127\.0\.0\.1:\d+/metrics ", text, re.M), text
    assert f"store     {store.relative_to(ROOT)}" in text and store.is_file()
    assert "gatewatch history: store SQLite" in (log_dir / "history.log").read_text()
    assert "[INFO]" not in text and "[^Worker]" not in text and "created topic" not in text
    # readable in a terminal 100 columns wide (the log paths depend on the checkout)
    wide = [line for line in text.splitlines()
            if display_width(line) > 100 and not line.rstrip().endswith(".log")]
    assert wide == []

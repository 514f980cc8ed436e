"""The commands a person types: `gatewatch broker` and `gatewatch run` start, report
readiness, and stop cleanly, leaving no process behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

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


def test_run_command_shows_backlogs_and_ctrl_c_leaves_nothing_behind():
    web, broker = free_port(), free_port()
    OUTPUT.mkdir(exist_ok=True)
    log = OUTPUT / f"run-cmd-{web}.log"
    env = dict(os.environ, GATEWATCH_APP_ID=f"run-{web}", PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gatewatch", "run", "--web-port",
                                 str(web), "--broker-port", str(broker)], env=env,
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
            text = log.read_text()
            assert f"http://127.0.0.1:{web}/metrics" in text
            proc.send_signal(signal.SIGINT)  # Ctrl-C
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "stopped broker, worker and simulator" in log.read_text()
    assert not port_open(web) and not port_open(broker)
    assert processes_with_env(f"GATEWATCH_APP_ID=run-{web}") == []  # all children gone

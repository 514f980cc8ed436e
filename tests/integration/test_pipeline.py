"""A real worker on a real broker: exact counts from a dirty stream, dead letters,
windows closed on a silent gate, and a SIGKILL + restart that changes nothing."""

from __future__ import annotations

import time

import orjson
import pytest

from gatewatch.streams.codec import format_ms
from tests.support import MIN, committed_total, ev, message, poll, produce, read_all

pytestmark = pytest.mark.integration


def event(eid: str, gate: str, vehicle: str, etype: str, t_ms: int,
          direction: str = "export") -> tuple[bytes, bytes]:
    """The tables below in the order they read: id, gate, vehicle, type, time."""
    return message(ev(vehicle, etype, t_ms, gate, direction, eid, cargo="perishable"))


def dirty_stream(t0: int) -> tuple[list[tuple[bytes | None, bytes]], dict[str, list[bytes]]]:
    """The stream of the README's 'odd cases', with its hand-computed outcome below."""
    msgs: list[tuple[bytes | None, bytes]] = [
        event("a1", "huu-nghi", "12C-00001", "queued", t0),                # A waits
        event("a1", "huu-nghi", "12C-00001", "queued", t0),                # same id again
        event("b1", "huu-nghi", "12C-00002", "queued", t0 + 1 * MIN),      # B ...
        event("b2", "huu-nghi", "12C-00002", "crossed", t0 + 20 * MIN),    # ... crosses
        event("c1", "huu-nghi", "12C-00003", "crossed", t0 + 5 * MIN),     # crossed, no queued
        event("d2", "huu-nghi", "12C-00004", "crossed", t0 + 30 * MIN),    # D: crossed first
        event("d1", "huu-nghi", "12C-00004", "queued", t0 + 10 * MIN),     # ... queued late
        event("e1", "huu-nghi", "12C-00005", "queued", t0 + 2 * MIN, "import"),  # E waits
        event("e2", "huu-nghi", "12C-00005", "queued", t0 + 2 * MIN + 3000, "import"),  # re-read
        event("f1", "huu-nghi", "12C-00006", "queued", t0 + 3 * MIN),      # F ...
        event("f2", "huu-nghi", "12C-00006", "withdrawn", t0 + 40 * MIN),  # ... gives up
        event("g1", "huu-nghi", "12C-00007", "queued", t0 - 120 * MIN),    # very late: waits
        event("h1", "tan-thanh", "12C-00008", "queued", t0),
        event("i1", "tan-thanh", "12C-00009", "queued", t0 + MIN),
        event("h2", "tan-thanh", "12C-00008", "crossed", t0 + 2 * MIN),
    ]
    bad = {
        "not_json": b'{"event_id": "broken", ',
        "wrong_type": orjson.dumps({"event_id": "w1", "gate_id": "huu-nghi",
                                    "vehicle_id": 42, "type": "queued",
                                    "direction": "export", "occurred_at": format_ms(t0)}),
        "unknown_gate": orjson.dumps({"event_id": "u1", "gate_id": "mong-cai",
                                      "vehicle_id": "x", "type": "queued",
                                      "direction": "export", "occurred_at": format_ms(t0)}),
        "not_utf8": b"\xff\xfe\xfa",
    }
    msgs[3:3] = [(b"huu-nghi", bad["not_json"]), (b"huu-nghi", bad["wrong_type"])]
    msgs += [(b"mong-cai", bad["unknown_gate"]), (b"huu-nghi", bad["not_utf8"])]
    return msgs, {k: [v] for k, v in bad.items()}


#: hand-computed from dirty_stream: A and G wait (export), E waits (import); I at Tân Thanh
EXPECTED = {("huu-nghi", "export"): 2, ("huu-nghi", "import"): 1,
            ("tan-thanh", "export"): 1, ("tan-thanh", "import"): 0}


def waiting(m: dict, gate: str, direction: str) -> float | None:
    return m.get(("gate_vehicles_waiting", frozenset({("gate", gate),
                                                       ("direction", direction)})))


def counts_match(worker, expected, processed: int) -> bool:
    m = worker.metrics()
    done = m.get(("gatewatch_events_processed_total", frozenset()), 0) >= processed
    return done and all(waiting(m, g, d) == n for (g, d), n in expected.items())


def test_dirty_stream_gives_exact_counts_and_dead_letters(bootstrap, worker_factory, test_id):
    w = worker_factory()
    w.wait_ready()
    assert w.get("/healthz")[0] == 200
    t0 = int(time.time() * 1000) - 60 * MIN
    msgs, bad = dirty_stream(t0)
    produce(bootstrap, f"{test_id}-gate.events", msgs)
    poll(lambda: counts_match(w, EXPECTED, 15), 30, "exact waiting counts")
    m = w.metrics()
    for reason in bad:
        assert m[("gatewatch_events_rejected_total", frozenset({("reason", reason)}))] == 1
    assert m[("gatewatch_events_duplicate_total", frozenset())] >= 2
    # gates that sent nothing are "no data", never "0 waiting"
    assert m[("gate_has_data", frozenset({("gate", "coc-nam")}))] == 0
    assert waiting(m, "coc-nam", "export") is None
    # the oldest waiting export vehicle is G: 160 min before the gate's watermark (the
    # latest event time, F's withdrawal), which follows the wall clock once idle
    oldest = m[("gate_oldest_wait_seconds", frozenset({("gate", "huu-nghi"),
                                                       ("direction", "export")}))]
    assert 160 * 60 <= oldest < 160 * 60 + 120
    # every rejected message is on the dead-letter topic with its bytes and reason
    dead = read_all(bootstrap, f"{test_id}-gate.events.rejected", expect=4)
    got = {dict(r.headers)["gatewatch-reason"].decode(): r.value for r in dead}
    assert got == {k: v[0] for k, v in bad.items()}


def test_http_server_binds_loopback_only(worker_factory):
    w = worker_factory()
    w.wait_ready()
    port_hex = f"{w.port:04X}"
    listening = []
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and local.endswith(":" + port_hex):
                listening.append(local.split(":")[0])
    assert listening == ["0100007F"]  # 127.0.0.1


@pytest.mark.parametrize("committed", [False, True], ids=["redelivered", "committed"])
def test_sigkill_and_restart_keeps_counts_exact(bootstrap, worker_factory, test_id, committed):
    """Killed before committing: phase 1 is redelivered and must change nothing.
    Killed after committing everything: the first phase-2 event sits exactly at the
    committed offset and must not be skipped."""
    topic = f"{test_id}-gate.events"
    w1 = worker_factory()
    w1.wait_ready()
    t0 = int(time.time() * 1000) - 60 * MIN
    msgs, _ = dirty_stream(t0)
    produce(bootstrap, topic, msgs)
    poll(lambda: counts_match(w1, EXPECTED, 15), 30, "phase 1 counts")
    if committed:
        poll(lambda: committed_total(bootstrap, f"{test_id}-app", topic) == len(msgs), 30,
             "all phase 1 offsets committed")
    w1.kill()
    phase2 = [
        event("a2", "huu-nghi", "12C-00001", "crossed", t0 + 50 * MIN),    # A leaves
        event("j1", "huu-nghi", "12C-00010", "queued", t0 + 51 * MIN),     # J joins
        event("b2", "huu-nghi", "12C-00002", "crossed", t0 + 20 * MIN),    # redelivered
        event("i2", "tan-thanh", "12C-00009", "crossed", t0 + 52 * MIN),   # I leaves
    ]
    produce(bootstrap, topic, phase2)
    expected = {("huu-nghi", "export"): 2, ("huu-nghi", "import"): 1,
                ("tan-thanh", "export"): 0, ("tan-thanh", "import"): 0}
    w2 = worker_factory()
    started = time.monotonic()
    w2.wait_ready(timeout=90)
    poll(lambda: counts_match(w2, expected, 1), 60, "counts after restart")
    print(f"restart to exact counts: {time.monotonic() - started:.1f} s")


def test_windows_close_for_a_silent_gate(bootstrap, worker_factory, test_id):
    w = worker_factory(GATEWATCH_WINDOW_SECONDS="60", GATEWATCH_GRACE_SECONDS="5",
                       GATEWATCH_IDLE_SECONDS="2")
    w.wait_ready()
    base = 1_639_994_400_000  # 2021-12-20T10:00:00Z, a replay of December 2021
    msgs = [
        event("v1", "huu-nghi", "51C-10001", "queued", base + 1_000),
        event("v2", "huu-nghi", "51C-10002", "queued", base + 2_000),
        event("v3", "huu-nghi", "51C-10003", "queued", base + 3_000, "import"),
        event("v4", "huu-nghi", "51C-10001", "crossed", base + 40_000),
        event("v4", "huu-nghi", "51C-10001", "crossed", base + 40_000),  # duplicate
    ]
    produce(bootstrap, f"{test_id}-gate.events", msgs)
    records = read_all(bootstrap, f"{test_id}-gate.windows", expect=1, timeout=30)
    assert len(records) == 1
    doc = orjson.loads(records[0].value)
    assert doc["gate_id"] == "huu-nghi"
    assert doc["window_start"] == "2021-12-20T10:00:00.000Z"
    assert doc["arrivals"] == {"export": 2, "import": 1, "total": 3}
    assert doc["crossings"]["total"] == 1
    assert doc["waits"] == {"count": 1, "sum_seconds": 39.0, "max_seconds": 39.0}
    assert doc["closed_by"] == "idle"
    m = w.metrics()
    assert m[("gate_arrivals_last_window", frozenset({("gate", "huu-nghi"),
                                                      ("direction", "export")}))] == 2


def test_bad_configuration_fails_at_start_with_file_key_reason(tmp_path, bootstrap):
    import subprocess
    import sys

    bad = tmp_path / "gates.yaml"
    bad.write_text("version: 1\ngates:\n  - id: huu-nghi\n    name: X\n    yard_capacity: 10\n"
                   "    thresholds: {warning: 50, critical: 20}\n")
    env = {"GATEWATCH_GATES": str(bad), "GATEWATCH_KAFKA_BOOTSTRAP": bootstrap,
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "gatewatch", "worker"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"{bad}: gates[0].thresholds.critical: must be greater than warning" in proc.stderr

"""10,000 hostile messages through a real worker: no crash, every one dead-lettered with a
reason; valid vehicles at high cardinality still counted, and waiting state that never
crosses expires by the configured horizon (counted)."""

from __future__ import annotations

import random
import time

import orjson
import pytest

from gatewatch.streams.codec import format_ms
from tests.support import ev, message, poll, produce, read_all

pytestmark = pytest.mark.integration


def hostile(n: int, now_ms: int, seed: int = 13) -> list[tuple[bytes | None, bytes]]:
    rng = random.Random(seed)
    base = {"event_id": "h", "gate_id": "huu-nghi", "vehicle_id": "X", "type": "queued",
            "direction": "export", "occurred_at": format_ms(now_ms)}
    out: list[tuple[bytes | None, bytes]] = []
    for i in range(n):
        kind = i % 8
        if kind == 0:
            out.append((b"huu-nghi", rng.randbytes(rng.randint(1, 300))))
        elif kind == 1:
            out.append((b"huu-nghi", b'{"event_id": "\xff\xfe' + rng.randbytes(20) + b'"}'))
        elif kind == 2:
            depth = rng.randint(600, 20000)
            out.append((None, b"[" * depth + b"]" * depth))
        elif kind == 3:
            out.append((b"huu-nghi", orjson.dumps(dict(base, event_id=f"w{i}",
                        vehicle_id=rng.choice([1, None, [], {"a": 1}, 3.5, True])))))
        elif kind == 4:
            ts = rng.choice(["1900-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "yesterday",
                             "2021-13-45T99:00", "2021-12-20T08:00:00"])
            out.append((b"huu-nghi", orjson.dumps(dict(base, event_id=f"t{i}",
                                                       occurred_at=ts))))
        elif kind == 5:
            gate = f"gate-{rng.randrange(10**9)}"
            out.append((gate.encode(), orjson.dumps(dict(base, event_id=f"u{i}", gate_id=gate))))
        elif kind == 6:
            drop = rng.choice(list(base))
            out.append((b"huu-nghi", orjson.dumps({k: v for k, v in base.items()
                                                   if k != drop})))
        else:
            big = rng.random() < 0.01
            out.append((b"huu-nghi", b'{"pad": "' + b"x" * (70_000 if big else 10) + b'"}'))
    return out


def test_ten_thousand_hostile_messages_and_expiry(bootstrap, worker_factory, test_id):
    w = worker_factory(GATEWATCH_MAX_WAIT_SECONDS="3600")
    w.wait_ready()
    now = int(time.time() * 1000)
    bad = hostile(10_000, now)
    # valid traffic at high cardinality: 2,000 vehicles queued over the last two hours
    times = [now - 7_200_000 + i * 3_600 for i in range(2000)]
    good = [message(ev(f"HC-{i:06d}", "queued", t, event_id=f"v{i}", cargo=None))
            for i, t in enumerate(times)]
    topic = f"{test_id}-gate.events"
    produce(bootstrap, topic, bad[:5000] + good + bad[5000:])

    def rejected() -> float:
        m = w.metrics()
        return sum(v for (name, _l), v in m.items() if name == "gatewatch_events_rejected_total")
    poll(lambda: rejected() >= 10_000, 120, "10,000 rejections", interval=0.5)
    assert rejected() == 10_000
    assert w.proc is not None and w.proc.poll() is None  # no crash
    assert w.get("/healthz")[0] == 200
    dead = read_all(bootstrap, f"{test_id}-gate.events.rejected", expect=10_000, timeout=60)
    assert len(dead) == 10_000
    assert all(dict(r.headers).get("gatewatch-reason") for r in dead)
    # vehicles that never cross expire after GATEWATCH_MAX_WAIT_SECONDS of event time
    expected_expired = sum(1 for t in times if t < max(times) - 3_600_000)

    def expired() -> float:
        return w.metrics().get(("gatewatch_vehicles_expired_total",
                                frozenset({("state", "waiting")})), 0)
    poll(lambda: expired() >= expected_expired, 90, "expiry of vehicles waiting too long")
    m = w.metrics()
    assert expired() == expected_expired
    assert m[("gate_vehicles_waiting", frozenset({("gate", "huu-nghi"),
                                                  ("direction", "export")}))] == \
        2000 - expected_expired
    assert m[("gatewatch_vehicles_tracked", frozenset({("gate", "huu-nghi")}))] == \
        2000 - expected_expired

"""Fault drills on the real broker with real workers; final per-gate counts are compared
with a ground truth computed from the produced events."""

from __future__ import annotations

import threading
import time
import urllib.request

import orjson
import pytest

from gatewatch.agents.book import Ledger, decode_state, state_key
from gatewatch.gates import load_gates
from gatewatch.simulate import Faults, TrafficModel
from gatewatch.streams.codec import Decoder
from gatewatch.streams.records import CrossingEvent
from tests.conftest import poll
from tests.integration.kafka_io import committed_offsets, produce, read_all

pytestmark = pytest.mark.integration


def traffic(hours: float, seed: int) -> tuple[list[tuple[bytes, bytes]], dict[str, int]]:
    """Simulated events (duplicates, late ones) and the waiting counts they imply."""
    gates = load_gates(None)
    start = int(time.time() * 1000) - int(hours * 3_600_000)
    model = TrafficModel(gates, start, rate=6, seed=seed, faults=Faults(0.05, 0.05, 0.0),
                         initial_backlog=0.2)
    msgs = [(o.key, o.value) for o in model.advance(start + int(hours * 3_600_000))]
    msgs += [(o.key, o.value) for _, _, o in sorted(model._pending)]
    ledger = Ledger(gates, 300, 60, 30)
    dec = Decoder(gates.ids())
    for key, value in msgs:
        ev = dec.decode(value, key, start + 10 * 3_600_000)
        assert isinstance(ev, CrossingEvent)
        ledger.apply(ev, 0)
    return msgs, {g.gate_id: ledger.waiting_total(g.gate_id) for g in gates.gates}


def counts_of(msgs: list[tuple[bytes, bytes]]) -> dict[str, int]:
    """Waiting counts implied by ``msgs`` alone."""
    gates = load_gates(None)
    ledger = Ledger(gates, 300, 60, 30)
    dec = Decoder(gates.ids())
    now = int(time.time() * 1000)
    for key, value in msgs:
        ev = dec.decode(value, key, now)
        if isinstance(ev, CrossingEvent):
            ledger.apply(ev, 0)
    return {g.gate_id: ledger.waiting_total(g.gate_id) for g in gates.gates}


def waiting(w) -> dict[str, int] | None:  # type: ignore[no-untyped-def]
    try:
        with urllib.request.urlopen(f"{w.url}/api/v1/gates", timeout=5) as r:
            gates = orjson.loads(r.read())["gates"]
    except OSError:
        return None
    return {g["gate_id"]: g["waiting"]["total"] if g["waiting"] else -1 for g in gates}


def diagnose(bootstrap: str, test_id: str, n_events: int) -> dict[str, object]:
    """Where counts diverge: from the input topic as stored by the broker, and from the
    changelog's last value per vehicle (what a recovering worker would load); plus a
    few vehicles whose final changelog state misses events, with those events' input
    offsets and the key's changelog history."""
    gates = load_gates(None)
    dec = Decoder(gates.ids())
    ledger = Ledger(gates, 300, 60, 30)
    now = int(time.time() * 1000)
    stored = read_all(bootstrap, f"{test_id}-gate.events", n_events, timeout=20)
    where: dict[tuple[str, str, str], tuple[int, int]] = {}
    for rec in stored:
        ev = dec.decode(rec.value, rec.key, now)
        if isinstance(ev, CrossingEvent):
            ledger.apply(ev, 0)
            where.setdefault((ev.gate_id, ev.vehicle_id, ev.event_id),
                             (rec.partition, rec.offset))
    changelog = read_all(bootstrap, f"{test_id}-app-vehicle-state-changelog", 10**9,
                         timeout=8)
    last: dict[bytes, bytes] = {}
    history: dict[bytes, list[tuple[int, int, int]]] = {}
    for rec in changelog:
        history.setdefault(rec.key, []).append(
            (rec.partition, rec.offset, len(decode_state(rec.value)) if rec.value else -1))
        if rec.value is None:
            last.pop(rec.key, None)
        else:
            last[rec.key] = rec.value
    rebuilt = Ledger(gates, 300, 60, 30)
    rebuilt.rebuild(list(last.items()), now)
    examples = []
    for book in ledger:
        for vid, events in book.vehicles.items():
            key = state_key(book.gate_id, vid)
            got = {e[4] for e in decode_state(last[key])} if key in last else set()
            missing = [where.get((book.gate_id, vid, e[4])) for e in events
                       if e[4] not in got]
            if missing and len(examples) < 8:
                examples.append({"key": key.decode(errors="replace"), "missing_at": missing,
                                 "have": len(got), "changelog": history.get(key)})
    return {"input_topic": {g.gate_id: ledger.waiting_total(g.gate_id) for g in gates.gates},
            "changelog": {g.gate_id: rebuilt.waiting_total(g.gate_id) for g in gates.gates},
            "sizes": {"input": len(stored), "changelog": len(changelog), "keys": len(last)},
            "examples": examples,
            "committed": committed_offsets(bootstrap, f"{test_id}-app", f"{test_id}-gate.events"),
            "changelog_ends": {p: max(r.offset for r in changelog if r.partition == p)
                               for p in {r.partition for r in changelog}}}


@pytest.mark.parametrize("delivery", ["batch", "stream"])
def test_sigkill_one_of_two_workers_mid_stream(bootstrap, worker_factory, test_id, delivery):
    msgs, truth = traffic(hours=6, seed=31)
    topic = f"{test_id}-gate.events"
    env = {"GATEWATCH_BATCH_DELIVERY": "1" if delivery == "batch" else "0"}
    w1, w2 = worker_factory(**env), worker_factory(**env)
    w1.wait_ready(timeout=90)
    w2.wait_ready(timeout=90)
    half = len(msgs) // 2
    produce(bootstrap, topic, msgs[:half])
    sender = threading.Thread(target=produce, args=(bootstrap, topic, msgs[half:]))
    sender.start()  # the second half is still flowing when w1 dies
    w1.kill()
    killed = time.monotonic()
    sender.join()
    try:
        poll(lambda: waiting(w2) == truth, 30, f"exact counts on the survivor {truth}")
    finally:
        m = w2.metrics()
        print("survivor:", waiting(w2), "truth:", truth, "processed:",
              m.get(("gatewatch_events_processed_total", frozenset())), "of", len(msgs),
              "lag:", {k: v for k, v in m.items() if k[0] == "gatewatch_consumer_lag_messages"})
        if waiting(w2) != truth:
            print("diagnosis:", diagnose(bootstrap, test_id, len(msgs)))
    takeover = time.monotonic() - killed
    print(f"SIGKILL takeover to exact counts: {takeover:.1f} s for {len(msgs)} events")
    assert sum(truth.values()) > 100


def test_broker_stop_and_restart(worker_factory, tmp_path):
    """The broker goes away under a running worker and comes back (empty: the embedded
    broker is memory-only). The worker does not crash, says it is not ready while the
    broker is gone (/readyz 503 and gatewatch_broker_up 0) while still serving its
    last known counts, and counts new events on top of its state once it returns."""
    from gatewatch.broker import EmbeddedBroker, free_port

    broker = EmbeddedBroker(port=free_port(), log_path=tmp_path / "broker.log")
    broker.start()
    try:
        msgs, truth_a = traffic(hours=2, seed=7)
        half = len(msgs) // 2
        first, second = msgs[:half], msgs[half:]
        truth_first = counts_of(first)
        w = worker_factory(GATEWATCH_KAFKA_BOOTSTRAP=broker.bootstrap)
        w.wait_ready(timeout=90)
        produce(broker.bootstrap, w.env["GATEWATCH_TOPIC_PREFIX"] + "gate.events", first)
        poll(lambda: waiting(w) == truth_first, 30, f"counts before the stop {truth_first}")

        broker.stop()
        down = time.monotonic()

        def reports_down() -> bool:
            m = w.metrics()
            return (w.get("/readyz")[0] == 503
                    and m.get(("gatewatch_broker_up", frozenset())) == 0.0)
        poll(reports_down, 15, "/readyz 503 and gatewatch_broker_up 0 with the broker gone")
        print(f"broker stop seen as not ready after {time.monotonic() - down:.1f} s")
        assert w.proc is not None and w.proc.poll() is None, "the worker must not exit"
        assert waiting(w) == truth_first, "last known counts stay served while the broker is away"
        status, body = w.get("/readyz")
        assert b"broker unreachable" in body

        broker.start()
        back = time.monotonic()
        w.wait_ready(timeout=90)
        print(f"ready again {time.monotonic() - back:.1f} s after the broker returned")
        produce(broker.bootstrap, w.env["GATEWATCH_TOPIC_PREFIX"] + "gate.events", second)
        poll(lambda: waiting(w) == truth_a, 60, f"counts after the restart {truth_a}")
        assert w.metrics().get(("gatewatch_broker_up", frozenset())) == 1.0
        assert w.proc.poll() is None
    finally:
        broker.stop()

"""Fault drills on the real broker with real workers; final per-gate counts are compared
with a ground truth computed from the produced events."""

from __future__ import annotations

import threading
import time
import urllib.request

import orjson
import pytest

from gatewatch.core.processor import Processor, SourceRecord
from gatewatch.gates import load_gates
from gatewatch.settings import Settings
from gatewatch.streams.changelog import decode_state, state_key
from gatewatch.streams.codec import Decoder
from gatewatch.streams.records import CrossingEvent
from gatewatch.tools.simulate import Faults, TrafficModel
from tests.support import (
    CHROMIUM_ARGS,
    chromium,
    committed_offsets,
    free_port,
    poll,
    produce,
    read_topic,
    report_figure,
    tail,
)

pytestmark = pytest.mark.integration


def traffic(hours: float, seed: int) -> tuple[list[tuple[bytes, bytes]], dict[str, int]]:
    """Simulated events (duplicates, late ones) and the waiting counts they imply."""
    gates = load_gates(None)
    start = int(time.time() * 1000) - int(hours * 3_600_000)
    model = TrafficModel(gates, start, rate=6, seed=seed, faults=Faults(0.05, 0.05, 0.0),
                         initial_backlog=0.2)
    msgs = [(o.key, o.value) for o in model.advance(start + int(hours * 3_600_000))]
    msgs += [(o.key, o.value) for o in model.in_flight()]
    return msgs, counts_of(msgs)


def counts_of(msgs: list[tuple[bytes, bytes]]) -> dict[str, int]:
    """Waiting counts implied by ``msgs`` alone (every one a valid event)."""
    gates = load_gates(None)
    proc = Processor(gates, Settings())
    now = int(time.time() * 1000) + 3_600_000  # the latest simulated events are not future
    fx = proc.apply_batch([SourceRecord("gate.events", 0, i, now, key, value)
                           for i, (key, value) in enumerate(msgs)], now, evaluate_alerts=False)
    assert not fx.dead_letters and not fx.errors
    return {g.gate_id: proc.signals(g.gate_id, now).backlog for g in gates.gates}


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
    proc = Processor(gates, Settings())
    ledger = proc.ledger
    now = int(time.time() * 1000)
    stored = read_topic(bootstrap, f"{test_id}-gate.events")
    proc.apply_batch([SourceRecord(rec.topic, rec.partition, rec.offset, rec.timestamp,
                                   rec.key, rec.value) for rec in stored], now,
                     evaluate_alerts=False)
    where: dict[tuple[str, str, str], tuple[int, int]] = {}
    for rec in stored:
        ev = dec.decode(rec.value, rec.key, now)
        if isinstance(ev, CrossingEvent):
            where.setdefault((ev.gate_id, ev.vehicle_id, ev.event_id),
                             (rec.partition, rec.offset))
    changelog = read_topic(bootstrap, f"{test_id}-app-vehicle-state-changelog")
    last: dict[bytes, bytes] = {}
    history: dict[bytes, list[tuple[int, int, int]]] = {}
    for rec in changelog:
        history.setdefault(rec.key, []).append(
            (rec.partition, rec.offset, len(decode_state(rec.value)) if rec.value else -1))
        if rec.value is None:
            last.pop(rec.key, None)
        else:
            last[rec.key] = rec.value
    rebuilt_proc = Processor(gates, Settings())
    rebuilt_proc.rebuild([(k, v, None) for k, v in last.items()], now)
    examples = []
    for book in ledger:
        for vid, events in book.vehicles.items():
            key = state_key(book.gate_id, vid)
            got = {e[4] for e in decode_state(last[key])} if key in last else set()
            missing = [where.get((book.gate_id, vid, e[4])) for e in events
                       if e[4] not in got]
            if missing:
                examples.append({"key": key.decode(errors="replace"), "missing_at": missing,
                                 "have": len(got), "changelog": history.get(key)})
    proc.reconcile_now(now)
    rebuilt_proc.reconcile_now(now)
    return {"input_topic": {g.gate_id: proc.signals(g.gate_id, now).backlog
                            for g in gates.gates},
            "changelog": {g.gate_id: rebuilt_proc.signals(g.gate_id, now).backlog
                          for g in gates.gates},
            "sizes": {"input": len(stored), "changelog": len(changelog), "keys": len(last)},
            "vehicles_missing_events": len(examples), "examples": examples[:8],
            "committed": committed_offsets(bootstrap, f"{test_id}-app", f"{test_id}-gate.events"),
            "changelog_ends": {p: max(r.offset for r in changelog if r.partition == p)
                               for p in {r.partition for r in changelog}}}


def expect_exact(bootstrap: str, test_id: str, workers: list, truth: dict[str, int],  # type: ignore[type-arg]
                 n_events: int, timeout: float, what: str) -> None:
    """Every live worker's API answers ``truth`` for every gate, and no vehicle's state
    in the changelog misses one of its events (zero lost, zero double-counted). On
    failure, prints where the counts diverge."""
    def exact() -> bool:
        return all(waiting(w) == truth for w in workers)

    def alive() -> None:
        for w in workers:
            w.check_alive()  # a survivor that died fails at once, with its log
    try:
        poll(exact, timeout, f"{what}: exact counts {truth} on every worker", alive=alive)
    finally:
        if not exact():
            for w in workers:
                m = w.metrics()
                answer = waiting(w)
                print(w.url, answer, "processed:",
                      m.get(("gatewatch_events_processed_total", frozenset())),
                      "exit code:", w.proc.poll() if w.proc else None,
                      "readyz:", w.get("/readyz", 5))
                if answer is None:  # it does not answer: what was it doing?
                    print(f"--- {w.log_path} ends:\n{tail(w.log_path, 60)}")
            print("diagnosis:", diagnose(bootstrap, test_id, n_events))
    diag = diagnose(bootstrap, test_id, n_events)
    assert diag["vehicles_missing_events"] == 0, diag
    assert diag["changelog"] == truth, diag


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
    expect_exact(bootstrap, test_id, [w2], truth, len(msgs), 30, "after SIGKILL of a peer")
    takeover = time.monotonic() - killed
    report_figure(f"2 workers, SIGKILL one before its first commit ({delivery} delivery): "
                  f"exact {takeover:.1f} s after the kill ({len(msgs)} events)")
    assert sum(truth.values()) > 100


@pytest.mark.parametrize("standbys", [0, 1])
def test_sigkill_one_of_three_workers_after_commits(bootstrap, worker_factory, test_id,
                                                   standbys):
    """Three workers, offsets already committed, one SIGKILLed while events flow: the two
    others take its partitions over from its committed offsets and its changelog (with
    and without standby replicas)."""
    msgs, truth = traffic(hours=6, seed=47)
    topic = f"{test_id}-gate.events"
    env = {"GATEWATCH_STANDBY_REPLICAS": str(standbys)}
    workers = [worker_factory(**env), worker_factory(**env), worker_factory(**env)]
    for w in workers:
        w.wait_ready(timeout=90)
    third = len(msgs) // 3
    produce(bootstrap, topic, msgs[:third])

    def committed() -> bool:
        offsets = committed_offsets(bootstrap, f"{test_id}-app", topic)
        return sum(o or 0 for o in offsets.values()) >= third // 2
    poll(committed, 30, "offsets committed for half the first third", interval=0.5)

    def processed(w) -> float:  # type: ignore[no-untyped-def]
        return w.metrics().get(("gatewatch_events_processed_total", frozenset()), 0.0)
    # kill a worker that consumes events (5 gates on 4 partitions: one may get none)
    victim = max(workers, key=processed)
    assert processed(victim) > 0
    sender = threading.Thread(target=produce, args=(bootstrap, topic, msgs[third:]))
    sender.start()
    victim.kill()
    killed = time.monotonic()
    sender.join()
    survivors = [w for w in workers if w is not victim]
    expect_exact(bootstrap, test_id, survivors, truth, len(msgs), 60,
                 "after SIGKILL of one of three workers")
    report_figure(f"3 workers, SIGKILL one after commits ({standbys} standbys): exact "
                  f"{time.monotonic() - killed:.1f} s after the kill ({len(msgs)} events)")


def test_rolling_restart_under_traffic(bootstrap, worker_factory, test_id):
    """SIGTERM each of two workers in turn and start a replacement while events keep
    arriving; the API keeps answering throughout and the final counts are exact."""
    msgs, truth = traffic(hours=8, seed=53)
    topic = f"{test_id}-gate.events"
    workers = [worker_factory(), worker_factory()]
    for w in workers:
        w.wait_ready(timeout=90)
    stop = threading.Event()
    chunks = [msgs[i:i + 200] for i in range(0, len(msgs), 200)]

    def steady() -> None:  # ~20 chunks/s until the drill is over, then the rest at once
        for chunk in chunks:
            produce(bootstrap, topic, chunk)
            if not stop.is_set():
                stop.wait(0.25)
    answers: list[tuple[int, bool]] = []
    live: list = [workers[1]]  # type: ignore[type-arg]

    def ask_api() -> None:
        while not stop.is_set():
            status, body = live[0].get("/api/v1/gates")
            try:
                ok_json = isinstance(orjson.loads(body), dict)
            except orjson.JSONDecodeError:
                ok_json = False
            answers.append((status, ok_json))
            stop.wait(0.2)
    sender = threading.Thread(target=steady)
    asker = threading.Thread(target=ask_api)
    sender.start()
    asker.start()
    started = time.monotonic()
    try:
        for i in range(2):
            old = workers[i]
            live[0] = workers[1 - i]  # ask the worker that stays up
            old.stop()  # SIGTERM, waits for a clean exit
            assert old.proc is not None and old.proc.returncode == 0, "clean exit on SIGTERM"
            workers[i] = worker_factory()
            workers[i].wait_ready(timeout=90)
        live[0] = workers[0]
    finally:
        stop.set()
        asker.join()
        sender.join()
    report_figure(f"rolling restart of 2 workers: {time.monotonic() - started:.1f} s; API "
                  f"answers meanwhile: {len(answers)}, 200: "
                  f"{sum(1 for s, _ in answers if s == 200)}, "
                  f"503: {sum(1 for s, _ in answers if s == 503)}")
    assert answers and all(s in (200, 503) and ok for s, ok in answers), \
        f"every API request answered with JSON (200, or 503 while rebalancing): {answers}"
    assert sum(1 for s, _ in answers if s == 200) >= len(answers) // 2
    expect_exact(bootstrap, test_id, workers, truth, len(msgs), 60, "after a rolling restart")


def test_broker_stop_and_restart(worker_factory, tmp_path):
    """The broker goes away under a running worker and comes back (empty: the embedded
    broker is memory-only). The worker does not crash, says it is not ready while the
    broker is gone (/readyz 503 and gatewatch_broker_up 0) while still serving its
    last known counts, and counts new events on top of its state once it returns."""
    from gatewatch.tools.broker import EmbeddedBroker

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

        exe = chromium()
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(f"{w.url}/wall?refresh_ms=300")
                page.wait_for_function(
                    "document.getElementById('status').textContent.startsWith('Cập nhật')")

                broker.stop()
                down = time.monotonic()

                def reports_down() -> bool:
                    m = w.metrics()
                    return (w.get("/readyz")[0] == 503
                            and m.get(("gatewatch_broker_up", frozenset())) == 0.0)
                poll(reports_down, 15, "/readyz 503 and gatewatch_broker_up 0, broker gone")
                report_figure(f"broker stopped: not ready {time.monotonic() - down:.1f} s later")
                assert w.proc is not None and w.proc.poll() is None, "the worker must not exit"
                assert waiting(w) == truth_first, "last known counts stay served meanwhile"
                status, body = w.get("/readyz")
                assert b"broker unreachable" in body
                status, body = w.get("/api/v1/gates")
                assert status == 200 and orjson.loads(body)["kafka"]["reachable"] is False
                # the operations-center wall says the numbers are frozen, not just stale
                page.wait_for_function("document.getElementById('status').textContent"
                                       ".startsWith('MẤT KẾT NỐI KAFKA')", timeout=15_000)
                assert page.eval_on_selector("#status", "e => e.className") == "stale"
            finally:
                browser.close()

        broker.start()
        back = time.monotonic()
        w.wait_ready(timeout=90)
        report_figure(f"broker back: ready again {time.monotonic() - back:.1f} s later")
        produce(broker.bootstrap, w.env["GATEWATCH_TOPIC_PREFIX"] + "gate.events", second)
        poll(lambda: waiting(w) == truth_a, 60, f"counts after the restart {truth_a}")
        assert w.metrics().get(("gatewatch_broker_up", frozenset())) == 1.0
        assert w.proc.poll() is None
        w.stop()  # while its broker is up: stopped after it, it waits out its grace (30 s)
    finally:
        broker.stop()

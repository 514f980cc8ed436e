"""Throughput benchmark: gatewatch against raw aiokafka, naive Faust and Quix Streams.

What it measures
    1. Starts the embedded Tansu broker (gatewatch.tools.broker.EmbeddedBroker) on a free
       loopback port.
    2. Pre-produces N contract-v1 gate events (keyed by gate_id, ~2 % duplicates, realistic
       queued -> crossed/withdrawn lifecycles over simulated hours) into
       `bench-<uuid8>-gate.events`.
    3. Drains that topic with each contender in its own subprocess and consumer group:
         raw       aiokafka getmany + orjson + dict count per gate (the ceiling)
         faust     naive Faust agent, `table[gate] += 1` on a tumbling(300) windowed table
         quix      Quix Streams 3.x, 5-minute tumbling count per gate on occurred_at
         gatewatch-stream  the gatewatch worker on Faust's per-event stream path
                   (GATEWATCH_BATCH_DELIVERY=0): what batch delivery is measured against
         gatewatch `.venv/bin/gatewatch worker`, progress read from its /metrics
       events/s is N / (time of last event - time of first event consumed); wall s includes
       start-up (spawn to N-th event). CPU s (user+sys) and peak RSS (VmHWM) are read from
       /proc for the contender process when it reaches N events.
    4. Prints a table with gatewatch's ratio to each contender, optionally writes JSON.

Run (from the repo root):
    .venv/bin/python bench/throughput.py --events 500000
    # before/after a change, in one run: the worker of another commit (checked out in a
    # temporary git worktree, run from the same venv) beside this one, alternated
    .venv/bin/python bench/throughput.py --events 300000 --only gatewatch \
        --baseline bc299d8 --repeat 3 --json bench/results-refactor.json
    .venv/bin/python bench/throughput.py --events 50000 --only raw,faust,quix --json out.json
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV_BIN = ROOT / ".venv" / "bin"
if not VENV_BIN.is_dir():
    VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))
from _baselines import proc_usage  # noqa: E402

from tests.support import PollTimeout, free_port, poll, stop_process, tail  # noqa: E402

CONTENDERS = ["raw", "faust", "quix", "gatewatch-stream", "gatewatch"]
TZ = timezone(timedelta(hours=7))


# --- broker -------------------------------------------------------------------------------

def start_broker(timeout: float = 20) -> Any:
    """The project's embedded broker on a free loopback port."""
    from gatewatch.tools.broker import EmbeddedBroker

    broker = EmbeddedBroker(free_port())
    try:
        broker.start(timeout_seconds=timeout)
    except BaseException:
        broker.stop()
        raise
    return broker


# --- events -------------------------------------------------------------------------------

def generate_events(n: int, gates: int, seed: int = 7,
                    start: float | None = None) -> Iterator[tuple[bytes, bytes]]:
    """Exactly n (key, value) messages, in event-time order, ~2 % re-sent duplicates.

    Event time starts at `start` (epoch s; default 2026-11-27 08:00 +07:00) and advances
    ~9k vehicles per hour: keep the end behind the clock (the worker rejects events more
    than GATEWATCH_MAX_FUTURE_SKEW_SECONDS ahead of it as from_the_future)."""
    rng = random.Random(seed)
    letters = "ABCDEFGHKLMNPSTUVXYZ"
    t = datetime(2026, 11, 27, 8, 0, tzinfo=TZ).timestamp() if start is None else start
    # (time, seq, queued event) of vehicles waiting to cross or withdraw
    pending: list[tuple[float, int, dict[str, str]]] = []
    recent: deque[tuple[bytes, bytes]] = deque(maxlen=50)
    seq = 0
    emitted = 0
    while emitted < n:
        if recent and rng.random() < 0.02:  # a camera reads the plate twice
            yield rng.choice(recent)
            emitted += 1
            continue
        next_arrival = t + rng.expovariate(1 / 0.4)  # ~9k vehicles per hour over all gates
        if pending and pending[0][0] <= next_arrival:
            t, _, q = heapq.heappop(pending)
            kind = "crossed" if rng.random() < 0.92 else "withdrawn"
            event = dict(q, type=kind)
        else:
            t = next_arrival
            gate = f"gate-{rng.randrange(gates)}"
            plate = f"{rng.randint(11, 99)}{rng.choice(letters)}-{rng.randint(0, 99999):05d}"
            event = {"gate_id": gate, "vehicle_id": plate, "type": "queued",
                     "direction": "export" if rng.random() < 0.7 else "import",
                     "cargo": rng.choice(("perishable", "perishable", "general", "empty"))}
            wait = min(rng.lognormvariate(7.5, 0.9), 12 * 3600)  # median ~30 min
            heapq.heappush(pending, (t + wait, seq, event))
        seq += 1
        occurred = datetime.fromtimestamp(t, TZ).isoformat(timespec="milliseconds")
        msg = {"event_id": f"ev-{seq:010d}", **event, "occurred_at": occurred}
        kv = (event["gate_id"].encode(), orjson.dumps(msg))
        recent.append(kv)
        yield kv
        emitted += 1


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    # Quix Streams reads retention.ms back via DescribeConfigs; Tansu only returns set keys.
    cfg = {"retention.ms": str(7 * 24 * 3600 * 1000), "cleanup.policy": "delete"}
    for fut in admin.create_topics([NewTopic(topic, partitions, 1, config=cfg)]).values():
        fut.result(30)


def delete_topics(bootstrap: str, match: Callable[[str], bool]) -> None:
    """Free broker memory (Tansu keeps every record until the topic is deleted)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    names = [t for t in admin.list_topics(timeout=10).topics if match(t)]
    if names:
        for fut in admin.delete_topics(names, operation_timeout=30).values():
            try:
                fut.result(30)
            except Exception as exc:
                print(f"  (could not delete a topic: {exc})")


def produce(bootstrap: str, topic: str, n: int, gates: int,
            events: Iterable[tuple[bytes, bytes]] | None = None) -> dict[str, float]:
    """Produce n events (default `generate_events(n, gates)`) as fast as possible."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all",
                         "batch.num.messages": 10000, "batch.size": 1_000_000,
                         "queue.buffering.max.messages": 200_000, "enable.idempotence": False,
                         "log_level": 3})
    failures: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    start = time.monotonic()
    next_report = start + 5
    source = generate_events(n, gates) if events is None else events
    for i, (key, value) in enumerate(source, 1):
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        if time.monotonic() >= next_report:
            next_report += 5
            print(f"  produced {i:,}/{n:,} ({i / (time.monotonic() - start):,.0f}/s)", flush=True)
    remaining = producer.flush(120)
    if remaining or failures:
        raise RuntimeError(f"produce failed: {remaining} undelivered, {failures[:3]}")
    elapsed = time.monotonic() - start
    print(f"  produced {n:,} events in {elapsed:.1f}s ({n / elapsed:,.0f}/s)")
    return {"seconds": round(elapsed, 2), "events_per_s": round(n / elapsed)}


# --- contenders -----------------------------------------------------------------------------

def run_baseline(name: str, bootstrap: str, topic: str, n: int, partitions: int,
                 workdir: Path, group: str, timeout: float) -> dict[str, Any]:
    out = workdir / f"{name}.result.json"
    log = workdir / f"{name}.log"
    cmd = [sys.executable, str(BENCH / "_baselines.py"), name, "--bootstrap", bootstrap,
           "--topic", topic, "--events", str(n), "--partitions", str(partitions),
           "--group", group, "--out", str(out), "--workdir", str(workdir),
           "--web-port", str(free_port())]
    with open(log, "wb") as logf:
        start = time.time()
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            def progress() -> int:
                try:
                    text = (workdir / f"{name}.result.json.progress").read_text()
                    return int(json.loads(text)["count"])
                except (OSError, ValueError):
                    return 0

            wait_for(lambda: out.exists(), proc, timeout, progress, log)
            result = json.loads(out.read_text())
        finally:
            stop_process(proc)
    return summarize(n, start, result["first"], result["last"], result)


def run_gatewatch(bootstrap: str, topic_prefix: str, n_events: int, workdir: Path,
                  gates: int, app_id: str, timeout: float,
                  extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    import urllib.request

    gates_file = workdir / "gates.yaml"
    gates_file.write_text("version: 1\ngates:\n" + "".join(
        f'  - id: gate-{i}\n    name: "Gate {i}"\n    name_en: "Gate {i}"\n'
        f"    yard_capacity: 100000\n    thresholds: {{warning: 50000, critical: 90000}}\n"
        for i in range(gates)))
    port = free_port()
    env = dict(os.environ, GATEWATCH_KAFKA_BOOTSTRAP=bootstrap, GATEWATCH_TOPIC_PREFIX=topic_prefix,
               GATEWATCH_APP_ID=app_id, GATEWATCH_GATES=str(gates_file), **(extra_env or {}))
    log = workdir / "gatewatch.log"
    url = f"http://127.0.0.1:{port}/metrics"
    seen = {"count": 0, "first": 0.0, "last": 0.0}
    usage: dict[str, float] = {}

    with open(log, "wb") as logf:
        start = time.time()
        proc = subprocess.Popen([str(VENV_BIN / "gatewatch"), "worker", "--web-port", str(port)],
                                cwd=workdir, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            def poll_metrics() -> bool:
                try:
                    with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310
                        text = resp.read().decode()
                except OSError:
                    return False
                count = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                            if line.startswith(("gatewatch_events_processed_total",
                                                "gatewatch_events_rejected_total")))
                now = time.time()
                if count > 0 and not seen["first"]:
                    seen["first"] = now
                seen["count"] = int(count)
                if count >= n_events:
                    seen["last"] = now
                    usage.update(proc_usage(proc.pid))  # measured while still running
                    return True
                return False

            wait_for(poll_metrics, proc, timeout, lambda: int(seen["count"]), log)
        finally:
            stop_process(proc)
    return summarize(n_events, start, seen["first"], seen["last"], usage)


def wait_for(done: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float,
             progress: Callable[[], int], log: Path) -> None:
    """Poll `done` until true; fail fast if the process dies or the deadline passes
    (a TimeoutError, with the log's tail)."""
    def alive() -> None:
        if proc.poll() is not None and not done():
            raise RuntimeError(f"exited with {proc.returncode} before finishing; log tail:\n"
                               + tail(log))

    try:
        poll(done, timeout, "the last event", 0.05, alive=alive,
             progress=lambda: f"{progress():,} events")
    except PollTimeout as exc:
        raise TimeoutError(f"{exc}; log tail:\n{tail(log)}") from None


def summarize(n: int, start: float, first: float, last: float,
              usage: dict[str, Any]) -> dict[str, Any]:
    span = max(last - first, 1e-9)
    return {"events_per_s": round(n / span), "process_s": round(span, 2),
            "wall_s": round(last - start, 2), "cpu_s": usage.get("cpu_s"),
            "user_s": usage.get("user_s"), "sys_s": usage.get("sys_s"),
            "peak_rss_mib": usage.get("peak_rss_mib")}


def print_table(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    gw = results.get("gatewatch", {}).get("events_per_s")
    ratios: dict[str, float] = {}
    print(f"\n{'contender':<16} {'events/s':>10} {'proc s':>8} {'wall s':>8} {'CPU s':>8} "
          f"{'peak RSS MiB':>13} {'gatewatch ÷':>12}")
    for name, r in results.items():
        if "error" in r:
            print(f"{name:<16} {'failed: ' + r['error'].strip().splitlines()[-1][:70]}")
            continue
        ratio = ""
        if gw and name != "gatewatch":
            ratios[name] = round(gw / r["events_per_s"], 3)
            ratio = f"{ratios[name]:.3f}x"
        print(f"{name:<16} {r['events_per_s']:>10,} {r['process_s']:>8.1f} {r['wall_s']:>8.1f} "
              f"{r['cpu_s'] or 0:>8.1f} {r['peak_rss_mib'] or 0:>13.1f} {ratio:>12}")
    return ratios


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=500_000)
    p.add_argument("--gates", type=int, default=8)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--only", default=",".join(CONTENDERS),
                   help="comma list of " + ",".join(CONTENDERS))
    p.add_argument("--skip", default="", help="comma list of contenders to leave out")
    p.add_argument("--timeout", type=float, default=0,
                   help="per contender, s (default 60 + N/1000)")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--logs", type=Path, help="keep contender logs in this directory")
    p.add_argument("--baseline", default="",
                   help="git revision whose worker runs as contender 'gatewatch@REV' beside "
                        "this tree's (alternating with it)")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs of each gatewatch contender (the median is reported)")
    args = p.parse_args()
    only = [c for c in args.only.split(",") if c]
    unknown = set(only) - set(CONTENDERS)
    if unknown:
        p.error(f"unknown contenders: {', '.join(sorted(unknown))}")
    chosen = [c for c in CONTENDERS if c in only and c not in args.skip.split(",")]
    if not shutil.which("gatewatch", path=str(VENV_BIN)):
        print(f"skipping gatewatch: no `gatewatch` executable in {VENV_BIN}")
        chosen = [c for c in chosen if not c.startswith("gatewatch")]
    timeout = args.timeout or 60 + args.events / 1000

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if inherited as ignored
    run_id = uuid.uuid4().hex[:8]
    prefix = f"bench-{run_id}-"
    topic = f"{prefix}gate.events"
    results: dict[str, dict[str, Any]] = {}
    report: dict[str, Any] = {"events": args.events, "gates": args.gates,
                              "partitions": args.partitions, "topic": topic, "results": results}
    envs: dict[str, dict[str, str]] = {"gatewatch-stream": {"GATEWATCH_BATCH_DELIVERY": "0"},
                                       "gatewatch": {"GATEWATCH_BATCH_DELIVERY": "1"}}
    base_tree = None
    if args.baseline and "gatewatch" in chosen:
        base_tree = Path(tempfile.mkdtemp(prefix="gatewatch-baseline-"))
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f",
                        str(base_tree), args.baseline], check=True, capture_output=True)
        name = f"gatewatch@{args.baseline[:12]}"
        envs[name] = {"GATEWATCH_BATCH_DELIVERY": "1", "PYTHONPATH": str(base_tree)}
        chosen.insert(chosen.index("gatewatch"), name)
    runs = [c for c in chosen if not c.startswith("gatewatch")] + \
        [c for _ in range(max(1, args.repeat)) for c in chosen if c.startswith("gatewatch")]
    broker = start_broker()
    with tempfile.TemporaryDirectory(prefix="gatewatch-bench-") as tmp:
        tmp = str(args.logs.resolve()) if args.logs else tmp
        Path(tmp).mkdir(parents=True, exist_ok=True)
        try:
            print(f"broker at {broker.bootstrap}; producing {args.events:,} events to {topic}")
            create_topic(broker.bootstrap, topic, args.partitions)
            report["produce"] = produce(broker.bootstrap, topic, args.events, args.gates)
            all_runs: dict[str, list[dict[str, Any]]] = {}
            for i, name in enumerate(runs):
                group = f"{prefix}{name}-{i}"
                workdir = Path(tmp) / f"{name}-{i}"
                workdir.mkdir(exist_ok=True)
                print(f"\n[{name}] draining {args.events:,} events (group {group})", flush=True)
                try:
                    if name.startswith("gatewatch"):
                        # gatewatch-stream: the same worker on Faust's per-event stream path
                        r = run_gatewatch(broker.bootstrap, prefix, args.events, workdir,
                                          args.gates, group, timeout, envs[name])
                    else:
                        r = run_baseline(name, broker.bootstrap, topic, args.events,
                                         args.partitions, workdir, group, timeout)
                    print(f"  {r['events_per_s']:,} events/s, {r['cpu_s']} CPU s, "
                          f"{r['peak_rss_mib']} MiB peak, {r['wall_s']} s wall")
                except (RuntimeError, TimeoutError, OSError, ValueError, KeyError) as exc:
                    print(f"  FAILED: {exc}")
                    r = {"error": str(exc)}
                all_runs.setdefault(name, []).append(r)
                delete_topics(broker.bootstrap, lambda t: prefix in t and t != topic)
            for name, rs in all_runs.items():
                ok = sorted((r for r in rs if "error" not in r),
                            key=lambda r: r["events_per_s"])
                results[name] = dict(ok[len(ok) // 2]) if ok else rs[0]
                if len(rs) > 1:
                    results[name]["runs_events_per_s"] = [r.get("events_per_s") for r in rs]
                    print(f"{name}: runs {results[name]['runs_events_per_s']} events/s, "
                          f"median reported")
        finally:
            broker.stop()
            if base_tree is not None:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(base_tree)], check=False, capture_output=True)
    report["gatewatch_ratio"] = print_table(results)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0 if results and all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

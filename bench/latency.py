"""End-to-end latency: an event produced → visible in the worker's /metrics.

What it measures
    Starts an embedded broker and one `gatewatch worker`, then for --seconds produces a
    steady background load (--rate events/s of contract-v1 traffic over 8 gates) plus
    a probe every 100 ms: a `queued` event for a new vehicle at a dedicated `probe`
    gate. A poller reads /metrics every 10 ms; a probe's latency is from just before it
    was handed to the producer to the first scrape where `gate_vehicles_waiting` for
    the probe gate counts it (so it includes up to 10 ms of polling resolution and the
    producer's linger). Runs the same measurement for the worker on Faust's per-event
    stream path (GATEWATCH_BATCH_DELIVERY=0) as the baseline, in the same run.
    `--via api` polls `GET /api/v1/gates/probe` (its `waiting.export`) instead: the same
    ledger, at a fraction of a /metrics scrape's CPU cost in the worker.

Run (from the repo root):
    .venv/bin/python bench/latency.py --rate 2000 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _baselines import proc_usage  # noqa: E402
from throughput import generate_events  # noqa: E402

from gatewatch.streams.codec import format_ms  # noqa: E402
from gatewatch.tools.broker import EmbeddedBroker  # noqa: E402
from tests.support import WorkerProc, free_port  # noqa: E402

PROBE_LINE = 'gate_vehicles_waiting{direction="export",gate="probe"} '


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def gates_yaml(n: int) -> str:
    gates = [f"gate-{i}" for i in range(n)] + ["probe"]
    return "version: 1\ngates:\n" + "".join(
        f'  - id: {g}\n    name: "{g}"\n    yard_capacity: 1000000\n'
        f"    thresholds: {{warning: 500000, critical: 900000}}\n" for g in gates)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _lag_messages(url: str) -> int | None:
    """Sum of gatewatch_consumer_lag_messages over partitions (one /metrics scrape)."""
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as r:  # noqa: S310
            body = r.read().decode()
    except OSError:
        return None
    name = "gatewatch_consumer_lag_messages{"
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                   if line.startswith(name)))


def measure(bootstrap: str, workdir: Path, rate: int, seconds: float, batch_delivery: bool,
            events_start: float | None = None, progress: bool = False,
            via: str = "metrics", sample_every: float = 0.0,
            on_sample: Callable[[dict[str, Any]], None] | None = None,
            preload: Callable[[str, str], None] | None = None,
            env_extra: dict[str, str] | None = None) -> dict[str, Any]:
    """One worker under `rate` events/s of background load for `seconds`, probed every
    100 ms. `events_start` sets the background events' first event time (epoch s);
    `progress` prints the events sent every 10 s; `via` is `metrics` or `api` (what the
    poller reads).

    With `sample_every` > 0, every that many seconds a sample (worker RSS and CPU %,
    consumer lag from one /metrics scrape, the probes seen since the previous sample with
    their latencies and p50/p99) is taken, passed to `on_sample` and returned in
    `samples`. `preload(topic, url)` runs once the worker is ready, before the load;
    `env_extra` is added to the worker's environment."""
    if via not in ("metrics", "api"):
        raise ValueError(f"via must be metrics or api, not {via!r}")
    prefix = f"lat-{uuid.uuid4().hex[:8]}-"
    (workdir / "gates.yaml").write_text(gates_yaml(8))
    env = dict(os.environ, GATEWATCH_KAFKA_BOOTSTRAP=bootstrap, GATEWATCH_TOPIC_PREFIX=prefix,
               GATEWATCH_APP_ID=prefix + "app", GATEWATCH_GATES=str(workdir / "gates.yaml"),
               GATEWATCH_BATCH_DELIVERY="1" if batch_delivery else "0", **(env_extra or {}))
    worker = WorkerProc(env, free_port(), workdir / f"worker-{int(batch_delivery)}.log",
                        cwd=workdir, stop_grace=8.0).start()
    url = worker.url
    sent_at: dict[int, float] = {}
    acked_at: dict[int, float] = {}  # the broker acknowledged the probe (it is in Kafka)
    seen_at: dict[int, float] = {}
    stop = threading.Event()
    counters = {"sent": 0}
    samples: list[dict[str, Any]] = []

    def probes_counted(body: str) -> int:
        if via == "api":
            waiting = orjson.loads(body).get("waiting")
            return int(waiting["export"]) if waiting else 0
        i = body.find(PROBE_LINE)
        return int(float(body[i + len(PROBE_LINE):body.index("\n", i)])) if i >= 0 else 0

    path = "/api/v1/gates/probe" if via == "api" else "/metrics"

    def poller() -> None:
        while not stop.is_set():
            try:
                with urllib.request.urlopen(url + path, timeout=2) as r:  # noqa: S310
                    body = r.read().decode()
            except OSError:
                time.sleep(0.01)
                continue
            now = time.monotonic()
            for k in range(1, probes_counted(body) + 1):
                seen_at.setdefault(k, now)
            time.sleep(0.01)

    async def load() -> int:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1)
        await producer.start()
        events = generate_events(10**9, 8, seed=11, start=events_start)
        sent = 0
        probe = 0
        try:
            start = time.monotonic()
            next_probe = start
            next_report = start + 10
            while (elapsed := time.monotonic() - start) < seconds:
                if progress and time.monotonic() >= next_report:
                    next_report += 10
                    print(f"  ... {elapsed:.0f} s: {sent:,} events sent, {probe} probes",
                          flush=True)
                due = int(elapsed * rate)
                while sent < due:
                    key, value = next(events)
                    await producer.send(f"{prefix}gate.events", value, key=key)
                    sent += 1
                    counters["sent"] = sent
                    if not sent % 64 and time.monotonic() >= next_probe:
                        break  # near saturation a catch-up takes long: send the probe on time
                if time.monotonic() >= next_probe:
                    probe += 1
                    doc = {"event_id": f"probe-{probe}", "gate_id": "probe",
                           "vehicle_id": f"PROBE-{probe:05d}", "type": "queued",
                           "direction": "export",
                           "occurred_at": format_ms(int(time.time() * 1000))}
                    sent_at[probe] = time.monotonic()
                    fut = await producer.send(f"{prefix}gate.events", orjson.dumps(doc),
                                              key=b"probe")
                    fut.add_done_callback(
                        lambda _f, k=probe: acked_at.setdefault(k, time.monotonic()))
                    next_probe += 0.1
                await asyncio.sleep(0.002)
            await producer.flush()
        finally:
            await producer.stop()
        return sent

    def sampler(t_start: float) -> None:
        reported: set[int] = set()
        cpu_prev, t_prev, sent_prev = proc_usage(worker.pid)["cpu_s"], t_start, 0
        while not stop.wait(max(0.0, t_prev + sample_every - time.monotonic())):
            now = time.monotonic()
            cpu = proc_usage(worker.pid)["cpu_s"]
            lag = _lag_messages(url)
            seen = dict(seen_at)  # a copy: the poller thread adds to it
            new = sorted(k for k in seen if k not in reported)
            reported.update(new)
            lat = [(seen[k] - sent_at[k]) * 1000 for k in new]
            sent_now = counters["sent"]
            pending = sum(1 for k, t in list(sent_at.items())
                          if k not in seen and now - t > 5)
            sample = {"t_s": round(now - t_start, 1), "rss_mib": round(_rss_mib(worker.pid), 1),
                      "cpu_percent": round((cpu - cpu_prev) / (now - t_prev) * 100, 1),
                      "lag_messages": lag,
                      "events_per_s": round((sent_now - sent_prev) / (now - t_prev)),
                      "probes_seen": len(lat), "probes_over_5s_unseen": pending,
                      "p50_ms": round(statistics.median(lat), 1) if lat else None,
                      "p99_ms": round(percentile(lat, 99), 1) if lat else None,
                      "latencies_ms": [round(x, 1) for x in lat]}
            samples.append(sample)
            if on_sample is not None:
                on_sample(sample)
            cpu_prev, t_prev, sent_prev = cpu, now, sent_now
            if now - t_start >= seconds:
                return

    try:
        worker.wait_ready(60)
        if preload is not None:
            preload(f"{prefix}gate.events", url)
        thread = threading.Thread(target=poller, daemon=True)
        thread.start()
        cpu0, t0, own0 = proc_usage(worker.pid)["cpu_s"], time.monotonic(), os.times()
        sampling = threading.Thread(target=sampler, args=(t0,), daemon=True)
        if sample_every > 0:
            sampling.start()
        sent = asyncio.run(load())
        own1, wall = os.times(), time.monotonic() - t0
        rss_end = round(_rss_mib(worker.pid), 1)
        worker_cpu = (proc_usage(worker.pid)["cpu_s"] - cpu0) / wall
        load_cpu = (own1.user + own1.system - own0.user - own0.system) / wall
        deadline = time.monotonic() + 30
        while len(seen_at) < len(sent_at) and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        thread.join(5)
        if sample_every > 0:
            sampling.join(15)
    finally:
        stop.set()
        worker.stop()
    lat = [(seen_at[k] - sent_at[k]) * 1000 for k in sorted(sent_at) if k in seen_at]
    if not lat:
        raise RuntimeError("no probe became visible")
    ack = [(acked_at[k] - sent_at[k]) * 1000 for k in sent_at if k in acked_at]
    third = max(1, len(lat) // 3)
    return {"background_events": sent, "rate": rate, "probes": len(sent_at),
            "probes_seen": len(lat), "p50_ms": round(statistics.median(lat), 1),
            "p99_ms": round(percentile(lat, 99), 1), "max_ms": round(max(lat), 1),
            "via": via,
            # produced -> acknowledged by the broker (producer + broker side of the latency)
            "ack_p50_ms": round(statistics.median(ack), 1) if ack else None,
            "ack_p99_ms": round(percentile(ack, 99), 1) if ack else None,
            # steady, or a backlog growing during the run?
            "p50_first_third_ms": round(statistics.median(lat[:third]), 1),
            "p50_last_third_ms": round(statistics.median(lat[-third:]), 1),
            "worker_cpu_percent": round(worker_cpu * 100, 1),
            "load_generator_cpu_percent": round(load_cpu * 100, 1),
            "rss_mib_end": rss_end, "samples": samples}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=int, default=2000, help="background events/s")
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--via", choices=("metrics", "api"), default="metrics",
                   help="what the poller reads: /metrics (default) or /api/v1/gates/probe")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    broker = EmbeddedBroker(port=free_port())
    broker.start()
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="gatewatch-latency-") as tmp:
            for name, batch in (("gatewatch-stream", False), ("gatewatch", True)):
                print(f"[{name}] {args.rate} events/s for {args.seconds:.0f} s ...", flush=True)
                results[name] = measure(broker.bootstrap, Path(tmp), args.rate, args.seconds,
                                        batch, via=args.via)
                print(f"  {results[name]}", flush=True)
    finally:
        broker.stop()
    print(f"\n{'path':<18} {'rate/s':>7} {'probes':>7} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'p99 ÷ stream':>13}")
    base = results["gatewatch-stream"]["p99_ms"]
    for name, r in results.items():
        ratio = f"{r['p99_ms'] / base:.2f}x" if base else ""
        print(f"{name:<18} {r['rate']:>7} {r['probes_seen']:>7} {r['p50_ms']:>8.1f} "
              f"{r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} {ratio:>13}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The pure core alone: events/s through ``Processor.apply_batch``, no Kafka, one process.

What it measures
    The simulated Lạng Sơn traffic (``TrafficModel``: duplicates, late events, a few
    malformed records) is generated once as raw Kafka-like records, then applied in
    batches of ``--batch`` records through the same :class:`gatewatch.core.processor.Processor`
    the worker, the scenarios and the fault drills' ground truth drive; every
    ``--tick-every`` batches a ``tick`` (windows, alerts) runs too. Printed beside a
    baseline measured in the same run: decoding the same records with orjson alone (the
    floor of any JSON consumer), as a ratio. Also: the largest state write (bytes) and
    a weeks-long wait with a read every minute (the re-read chain), per-event cost; and
    a takeover of 200,000 waiting vehicles: the longest rebuild step between two yields
    to the event loop.

Run (from the repo root):
    .venv/bin/python bench/processor.py --events 300000 --json bench/results-processor.json
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gatewatch.agents.worker import REBUILD_CHUNK  # noqa: E402
from gatewatch.core.processor import Processor, SourceRecord  # noqa: E402
from gatewatch.gates import load_gates  # noqa: E402
from gatewatch.settings import Settings  # noqa: E402

#: the settings every Processor here runs with (``--reconcile`` changes it)
SETTINGS = Settings()
from gatewatch.streams.codec import encode_event  # noqa: E402
from gatewatch.streams.records import CrossingEvent  # noqa: E402
from gatewatch.tools.simulate import Faults, TrafficModel  # noqa: E402

START_MS = 1_790_000_000_000


def records(n: int) -> list[SourceRecord]:
    gates = load_gates(None)
    model = TrafficModel(gates, START_MS, rate=40, seed=5, faults=Faults(0.03, 0.02, 0.002),
                         initial_backlog=0.3)
    out: list[SourceRecord] = []
    t = START_MS
    while len(out) < n:
        t += 60_000
        out.extend(SourceRecord("gate.events", 0, len(out), t, m.key, m.value)
                   for m in model.advance(t))
    return out[:n]


def run(recs: list[SourceRecord], batch: int, tick_every: int) -> dict[str, float]:
    proc = Processor(load_gates(None), SETTINGS)
    now = recs[-1].timestamp_ms + 1000
    biggest = 0
    start = time.perf_counter()
    for i in range(0, len(recs), batch):
        fx = proc.apply_batch(recs[i:i + batch], now)
        for w in fx.writes:
            if w.value is not None and len(w.value) > biggest:
                biggest = len(w.value)
        if (i // batch) % tick_every == 0:
            proc.tick(now)
    seconds = time.perf_counter() - start
    return {"events_per_s": round(len(recs) / seconds), "seconds": round(seconds, 3),
            "max_state_bytes": biggest, "waiting": proc.vehicles_waiting()}


def decode_only(recs: list[SourceRecord]) -> dict[str, float]:
    start = time.perf_counter()
    for r in recs:
        try:
            orjson.loads(r.value or b"")
        except orjson.JSONDecodeError:
            pass
    seconds = time.perf_counter() - start
    return {"events_per_s": round(len(recs) / seconds), "seconds": round(seconds, 3)}


def rereads(minutes: int) -> dict[str, float]:
    """One truck read every minute for ``minutes``: per-event cost and state size."""
    proc = Processor(load_gates(None), SETTINGS)
    recs = [SourceRecord("gate.events", 0, i, START_MS, b"huu-nghi", encode_event(
        CrossingEvent(f"r{i}", "huu-nghi", "29C-12345", "queued", "export",
                      START_MS + i * 60_000))) for i in range(minutes)]
    biggest = 0
    start = time.perf_counter()
    for i in range(0, len(recs), 1000):
        fx = proc.apply_batch(recs[i:i + 1000], START_MS + minutes * 60_000)
        biggest = max([biggest, *(len(w.value or b"") for w in fx.writes)])
    seconds = time.perf_counter() - start
    return {"reads": minutes, "us_per_event": round(seconds / minutes * 1e6, 2),
            "max_state_bytes": biggest}


def rebuild_steps(vehicles: int) -> dict[str, float]:
    """A worker taking over ``vehicles`` waiting vehicles: the longest step of the
    rebuild (the event loop serves between steps) and the whole rebuild."""
    proc = Processor(load_gates(None), SETTINGS)
    recs = [SourceRecord("gate.events", 0, i, START_MS, b"huu-nghi", encode_event(
        CrossingEvent(f"q{i}", "huu-nghi", f"V{i}", "queued", "export", START_MS + i)))
        for i in range(vehicles)]
    fx = proc.apply_batch(recs, START_MS + vehicles)
    items = [(w.key, w.value, w.partition) for w in fx.writes]
    fresh = Processor(load_gates(None), SETTINGS)
    longest = 0.0
    gc.disable()  # as the worker does during a rebuild (agents/worker.py)
    start = last = time.perf_counter()
    try:
        for _ in fresh.rebuild_steps(items, chunk=REBUILD_CHUNK):
            now = time.perf_counter()
            longest, last = max(longest, now - last), now
        fresh.finish_rebuild(START_MS + vehicles)
        longest = max(longest, time.perf_counter() - last)
        gc.freeze()
    finally:
        gc.enable()
    return {"vehicles": vehicles, "longest_step_ms": round(longest * 1000, 1),
            "total_s": round(time.perf_counter() - start, 3)}


def collapse_reconcile(waiting: int, crossed: int = 3000, seed: int = 3) -> dict[str, float]:
    """One gate in a collapse: ``waiting`` trucks queued over three days, each re-read
    hourly (its arrival read and the latest re-read kept), and ``crossed`` trips of the
    last day served in no order (each re-read too): what one reconciliation costs there
    (the worker runs it at most every 5 s per gate), and the plate index's memory."""
    import random
    import tracemalloc

    rng = random.Random(seed)
    proc = Processor(load_gates(None), Settings(reconcile=True))
    span, now = 3 * 86_400_000, START_MS + 3 * 86_400_000
    recs: list[SourceRecord] = []

    def add(eid: str, plate: str, kind: str, t: int) -> None:
        recs.append(SourceRecord("gate.events", 0, len(recs), t, b"huu-nghi", encode_event(
            CrossingEvent(eid, "huu-nghi", plate, kind, "export", t))))

    for i in range(waiting):
        q = START_MS + rng.randrange(span - 3_600_000)
        plate = f"{rng.randint(11, 99)}C{rng.randrange(100_000):05d}"
        add(f"w{i}", plate, "queued", q)
        add(f"w{i}r", plate, "queued", now - rng.randrange(3_600_000))
    for i in range(crossed):
        q = START_MS + rng.randrange(span - 86_400_000)
        x = now - rng.randrange(86_400_000)
        plate = f"{rng.randint(11, 99)}D{rng.randrange(100_000):05d}"
        add(f"c{i}", plate, "queued", q)
        add(f"c{i}r", plate, "queued", x - rng.randrange(3_600_000))
        add(f"c{i}x", plate, "crossed", x)
    tracemalloc.start()
    proc.apply_batch(recs, now)
    book = proc.ledger.books["huu-nghi"]
    index_kib = 0.0
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    for stat in snapshot.statistics("filename"):
        if stat.traceback[0].filename.endswith("reconcile.py"):
            index_kib += stat.size / 1024
    times = []
    for _ in range(5):
        start = time.perf_counter()
        book.reconcile(relearn=True)
        times.append(time.perf_counter() - start)
    times.sort()
    return {"waiting": waiting, "crossed": crossed, "set_aside": len(book.set_aside),
            "reconcile_ms_median": round(times[2] * 1000, 1),
            "reconcile_ms_max": round(times[-1] * 1000, 1),
            "index_kib_per_vehicle": round(index_kib / len(book.vehicles), 2)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--tick-every", type=int, default=20)
    p.add_argument("--json", type=Path)
    p.add_argument("--reconcile", type=int, choices=(0, 1), default=1,
                   help="1: with reconciliation (the default); 0: the exact ledger alone")
    p.add_argument("--skip-extras", action="store_true",
                   help="only the throughput (no re-read chain, no rebuild)")
    args = p.parse_args()
    global SETTINGS
    SETTINGS = Settings(reconcile=bool(args.reconcile))
    print(f"generating {args.events:,} simulated records ...", flush=True)
    recs = records(args.events)
    base = decode_only(recs)
    core = run(recs, args.batch, args.tick_every)
    chain = rereads(17 * 24 * 60 if not args.skip_extras else 60)  # 17 days, read every min
    takeover = rebuild_steps(200_000 if not args.skip_extras else 1000)
    collapse = collapse_reconcile(5000 if not args.skip_extras else 200)
    ratio = round(core["events_per_s"] / base["events_per_s"], 3)
    print(f"\n{'what':<34} {'events/s':>12} {'seconds':>9}")
    print(f"{'orjson.loads only (baseline)':<34} {base['events_per_s']:>12,} "
          f"{base['seconds']:>9}")
    print(f"{'Processor.apply_batch + tick':<34} {core['events_per_s']:>12,} "
          f"{core['seconds']:>9}   {ratio}x the baseline")
    print(f"largest state write {core['max_state_bytes']} bytes; "
          f"{core['waiting']:,} vehicles waiting at the end")
    print(f"17 days of a read every minute ({chain['reads']:,} reads): "
          f"{chain['us_per_event']} µs per read, largest state write "
          f"{chain['max_state_bytes']} bytes")
    print(f"rebuild of {takeover['vehicles']:,} vehicles: {takeover['total_s']} s in all, "
          f"longest step without a yield {takeover['longest_step_ms']} ms")
    print(f"reconciliation of a gate with {collapse['waiting']:,} waiting (re-read hourly) "
          f"and {collapse['crossed']:,} crossed in no order: "
          f"{collapse['reconcile_ms_median']} ms (max {collapse['reconcile_ms_max']} ms), "
          f"plate index {collapse['index_kib_per_vehicle']} KiB per vehicle")
    if args.json:
        args.json.write_text(json.dumps({
            "events": args.events, "batch": args.batch, "machine": platform.machine(),
            "python": platform.python_version(), "baseline_decode_only": base,
            "processor": core, "ratio_to_baseline": ratio, "reread_chain": chain,
            "rebuild": takeover, "collapse_reconcile": collapse},
            indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Contender processes for bench/throughput.py (raw aiokafka, naive Faust, Quix Streams).

Run as a child process, one contender per process:

    python bench/_baselines.py {raw,faust,quix} --bootstrap HOST:PORT --topic T \
        --events N --partitions P --group G --out RESULT.json --workdir DIR

Each child counts consumed events. When the N-th event is consumed it measures
itself (first/last event wall time, user+sys CPU seconds and VmHWM from /proc)
and writes RESULT.json atomically; the parent polls for that file. While running
it rewrites RESULT.json.progress with the count every ~2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import orjson

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            kids.extend(int(p) for p in text.split())
    except OSError:
        pass
    return kids


def proc_usage(pid: int) -> dict[str, float]:
    """CPU s (user+sys, incl. reaped children) and peak RSS of pid and its live descendants."""
    cpu = user = system = 0.0
    hwm_kib = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        user += (utime + cutime) / CLK_TCK
        system += (stime + cstime) / CLK_TCK
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                hwm_kib += int(line.split()[1])
        stack.extend(_children(p))
    cpu = user + system
    return {"cpu_s": round(cpu, 2), "user_s": round(user, 2), "sys_s": round(system, 2),
            "peak_rss_mib": round(hwm_kib / 1024, 1)}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


class Meter:
    """Counts events; writes progress, and the result file once `target` events were seen."""

    def __init__(self, target: int, out: Path) -> None:
        self.target, self.out = target, out
        self.progress = out.with_name(out.name + ".progress")
        self.count = 0
        self.first = 0.0
        self.next_progress = 0.0
        self.done = False

    def add(self, n: int = 1) -> bool:
        """Record n consumed events; return True once the target is reached."""
        if self.count == 0:
            self.first = time.time()
        self.count += n
        if self.count >= self.target and not self.done:
            self.done = True
            last = time.time()
            _write_json(self.out, {"count": self.count, "first": self.first, "last": last,
                                   **proc_usage(os.getpid())})
        elif self.count % 1000 < n:  # cheap check roughly every 1000 events
            now = time.monotonic()
            if now >= self.next_progress:
                self.next_progress = now + 2
                _write_json(self.progress, {"count": self.count})
        return self.done


# --- a. raw aiokafka: the ceiling -------------------------------------------------------

def run_raw(args: argparse.Namespace, meter: Meter) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer

    async def main() -> None:
        consumer = AIOKafkaConsumer(
            args.topic, bootstrap_servers=args.bootstrap, group_id=args.group,
            auto_offset_reset="earliest", enable_auto_commit=False,
            session_timeout_ms=6000, heartbeat_interval_ms=1000,
            fetch_max_wait_ms=500, max_partition_fetch_bytes=4 * 1024 * 1024)
        counts: dict[str, int] = {}
        await consumer.start()
        try:
            while not meter.done:
                batches = await consumer.getmany(timeout_ms=500, max_records=10000)
                for records in batches.values():
                    for rec in records:
                        gate = orjson.loads(rec.value)["gate_id"]
                        counts[gate] = counts.get(gate, 0) + 1
                    meter.add(len(records))
        finally:
            await consumer.stop()
        print("counts per gate:", dict(sorted(counts.items())), flush=True)

    asyncio.run(main())


# --- b. naive Faust: one windowed-table update per event --------------------------------

def run_faust(args: argparse.Namespace, meter: Meter) -> None:
    import faust

    app = faust.App(
        args.group, broker=f"kafka://{args.bootstrap}", store="memory://",
        datadir=str(Path(args.workdir) / "faust-data"),
        web_enabled=False, web_bind="127.0.0.1", web_port=args.web_port,
        broker_session_timeout=6, broker_heartbeat_interval=1,
        topic_partitions=args.partitions, topic_replication_factor=1,
        consumer_auto_offset_reset="earliest")
    topic = app.topic(args.topic, key_serializer="raw", value_serializer="raw")
    table = app.Table("gate_counts", default=int, partitions=args.partitions
                      ).tumbling(300, expires=3600)

    @app.agent(topic)
    async def count(stream):  # type: ignore[no-untyped-def]
        async for value in stream:
            table[orjson.loads(value)["gate_id"]] += 1
            meter.add()  # the parent stops this worker once the result file appears

    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.execute_from_commandline()


# --- c. Quix Streams: tumbling 5-minute count per gate on event time ----------------------

def run_quix(args: argparse.Namespace, meter: Meter) -> None:
    from datetime import datetime, timedelta

    from quixstreams import Application

    app = Application(
        broker_address=args.bootstrap, consumer_group=args.group,
        auto_offset_reset="earliest", state_dir=str(Path(args.workdir) / "quix-state"),
        loglevel="WARNING",
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})

    def occurred_at_ms(value: Any, headers: Any, timestamp: int, timestamp_type: Any) -> int:
        return int(datetime.fromisoformat(value["occurred_at"]).timestamp() * 1000)

    topic = app.topic(args.topic, value_deserializer="json", timestamp_extractor=occurred_at_ms)
    sdf = app.dataframe(topic)

    def consumed(_value: Any) -> None:
        if meter.add():
            app.stop()

    sdf = sdf.update(consumed)  # before the window, so late (dropped) events still count
    sdf = sdf.tumbling_window(timedelta(minutes=5), grace_ms=timedelta(minutes=1)).count().current()
    app.run()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("contender", choices=["raw", "faust", "quix"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--group", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workdir", default=".")
    parser.add_argument("--web-port", type=int, default=0)
    args = parser.parse_args()
    meter = Meter(args.events, args.out)
    {"raw": run_raw, "faust": run_faust, "quix": run_quix}[args.contender](args, meter)


if __name__ == "__main__":
    main()

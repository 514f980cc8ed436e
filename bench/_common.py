"""Helpers shared by the load benchmarks: real worker processes, /metrics parsing, /proc.

A :class:`Worker` is the tests' ``tests.support.WorkerProc`` (one ``python -m gatewatch
worker`` child process on 127.0.0.1 and a free port, stopped by its pid only: SIGTERM,
then SIGKILL) run from its own working directory (Faust's data dir lands there), plus
RSS and CPU readings. Waiting is ``tests.support.poll``.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from _baselines import proc_usage  # noqa: E402

from tests.support import WorkerProc, free_port  # noqa: E402

__all__ = ["CpuMeter", "Worker", "gates_file_text", "loadavg", "machine", "metric_sum",
           "proc_usage", "series_count", "timed_get"]


def gates_file_text(ids: Iterable[str]) -> str:
    """A gate configuration (version 1) with yards and thresholds too large to alert."""
    return "version: 1\ngates:\n" + "".join(
        f'  - id: {g}\n    name: "Cửa khẩu {g}"\n    name_en: "Gate {g}"\n'
        f"    yard_capacity: 10000000\n"
        f"    thresholds: {{warning: 5000000, critical: 9000000}}\n" for g in ids)


def metric_sum(body: str, name: str, labels: str = "") -> float:
    """Sum of the samples of metric `name` (exact name; optional label substring)."""
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "):
            if labels and labels not in line:
                continue
            total += float(line.rsplit(" ", 1)[1])
    return total


def series_count(body: str) -> int:
    """Number of samples (series) in a Prometheus text exposition."""
    return sum(1 for line in body.splitlines() if line and not line.startswith("#"))


def loadavg() -> float:
    """The 1-minute load average."""
    return float(Path("/proc/loadavg").read_text().split()[0])


CLK_TCK = os.sysconf("SC_CLK_TCK")


def _machine_cpu_s() -> tuple[float, float, float]:
    """CPU seconds since boot (all CPUs) from /proc/stat: (tasks: user+nice+system,
    irq+softirq: e.g. loopback networking, steal: taken by the hypervisor)."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (v[0] + v[1] + v[2]) / CLK_TCK, (v[5] + v[6]) / CLK_TCK, v[7] / CLK_TCK


def _own_cpu_s(live_pids: Iterable[int]) -> float:
    """CPU seconds of this process, its reaped children, and the live `live_pids`."""
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system
    for pid in live_pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        own += sum(int(x) for x in fields[11:15]) / CLK_TCK
    return own


class CpuMeter:
    """Machine CPU use over an interval: this benchmark's processes, other processes
    ("others": other people's work), interrupts (irq+softirq, much of it this benchmark's
    loopback traffic) and steal (the hypervisor), in % of one CPU (2 CPUs = 200 %).
    `live_pids` returns the pids of children running at either end (the broker);
    children stopped in between are counted once reaped."""

    def __init__(self, live_pids: Callable[[], Iterable[int]]) -> None:
        self.live_pids = live_pids
        self.t0 = time.monotonic()
        self.machine0 = _machine_cpu_s()
        self.own0 = _own_cpu_s(live_pids())

    def read(self) -> dict[str, float]:
        wall = max(time.monotonic() - self.t0, 1e-9)
        tasks, irq, steal = (b - a for a, b in zip(self.machine0, _machine_cpu_s(),
                                                   strict=True))
        own = _own_cpu_s(self.live_pids()) - self.own0

        def pct(x: float) -> float:
            return round(max(0.0, x) / wall * 100, 1)

        return {"bench_cpu_percent": pct(own), "others_cpu_percent": pct(tasks - own),
                "irq_cpu_percent": pct(irq), "steal_cpu_percent": pct(steal),
                "machine_cpu_percent": pct(tasks + irq)}


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "python": platform.python_version(),
            "kernel": platform.release()}


def timed_get(url: str, timeout: float = 10) -> tuple[float, bytes]:
    """(seconds, body) of one GET."""
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback
        body = r.read()
    return time.perf_counter() - t0, body


@dataclass(eq=False)
class Worker(WorkerProc):
    """One real `gatewatch worker` process (tests.support.WorkerProc) with the
    benchmarks' readings: its RSS and CPU from /proc."""

    name: str = "worker"

    @classmethod
    def for_run(cls, name: str, workdir: Path, bootstrap: str, prefix: str, app_id: str,
                gates_file: Path, **extra: str) -> Worker:
        """A worker run from its own `workdir` (Faust's data dir lands there), logging to
        `workdir/<name>.log`, stopped within 8 s."""
        workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, GATEWATCH_KAFKA_BOOTSTRAP=bootstrap,
                   GATEWATCH_TOPIC_PREFIX=prefix, GATEWATCH_APP_ID=app_id,
                   GATEWATCH_GATES=str(gates_file), **extra)
        return cls(env=env, port=free_port(), log_path=workdir / f"{name}.log", cwd=workdir,
                   stop_grace=8.0, name=name)

    def rss_mib(self) -> float:
        """VmRSS of the worker process, MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def stable_rss_mib(self, timeout: float = 30, tolerance: float = 1.0) -> float:
        """RSS once three samples 0.5 s apart are within `tolerance` MiB (or at the deadline:
        the median of the last three)."""
        samples: list[float] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            samples.append(self.rss_mib())
            last = samples[-3:]
            if len(last) == 3 and max(last) - min(last) <= tolerance:
                break
            time.sleep(0.5)
        return round(statistics.median(samples[-3:]), 1)

    def usage(self) -> dict[str, float]:
        return proc_usage(self.pid)

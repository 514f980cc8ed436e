"""Helpers shared by the load benchmarks: real worker processes, /metrics parsing, /proc.

A :class:`Worker` is one ``python -m gatewatch worker`` child process on 127.0.0.1 and a
free port, with its own working directory (Faust's data dir lands there) and log file.
It is stopped by its pid only (SIGTERM, then SIGKILL), see ``throughput.stop_process``.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from _baselines import proc_usage  # noqa: E402
from throughput import free_port, stop_process, tail  # noqa: E402

__all__ = ["CpuMeter", "Worker", "gates_file_text", "loadavg", "machine", "metric_sum",
           "proc_usage", "series_count", "timed_get", "wait_until"]


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


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               alive: Callable[[], None] | None = None, interval: float = 0.1,
               progress: Callable[[], str] | None = None, every: float = 10.0) -> None:
    """Poll `check` until true or the deadline; `alive` raises if a process died.
    Prints `progress()` every `every` seconds."""
    start = time.monotonic()
    deadline, next_report = start + timeout, start + every
    while not check():
        if alive is not None:
            alive()
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s"
                               + (f" ({progress()})" if progress else ""))
        if progress is not None and now >= next_report:
            next_report += every
            print(f"  ... {now - start:.0f} s: {progress()}", flush=True)
        time.sleep(interval)


def timed_get(url: str, timeout: float = 10) -> tuple[float, bytes]:
    """(seconds, body) of one GET."""
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback
        body = r.read()
    return time.perf_counter() - t0, body


class Worker:
    """One real `gatewatch worker` process on 127.0.0.1 and a free port."""

    def __init__(self, name: str, workdir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.workdir = workdir
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def for_run(cls, name: str, workdir: Path, bootstrap: str, prefix: str, app_id: str,
                gates_file: Path, **extra: str) -> Worker:
        workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, GATEWATCH_KAFKA_BOOTSTRAP=bootstrap,
                   GATEWATCH_TOPIC_PREFIX=prefix, GATEWATCH_APP_ID=app_id,
                   GATEWATCH_GATES=str(gates_file), **extra)
        return cls(name, workdir, env)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Worker:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gatewatch", "worker", "--web-port", str(self.port)],
                cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise RuntimeError(f"worker {self.name} exited ({code}); log tail:\n"
                               + tail(self.log_path))

    def get(self, path: str, timeout: float = 5) -> bytes | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as r:  # noqa: S310
                return bytes(r.read())
        except OSError:
            return None

    def metrics(self, timeout: float = 5) -> str | None:
        body = self.get("/metrics", timeout)
        return None if body is None else body.decode()

    def ready(self) -> bool:
        return self.get("/readyz", 2) is not None  # 503 raises (an OSError): not ready

    def wait_ready(self, timeout: float = 90) -> None:
        wait_until(self.ready, timeout, f"worker {self.name} ready", self.check_alive)

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

"""Test-session fixtures: the embedded broker (or GATEWATCH_TEST_BOOTSTRAP) and workers.

Integration tests talk to a real Kafka-compatible broker and real `gatewatch worker`
processes; each test uses its own uuid-named topics and consumer group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "test-output"


def poll(check: Callable[[], object], timeout: float, what: str, interval: float = 0.1) -> object:
    """Call ``check`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    """A Kafka bootstrap address: GATEWATCH_TEST_BOOTSTRAP, or an embedded broker."""
    external = os.environ.get("GATEWATCH_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    from gatewatch.tools.broker import EmbeddedBroker, free_port

    OUTPUT.mkdir(exist_ok=True)
    broker = EmbeddedBroker(port=free_port(), log_path=OUTPUT / "broker.log")
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@dataclass
class WorkerProc:
    """A `gatewatch worker` child process."""

    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: object = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WorkerProc:
        self._log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gatewatch", "worker", "--web-port", str(self.port)],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT,
            start_new_session=True)
        return self

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=3) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}; "
                                     f"see {self.log_path}")
            return self.get("/readyz")[0] == 200
        poll(ready, timeout, f"worker ready on {self.url}/readyz")

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        from prometheus_client.parser import text_string_to_metric_families

        status, body = self.get("/metrics")
        if status != 200:
            return {}
        out = {}
        for fam in text_string_to_metric_families(body.decode()):
            for s in fam.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
        return out

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()  # type: ignore[attr-defined]
            self._log = None


@pytest.fixture
def test_id(request: pytest.FixtureRequest) -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def worker_factory(bootstrap: str, test_id: str, tmp_path: Path
                   ) -> Iterator[Callable[..., WorkerProc]]:
    """Builds workers sharing this test's topics and consumer group."""
    from gatewatch.tools.broker import free_port

    started: list[WorkerProc] = []
    OUTPUT.mkdir(exist_ok=True)

    def make(**extra_env: str) -> WorkerProc:
        env = dict(os.environ, GATEWATCH_KAFKA_BOOTSTRAP=bootstrap,
                   GATEWATCH_TOPIC_PREFIX=f"{test_id}-", GATEWATCH_APP_ID=f"{test_id}-app",
                   GATEWATCH_LOG_LEVEL="info", PYTHONUNBUFFERED="1")
        env.update(extra_env)
        w = WorkerProc(env=env, port=free_port(),
                       log_path=OUTPUT / f"{test_id}-worker{len(started)}.log")
        started.append(w)
        return w.start()

    yield make
    for w in started:
        w.stop()


_FIGURES: list[str] = []


def report_figure(text: str) -> None:
    """A measured figure (e.g. takeover seconds) shown at the end of the test run, also
    under ``pytest -q``; it is printed right away too (visible with ``-s``)."""
    print(text)
    _FIGURES.append(text)


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    if _FIGURES:
        terminalreporter.section("gatewatch drill figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """With GATEWATCH_REQUIRE_ALL=1 (set by .ci/run) a skipped test fails instead:
    a missing binary must not pass CI silently."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("GATEWATCH_REQUIRE_ALL") == "1" and report.skipped \
            and not hasattr(report, "wasxfail"):  # a documented known failure stays xfail
        report.outcome = "failed"
        report.longrepr = f"skipped under GATEWATCH_REQUIRE_ALL=1: {report.longrepr}"

"""Test-session fixtures: the embedded broker (or GATEWATCH_TEST_BOOTSTRAP) and workers.

Integration tests talk to a real Kafka-compatible broker and real `gatewatch worker`
processes; each test uses its own uuid-named topics and consumer group. Helpers live in
``tests/support.py``; this file holds fixtures and pytest hooks only.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import FIGURES, OUTPUT, PostgresServer, WorkerProc, free_port


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM (a CI runner cancelling the job, `kill PID`) stops the run like Ctrl-C, so
    that fixture teardown runs: the brokers, workers, Prometheus and Alertmanager the
    tests started run in sessions of their own and would otherwise be left running."""
    signal.signal(signal.SIGTERM, _interrupt)


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    """A Kafka bootstrap address: GATEWATCH_TEST_BOOTSTRAP, or an embedded broker."""
    external = os.environ.get("GATEWATCH_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    from gatewatch.tools.broker import EmbeddedBroker

    OUTPUT.mkdir(exist_ok=True)
    broker = EmbeddedBroker(port=free_port(), log_path=OUTPUT / "broker.log")
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session (Debian's ``postgresql`` package); the test
    skips when its binaries are missing (a failure under GATEWATCH_REQUIRE_ALL=1)."""
    bin_dir = PostgresServer.find_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries missing (/usr/lib/postgresql/*/bin): "
                    "apt-get install postgresql")
    server = PostgresServer(bin_dir)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def test_id(request: pytest.FixtureRequest) -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def worker_factory(bootstrap: str, test_id: str, tmp_path: Path
                   ) -> Iterator[Callable[..., WorkerProc]]:
    """Builds workers sharing this test's topics and consumer group."""
    started: list[WorkerProc] = []
    OUTPUT.mkdir(exist_ok=True)

    def make(**extra_env: str) -> WorkerProc:
        env = dict(os.environ, GATEWATCH_KAFKA_BOOTSTRAP=bootstrap,
                   GATEWATCH_TOPIC_PREFIX=f"{test_id}-", GATEWATCH_APP_ID=f"{test_id}-app",
                   GATEWATCH_LOG_LEVEL="info", PYTHONUNBUFFERED="1")
        env.update(extra_env)
        w = WorkerProc(env=env, port=free_port(),
                       log_path=OUTPUT / f"{test_id}-worker{len(started)}.log",
                       cwd=tmp_path)  # Faust's data dir lands here, not in the checkout
        started.append(w)
        return w.start()

    yield make
    for w in started:
        w.stop()


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    """Figures the tests reported with ``tests.support.report_figure``."""
    if FIGURES:
        terminalreporter.section("gatewatch drill figures")
        for line in FIGURES:
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

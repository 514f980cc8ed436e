"""The one test-support module, shared by the tests and the benchmarks.

Tests import it as ``tests.support``; the benchmarks (``python bench/x.py`` from the repo
root) put the repository root on ``sys.path`` and import it the same way. It holds no
pytest fixtures (those stay in ``tests/conftest.py``) and imports pytest only inside the
helpers that skip a test.

- processes: :func:`poll` (a deadline, never a sleep), :func:`free_port`,
  :func:`stop_process`, :func:`tail`, :class:`WorkerProc` (a ``gatewatch worker``),
  :class:`Service` (any other binary), :func:`binary`, :func:`wait_http_ready`,
  :func:`start_prometheus`, :func:`chromium`
- Kafka: :func:`produce`, :class:`Producer` (kept open), :class:`TopicTail` (follows a
  topic), :func:`read_all`, :func:`read_topic`, :func:`committed_offsets`,
  :func:`committed_total`
- HTTP: :class:`WebhookReceiver`
- PostgreSQL: :class:`PostgresServer` (Debian's binaries, a temporary cluster on loopback)
- data: :data:`T0`, :data:`MIN`, :data:`GATES_YAML`, :func:`gates`, :func:`ledger`,
  :func:`gates_yaml`, :func:`ev` (the one event builder), :func:`event_json`, :func:`message`
- :func:`report_figure`: a measured figure shown at the end of the test run
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from gatewatch.core.ledger import Ledger
from gatewatch.core.processor import Processor
from gatewatch.gates import GateSet, parse_gates
from gatewatch.settings import Settings
from gatewatch.streams.codec import format_ms
from gatewatch.streams.records import CrossingEvent
from gatewatch.tools.broker import free_port

__all__ = [
    "BIN", "CHROMIUM_ARGS", "FIGURES", "GATES_YAML", "MIN", "ONE_GATE_YAML", "OUTPUT", "ROOT",
    "T0",
    "PollTimeout", "PostgresServer", "Producer", "Service", "StandInForecast", "StandInHour",
    "TopicTail", "WebhookReceiver",
    "WorkerProc",
    "binary", "chromium",
    "committed_offsets", "committed_total", "ev", "event_json", "free_port", "gates",
    "gates_yaml",
    "ledger", "message", "poll", "processor", "produce", "read_all", "read_topic", "report_figure",
    "start_prometheus", "stop_process", "tail", "wait_http_ready",
]

ROOT = Path(__file__).resolve().parent.parent
#: logs of the processes the tests start, screenshots
OUTPUT = ROOT / "test-output"
#: Prometheus and Alertmanager unpacked by `make tools`
BIN = ROOT / "tools" / "root" / "usr" / "bin"


# --- waiting and processes ------------------------------------------------------------------

class PollTimeout(AssertionError, TimeoutError):
    """:func:`poll` ran out of time: a failed assertion in a test, a TimeoutError for the
    benchmarks that catch one."""


def poll(check: Callable[[], object], timeout: float, what: str, interval: float = 0.1, *,
         alive: Callable[[], None] | None = None, progress: Callable[[], str] | None = None,
         every: float = 10.0) -> Any:
    """Call ``check`` until it returns something truthy and return that; raise
    :class:`PollTimeout` naming ``what`` at the deadline. ``alive`` is called between
    tries and raises when a process the wait depends on has died; ``progress()`` is
    printed every ``every`` seconds and added to the timeout message."""
    start = time.monotonic()
    deadline, next_report = start + timeout, start + every
    last: object = None
    while True:
        last = check()
        if last:
            return last
        if alive is not None:
            alive()
        now = time.monotonic()
        if now >= deadline:
            raise PollTimeout(f"timed out after {timeout:.0f} s waiting for {what} (last: "
                              f"{last!r}" + (f"; {progress()}" if progress else "") + ")")
        if progress is not None and now >= next_report:
            next_report += every
            print(f"  ... {now - start:.0f} s: {progress()}", flush=True)
        time.sleep(interval)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 8.0) -> None:
    """SIGTERM by pid, SIGKILL after ``grace`` seconds; always reaps."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
    proc.wait()


def tail(log: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a log file (for error messages)."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass(eq=False)
class WorkerProc:
    """A ``gatewatch worker`` child process on 127.0.0.1:``port``, its own session, its
    output appended to ``log_path``; run from ``cwd`` (Faust's data dir lands there)."""

    env: dict[str, str]
    port: int
    log_path: Path
    cwd: Path = ROOT
    #: seconds between SIGTERM and SIGKILL in :meth:`stop`
    stop_grace: float = 30.0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self) -> WorkerProc:
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gatewatch", "worker", "--web-port", str(self.port)],
                env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def get(self, path: str, timeout: float = 3) -> tuple[int, bytes]:
        """(status, body); status 0 when the worker does not answer."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    def check_alive(self) -> None:
        """Raise if the process has exited (with the tail of its log)."""
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise AssertionError(f"worker exited with {code}; {self.log_path} ends:\n"
                                 + tail(self.log_path))

    def ready(self) -> bool:
        return self.get("/readyz", 2)[0] == 200

    def wait_ready(self, timeout: float = 60) -> None:
        poll(self.ready, timeout, f"worker ready on {self.url}/readyz",
             alive=self.check_alive)

    def metrics_text(self, timeout: float = 5) -> str | None:
        """The /metrics exposition, or None when it does not answer 200."""
        status, body = self.get("/metrics", timeout)
        return body.decode() if status == 200 else None

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample: (name, labels) -> value; empty when /metrics does not answer."""
        from prometheus_client.parser import text_string_to_metric_families

        text = self.metrics_text(3)
        if text is None:
            return {}
        out = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
        return out

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, self.stop_grace)


class Service:
    """Any other child process (``gatewatch notify``, Prometheus, ...), output to ``log``."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                         cwd=ROOT, start_new_session=True)

    def stop(self) -> None:
        stop_process(self.proc, grace=15)


def binary(name: str) -> Path:
    """A binary unpacked by `make tools`; skips the test when it is missing."""
    path = BIN / name
    if not path.exists():
        import pytest

        pytest.skip(f"{path} missing: run `make tools`")
    return path


def wait_http_ready(url: str, timeout: float, what: str) -> None:
    """Poll ``url``/-/ready (Prometheus and Alertmanager) until it answers 200."""
    def ready() -> bool:
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False
    poll(ready, timeout, what, interval=0.2)


def start_prometheus(tmp_path: Path, test_id: str, cfg: dict[str, Any]
                     ) -> tuple[Service, str]:
    """Real Prometheus (Debian's) on a loopback port with ``cfg`` and its own data dir,
    returned once it reports ready."""
    import yaml

    exe = binary("prometheus")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    port = free_port()
    OUTPUT.mkdir(exist_ok=True)
    prom = Service([str(exe), f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}"],
                   OUTPUT / f"{test_id}-prometheus.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ready(url, 60, "prometheus ready")
    except BaseException:
        prom.stop()
        raise
    return prom, url


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def chromium() -> str:
    """Debian's chromium for Playwright; skips the test when it is not installed."""
    import shutil

    path = shutil.which("chromium")
    if path is None:
        import pytest

        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return path


# --- Kafka ----------------------------------------------------------------------------------

def _run(coro_fn: Any) -> Any:
    """asyncio.run, in a worker thread when this thread already runs a loop (Playwright)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_fn())
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coro_fn())).result()


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    """Send (key, value) pairs in order and wait until all are acknowledged."""
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        await producer.start()
        try:
            for key, value in messages:
                await producer.send(topic, value, key=key)
            await producer.flush()
        finally:
            await producer.stop()
    _run(run)


class Producer:
    """A producer kept open across calls, on its own thread and event loop (for tests that
    send many small batches: :func:`produce` connects anew each time).
    :meth:`send` returns once every message is acknowledged; :attr:`sent` counts them."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.sent = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name=f"producer-{topic}")
        self.producer: Any = None

    def _call(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> Producer:
        from aiokafka import AIOKafkaProducer

        self.thread.start()

        async def start() -> Any:
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
            await producer.start()
            return producer
        self.producer = self._call(start())
        return self

    def send(self, messages: list[tuple[bytes | None, bytes]]) -> None:
        """Send (key, value) pairs in order; return when all are acknowledged."""
        if not messages:
            return

        async def run() -> None:
            futures = [await self.producer.send(self.topic, value, key=key)
                       for key, value in messages]
            await asyncio.gather(*futures)
        self._call(run())
        self.sent += len(messages)

    def __exit__(self, *exc: object) -> None:
        try:
            if self.producer is not None:
                self._call(self.producer.stop(), timeout=20)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


class TopicTail:
    """Follows ``topic`` from its beginning on a background thread (its own event loop and
    a group-less aiokafka consumer), handing each record to ``on_record`` on that thread.
    ``behind`` is how many records it has still to read by the fetch high watermark
    (None before every partition was fetched once); ``error`` what stopped it, if
    anything."""

    def __init__(self, bootstrap: str, topic: str, on_record: Callable[[Any], None]) -> None:
        self.bootstrap, self.topic, self.on_record = bootstrap, topic, on_record
        self.behind: int | None = None
        self.records = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"tail-{topic}")

    def __enter__(self) -> TopicTail:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)

    def _run(self) -> None:
        try:
            asyncio.run(self._follow())
        except BaseException as exc:  # noqa: BLE001 - reported through .error
            self.error = exc

    async def _follow(self) -> None:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(self.topic, bootstrap_servers=self.bootstrap,
                                    group_id=None, auto_offset_reset="earliest",
                                    enable_auto_commit=False, fetch_max_wait_ms=100)
        await consumer.start()
        try:
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for rec in records:
                        self.on_record(rec)
                        self.records += 1
                assigned = consumer.assignment()
                behind: int | None = 0 if assigned else None
                for tp in assigned:
                    hw = consumer.highwater(tp)
                    if hw is None or behind is None:
                        behind = None
                        continue
                    behind += max(0, hw - await consumer.position(tp))
                self.behind = behind
        finally:
            await consumer.stop()


def read_all(bootstrap: str, topic: str, expect: int, timeout: float = 20) -> list[Any]:
    """Read a topic from the beginning until ``expect`` records or the deadline."""
    from aiokafka import AIOKafkaConsumer

    async def run() -> list[Any]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        out: list[Any] = []
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while len(out) < expect and loop.time() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    out.extend(records)
        finally:
            await consumer.stop()
        return out
    return _run(run)


def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record of ``topic``, from the beginning to its (fetch-confirmed) end."""
    from aiokafka import AIOKafkaConsumer

    from gatewatch.agents.compat import read_to_end

    def factory() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, fetch_max_wait_ms=100)

    async def run() -> list[Any]:
        return await read_to_end(factory, topic, timeout_seconds=30)
    return _run(run)


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    """The group's committed offset per partition of ``topic`` (None: nothing committed).

    kafka-python's consumer, because its public ``partitions_for_topic`` fetches the
    metadata of a topic it does not know yet (aiokafka's only reads its cache). It never
    subscribes, so it does not join the group."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        return {p: consumer.committed(TopicPartition(topic, p)) for p in sorted(parts)}
    finally:
        consumer.close(autocommit=False)


def committed_total(bootstrap: str, group: str, topic: str) -> int:
    """Sum over the topic's partitions of the group's committed offsets (0 if none)."""
    return sum(o or 0 for o in committed_offsets(bootstrap, group, topic).values())


# --- HTTP -----------------------------------------------------------------------------------

class WebhookReceiver:
    """A real webhook receiver (stdlib server on a loopback port) collecting the JSON
    bodies POSTed to it; ``fail_first`` answers 503 that many times first. ``answer``,
    if given, decides every other answer from the JSON body: a status, or (status,
    headers); otherwise ``status`` is answered (200; a test may set e.g. 400 for a while).
    ``bodies`` holds the bodies answered 2xx, ``requests`` every POST as (monotonic time,
    body, status), and ``log`` every POST as (Unix time, status, body)."""

    def __init__(self, port: int = 0, fail_first: int = 0,
                 answer: Callable[[Any], int | tuple[int, dict[str, str]]] | None = None
                 ) -> None:
        self.bodies: list[Any] = []
        self.requests: list[tuple[float, Any, int]] = []
        self.log: list[tuple[float, int, Any]] = []
        self.fail_first = fail_first
        self.answer = answer
        self.status = 200
        self.attempts = 0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                headers: dict[str, str] = {}
                with lock:
                    outer.attempts += 1
                    try:
                        doc = orjson.loads(body)
                    except orjson.JSONDecodeError:
                        doc = body
                    if outer.attempts <= outer.fail_first:
                        status = 503
                    elif outer.answer is not None:
                        got = outer.answer(doc)
                        status, headers = got if isinstance(got, tuple) else (got, {})
                    else:
                        status = outer.status
                    outer.requests.append((time.monotonic(), doc, status))
                    outer.log.append((time.time(), status, doc))
                    if 200 <= status < 300:
                        outer.bodies.append(doc)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- PostgreSQL -----------------------------------------------------------------------------

class PostgresServer:
    """A real PostgreSQL server from Debian's package (``/usr/lib/postgresql/*/bin``): a
    cluster ``initdb``-ed into a temporary folder, ``postgres`` on a free loopback port with
    its unix socket in that folder, trust authentication for the ``gatewatch`` role. As
    root it runs as the ``postgres`` system user (PostgreSQL refuses root). Stopped by its
    pid (fast shutdown), the folder removed. :meth:`find_bin` is ``None`` when no server
    binaries are installed (``apt-get install postgresql``)."""

    def __init__(self, bin_dir: Path) -> None:
        import tempfile

        self.bin_dir = bin_dir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="gw-pg-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.user: str | None = None
        if os.geteuid() == 0:
            import pwd

            try:
                pwd.getpwnam("postgres")
            except KeyError as exc:
                raise RuntimeError("running as root needs the 'postgres' system user "
                                   "(Debian's postgresql package creates it)") from exc
            self.user = "postgres"
            os.chown(self.dir, pwd.getpwnam("postgres").pw_uid, -1)

    @staticmethod
    def find_bin() -> Path | None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                       key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                       else 0)
        return found[-1].parent if found else None

    def _run(self, args: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(args, user=self.user, cwd=self.dir, start_new_session=True,
                                stdin=subprocess.DEVNULL, **kw)

    def start(self, timeout: float = 30) -> PostgresServer:
        data, log = self.dir / "data", self.dir / "postgres.log"
        init = self._run([str(self.bin_dir / "initdb"), "-D", str(data), "-U", "gatewatch",
                          "--auth=trust", "-E", "UTF8", "--no-sync"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out, _ = init.communicate(timeout=120)
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed ({init.returncode}):\n{out.decode()[-2000:]}")
        with open(log, "ab") as f:
            os.chown(log, os.stat(self.dir).st_uid, -1)
            self.proc = self._run(
                [str(self.bin_dir / "postgres"), "-D", str(data), "-p", str(self.port),
                 "-k", str(self.dir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                 "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                stdout=f, stderr=subprocess.STDOUT)

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"postgres exited with {self.proc.returncode}:\n"
                                     + tail(log))
            import socket

            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
            except OSError:
                return False
            return self.exec("SELECT 1") is not None
        poll(up, timeout, f"postgres on 127.0.0.1:{self.port}", interval=0.1)
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://gatewatch@127.0.0.1:{self.port}/{database}"

    def exec(self, sql: str, database: str = "postgres") -> Any:
        """Run one statement (autocommit); the first row, or None when it fails to connect."""
        import psycopg

        try:
            with psycopg.connect(host="127.0.0.1", port=self.port, user="gatewatch",
                                 dbname=database, autocommit=True, connect_timeout=2) as conn:
                cur = conn.execute(sql)  # type: ignore[arg-type]
                return cur.fetchone() if cur.description else ()
        except psycopg.OperationalError:
            return None

    def create_database(self, name: str) -> str:
        """A new empty database ``name``; its URL."""
        assert self.exec(f'CREATE DATABASE "{name}"') is not None
        return self.url(name)

    def stop(self) -> None:
        import shutil

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- data -----------------------------------------------------------------------------------

T0 = 1_638_316_800_000  # 2021-12-01T00:00:00Z
MIN = 60_000

_ids = itertools.count()

GATES_YAML = """
version: 1
gates:
  - id: huu-nghi
    name: "Cửa khẩu Quốc tế Hữu Nghị"
    yard_capacity: 100
    thresholds: {warning: 10, critical: 20}
  - id: tan-thanh
    name: "Cửa khẩu Tân Thanh"
    yard_capacity: 100
    thresholds: {warning: 10, critical: 20}
"""


#: (Vietnamese name, English name) of the gates the integration tests configure
GATE_NAMES = {"huu-nghi": ("Cửa khẩu Quốc tế Hữu Nghị", "Huu Nghi International Border Gate"),
              "tan-thanh": ("Cửa khẩu Tân Thanh", "Tan Thanh Border Gate")}


def gates_yaml(thresholds: dict[str, str]) -> str:
    """A gate configuration (version 1): each gate of ``thresholds`` (gate id -> YAML flow
    mapping, e.g. ``"{warning: 5, critical: 10}"``) with its real names and a yard of 100."""
    return "\nversion: 1\ngates:\n" + "".join(
        f'  - id: {gate}\n    name: "{GATE_NAMES[gate][0]}"\n'
        f'    name_en: "{GATE_NAMES[gate][1]}"\n    yard_capacity: 100\n'
        f"    thresholds: {flow}\n" for gate, flow in thresholds.items())


#: one gate, Hữu Nghị, in the smallest valid configuration (tests add keys to its end)
ONE_GATE_YAML = """
version: 1
gates:
  - id: huu-nghi
    name: "Hữu Nghị"
    yard_capacity: 100
    thresholds: {warning: 10, critical: 20}
"""


@dataclass(frozen=True)
class StandInHour:
    """Stand-in for gatewatch.core.forecast.HourForecast (the members advice reads)."""

    start_ms: int
    backlog: float
    wait_seconds: float | None
    p_full: float = 0.0


@dataclass(frozen=True)
class StandInForecast:
    """Stand-in for gatewatch.core.forecast.GateForecast (the members advice reads)."""

    backlog_now: int
    hours: tuple[StandInHour, ...]
    arrivals_per_day: float
    clearances_per_day: float
    made_at_ms: int = 0
    direction: str | None = "export"

    def at(self, t_ms: int) -> StandInHour | None:
        return next((h for h in self.hours if h.start_ms <= t_ms < h.start_ms + 3_600_000),
                    None)


def gates() -> GateSet:
    return parse_gates(GATES_YAML, "test-gates.yaml")


def ledger(window_seconds: int = 300, grace_seconds: int = 60, idle_seconds: int = 30,
           no_data_seconds: int = 900, *, reconciling: bool = False,
           min_overtakes: int = 50) -> Ledger:
    return Ledger(gates(), window_seconds, grace_seconds, idle_seconds, no_data_seconds,
                  None, reconciling, min_overtakes)


def ev(vehicle: str, etype: str, t_ms: int, gate: str = "huu-nghi", direction: str = "export",
       event_id: str | None = None, cargo: str | None = "general") -> CrossingEvent:
    """The one event builder: a contract-v1 event (explicit time, no clock); a fresh
    ``e<n>`` id unless given; ``cargo=None`` sends none. :func:`message` makes it a Kafka
    message."""
    return CrossingEvent(event_id or f"e{next(_ids)}", gate, vehicle, etype, direction, t_ms,
                         cargo)


def event_json(e: CrossingEvent) -> dict[str, str]:
    """The contract-v1 JSON document of ``e`` (written here, not by the codec under test)."""
    doc = {"event_id": e.event_id, "gate_id": e.gate_id, "vehicle_id": e.vehicle_id,
           "type": e.type, "direction": e.direction, "occurred_at": format_ms(e.occurred_at_ms)}
    if e.cargo:
        doc["cargo"] = e.cargo
    return doc


def message(e: CrossingEvent) -> tuple[bytes, bytes]:
    """``e`` as a (key, value) message for ``gate.events``, keyed by its gate."""
    return e.gate_id.encode(), orjson.dumps(event_json(e))


# --- CAP --------------------------------------------------------------------------------

#: the official OASIS CAP 1.2 schema (vendored; see tests/data/CAP-v1.2.NOTICE)
CAP_XSD = Path(__file__).resolve().parent / "data" / "CAP-v1.2.xsd"


def cap_errors(document: bytes) -> list[str]:
    """What the OASIS CAP 1.2 XML schema finds wrong with ``document`` (empty: valid)."""
    from lxml import etree

    schema = _CAP_SCHEMA.get("schema")
    if schema is None:
        schema = _CAP_SCHEMA["schema"] = etree.XMLSchema(etree.parse(str(CAP_XSD)))
    doc = etree.fromstring(document)
    return [] if schema.validate(doc) else [str(e) for e in schema.error_log]


_CAP_SCHEMA: dict[str, Any] = {}


# --- figures --------------------------------------------------------------------------------

#: figures reported by the tests, printed by conftest's terminal summary
FIGURES: list[str] = []


def report_figure(text: str) -> None:
    """A measured figure (e.g. takeover seconds) shown at the end of the test run, also
    under ``pytest -q``; it is printed right away too (visible with ``-s``)."""
    print(text)
    FIGURES.append(text)


def processor(window_seconds: int = 300, grace_seconds: int = 60, idle_seconds: int = 30,
              no_data_seconds: int = 900, **settings: Any) -> Processor:
    """A processor over the two test gates (settings given by field name)."""
    return Processor(gates(), Settings(window_seconds=window_seconds,
                                       grace_seconds=grace_seconds, idle_seconds=idle_seconds,
                                       no_data_seconds=no_data_seconds, **settings))

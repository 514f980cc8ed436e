"""Runtime settings, read once from an environment mapping.

Every setting has a ``GATEWATCH_*`` variable and a sensible default for the
one-laptop run (embedded broker on 127.0.0.1:9092). Tests build settings from a
plain dict: ``Settings.from_env({"GATEWATCH_TOPIC_PREFIX": "t-1234-"})``.

Secrets (the SASL password) are never part of ``repr()`` or log lines; they can be
given directly or as a file (``GATEWATCH_KAFKA_SASL_PASSWORD_FILE``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from gatewatch.errors import ConfigError

__all__ = ["SETTINGS_DOC", "Settings"]

_T = TypeVar("_T")

#: (variable, default, meaning): the configuration reference in the README is made from this.
SETTINGS_DOC: tuple[tuple[str, str, str], ...] = (
    ("GATEWATCH_KAFKA_BOOTSTRAP", "127.0.0.1:9092", "Kafka bootstrap servers, comma-separated"),
    ("GATEWATCH_GATES", "(bundled Lạng Sơn gates)", "path of the gate configuration YAML"),
    ("GATEWATCH_APP_ID", "gatewatch", "Faust app id = Kafka consumer group"),
    ("GATEWATCH_TOPIC_PREFIX", "", "prefix for every topic name (tests use a uuid)"),
    ("GATEWATCH_PARTITIONS", "4", "partitions for topics gatewatch creates"),
    ("GATEWATCH_REPLICATION", "1", "replication factor for topics gatewatch creates"),
    ("GATEWATCH_STANDBY_REPLICAS", "0",
     "standby copies of each state partition kept by other workers (Faust "
     "table_standby_replicas)"),
    ("GATEWATCH_WEB_HOST", "127.0.0.1", "address the worker's HTTP server binds"),
    ("GATEWATCH_WEB_PORT", "6066", "port of the worker's HTTP server"),
    ("GATEWATCH_ADVERTISED_HOST", "(GATEWATCH_WEB_HOST; the hostname if that is 0.0.0.0)",
     "host other workers and alert links use to reach this worker (pod IP, service name)"),
    ("GATEWATCH_WINDOW_SECONDS", "300", "tumbling window size (event time)"),
    ("GATEWATCH_GRACE_SECONDS", "60", "how late an event may be and still count in its window"),
    ("GATEWATCH_IDLE_SECONDS", "30",
     "after this much wall-clock silence a gate's watermark follows the wall clock"),
    ("GATEWATCH_NO_DATA_SECONDS", "900",
     "a gate silent this long is 'no data' (per-gate override in the gates file)"),
    ("GATEWATCH_RETENTION_SECONDS", "86400",
     "how long finished trips are kept (dedup horizon); waiting vehicles older than "
     "GATEWATCH_MAX_WAIT_SECONDS expire"),
    ("GATEWATCH_MAX_WAIT_SECONDS", "2592000",
     "a vehicle still waiting after this much event time is expired (and counted)"),
    ("GATEWATCH_ALERT_RAISE_HOLD_SECONDS", "60",
     "a congestion level must hold this long before it is raised"),
    ("GATEWATCH_ALERT_CLEAR_HOLD_SECONDS", "300",
     "the backlog must stay below the clear level this long before a level clears"),
    ("GATEWATCH_PERISHABLE_MAX_WAIT_SECONDS", "21600",
     "perishable-cargo wait that raises an alert (per-gate override in the gates file)"),
    ("GATEWATCH_RUNBOOK_URL", "(the worker's /runbook)", "runbook link put in alert messages"),
    ("GATEWATCH_MAX_MESSAGE_BYTES", "65536", "larger messages are rejected as too_large"),
    ("GATEWATCH_BATCH_SIZE", "2000", "max events per batch on the stream path (BATCH_DELIVERY=0)"),
    ("GATEWATCH_BATCH_WITHIN_SECONDS", "0.05", "max wait to fill a batch on the stream path"),
    ("GATEWATCH_BATCH_DELIVERY", "1",
     "1: the consumer hands whole fetched batches to the agent; 0: Faust's per-event stream"),
    ("GATEWATCH_FETCH_MAX_WAIT_MS", "100",
     "fetch long-poll with batch delivery (Faust's own path is fixed at 1500)"),
    ("GATEWATCH_GC_TUNING", "1",
     "1: the 30 s expiry sweep walks the state in place, in chunks that yield to the event "
     "loop (no full garbage-collector pass per sweep); 0: the old one-pass sweep that "
     "copied every vehicle (kept for comparison)"),
    ("GATEWATCH_API_TOKEN", "", "if set, the JSON API requires 'Authorization: Bearer <token>'"),
    ("GATEWATCH_API_CORS_ORIGINS", "", "origins allowed to call the API from a browser (comma "
     "list, or *)"),
    ("GATEWATCH_BROKER_COMPAT", "tansu",
     "'tansu' enables the embedded-broker workarounds; 'kafka' for Apache Kafka/Redpanda"),
    ("GATEWATCH_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT",
     "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
    ("GATEWATCH_KAFKA_SASL_MECHANISM", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
    ("GATEWATCH_KAFKA_SASL_USERNAME", "", "SASL user"),
    ("GATEWATCH_KAFKA_SASL_PASSWORD", "", "SASL password (or ..._PASSWORD_FILE)"),
    ("GATEWATCH_KAFKA_SSL_CAFILE", "", "CA bundle for TLS"),
    ("GATEWATCH_LOG_LEVEL", "info", "worker log level"),
)

_ENV = "environment"


def _parse(env: Mapping[str, str], key: str, default: str, conv: Callable[[str], _T],
           check: Callable[[_T], bool] | None = None, expect: str = "") -> _T:
    raw = env.get(key, default)
    try:
        value = conv(raw)
    except ValueError:
        raise ConfigError(_ENV, key, f"{raw!r} is not {expect or conv.__name__}") from None
    if check is not None and not check(value):
        raise ConfigError(_ENV, key, f"{raw!r} must be {expect}")
    return value


def _advertised(e: Mapping[str, str]) -> str:
    """GATEWATCH_ADVERTISED_HOST, else the bind host; a wildcard bind (0.0.0.0, ::) is
    not an address anyone can reach, so the machine's hostname stands in for it."""
    explicit = e.get("GATEWATCH_ADVERTISED_HOST", "").strip()
    if explicit:
        return explicit
    bind = e.get("GATEWATCH_WEB_HOST", "127.0.0.1").strip() or "127.0.0.1"
    if bind in ("0.0.0.0", "::", "[::]"):
        import socket

        return socket.gethostname()
    return bind


@dataclasses.dataclass(frozen=True)
class Settings:
    """Immutable runtime settings; build with :meth:`from_env`."""

    bootstrap: str = "127.0.0.1:9092"
    gates_path: Path | None = None
    app_id: str = "gatewatch"
    topic_prefix: str = ""
    partitions: int = 4
    replication: int = 1
    standby_replicas: int = 0
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    advertised_host: str = "127.0.0.1"
    window_seconds: int = 300
    grace_seconds: int = 60
    idle_seconds: int = 30
    no_data_seconds: int = 900
    retention_seconds: int = 86400
    max_wait_seconds: int = 2592000
    max_message_bytes: int = 65536
    alert_raise_hold_seconds: int = 60
    alert_clear_hold_seconds: int = 300
    perishable_max_wait_seconds: int = 21600
    runbook_url: str = ""
    batch_size: int = 2000
    batch_within_seconds: float = 0.05
    batch_delivery: bool = True
    fetch_max_wait_ms: int = 100
    gc_tuning: int = 1
    broker_compat: str = "tansu"
    api_token: str = dataclasses.field(default="", repr=False)
    api_cors_origins: tuple[str, ...] = ()
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = dataclasses.field(default="", repr=False)
    ssl_cafile: str = ""
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``env`` (default: ``os.environ``); raise ConfigError if bad."""
        e = os.environ if env is None else env

        def positive(v: int) -> bool:
            return v > 0

        def non_negative(v: int) -> bool:
            return v >= 0

        gates = e.get("GATEWATCH_GATES", "").strip()
        compat = e.get("GATEWATCH_BROKER_COMPAT", "tansu").strip().lower()
        if compat not in ("tansu", "kafka"):
            raise ConfigError(_ENV, "GATEWATCH_BROKER_COMPAT", f"{compat!r} must be tansu or kafka")
        protocol = e.get("GATEWATCH_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").strip().upper()
        if protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
            raise ConfigError(_ENV, "GATEWATCH_KAFKA_SECURITY_PROTOCOL",
                              f"{protocol!r} must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
        mechanism = e.get("GATEWATCH_KAFKA_SASL_MECHANISM", "").strip().upper()
        if protocol.startswith("SASL") and mechanism not in (
                "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            raise ConfigError(_ENV, "GATEWATCH_KAFKA_SASL_MECHANISM",
                              f"{mechanism!r} must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 "
                              f"with {protocol}")
        password = e.get("GATEWATCH_KAFKA_SASL_PASSWORD", "")
        password_file = e.get("GATEWATCH_KAFKA_SASL_PASSWORD_FILE", "").strip()
        if password_file:
            try:
                password = Path(password_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(_ENV, "GATEWATCH_KAFKA_SASL_PASSWORD_FILE",
                                  f"cannot read {password_file}: {exc.strerror}") from None
        from gatewatch.redact import register_secret

        register_secret(password)  # kafka-python logs its config (password too) at DEBUG
        register_secret(e.get("GATEWATCH_API_TOKEN", "").strip())
        bootstrap = e.get("GATEWATCH_KAFKA_BOOTSTRAP", "127.0.0.1:9092").strip()
        if not bootstrap:
            raise ConfigError(_ENV, "GATEWATCH_KAFKA_BOOTSTRAP", "must not be empty")
        level = e.get("GATEWATCH_LOG_LEVEL", "info").strip().lower()
        if level not in ("debug", "info", "warning", "error"):
            raise ConfigError(_ENV, "GATEWATCH_LOG_LEVEL",
                              f"{level!r} must be debug, info, warning or error")
        return cls(
            bootstrap=bootstrap,
            gates_path=Path(gates) if gates else None,
            app_id=e.get("GATEWATCH_APP_ID", "gatewatch").strip() or "gatewatch",
            topic_prefix=e.get("GATEWATCH_TOPIC_PREFIX", "").strip(),
            partitions=_parse(e, "GATEWATCH_PARTITIONS", "4", int, positive, "a positive integer"),
            replication=_parse(e, "GATEWATCH_REPLICATION", "1", int, positive,
                               "a positive integer"),
            standby_replicas=_parse(e, "GATEWATCH_STANDBY_REPLICAS", "0", int, non_negative,
                                    "a non-negative integer"),
            web_host=e.get("GATEWATCH_WEB_HOST", "127.0.0.1").strip() or "127.0.0.1",
            web_port=_parse(e, "GATEWATCH_WEB_PORT", "6066", int,
                            lambda p: 0 < p < 65536, "a port number (1-65535)"),
            advertised_host=_advertised(e),
            window_seconds=_parse(e, "GATEWATCH_WINDOW_SECONDS", "300", int, positive,
                                  "a positive integer"),
            grace_seconds=_parse(e, "GATEWATCH_GRACE_SECONDS", "60", int, non_negative,
                                 "a non-negative integer"),
            idle_seconds=_parse(e, "GATEWATCH_IDLE_SECONDS", "30", int, positive,
                                "a positive integer"),
            no_data_seconds=_parse(e, "GATEWATCH_NO_DATA_SECONDS", "900", int, positive,
                                   "a positive integer"),
            retention_seconds=_parse(e, "GATEWATCH_RETENTION_SECONDS", "86400", int, positive,
                                     "a positive integer"),
            max_wait_seconds=_parse(e, "GATEWATCH_MAX_WAIT_SECONDS", "2592000", int, positive,
                                    "a positive integer"),
            alert_raise_hold_seconds=_parse(e, "GATEWATCH_ALERT_RAISE_HOLD_SECONDS", "60", int,
                                            non_negative, "a non-negative integer"),
            alert_clear_hold_seconds=_parse(e, "GATEWATCH_ALERT_CLEAR_HOLD_SECONDS", "300", int,
                                            non_negative, "a non-negative integer"),
            perishable_max_wait_seconds=_parse(e, "GATEWATCH_PERISHABLE_MAX_WAIT_SECONDS",
                                               "21600", int, positive, "a positive integer"),
            runbook_url=e.get("GATEWATCH_RUNBOOK_URL", "").strip(),
            max_message_bytes=_parse(e, "GATEWATCH_MAX_MESSAGE_BYTES", "65536", int, positive,
                                     "a positive integer"),
            batch_size=_parse(e, "GATEWATCH_BATCH_SIZE", "2000", int, positive,
                              "a positive integer"),
            batch_within_seconds=_parse(e, "GATEWATCH_BATCH_WITHIN_SECONDS", "0.05", float,
                                        lambda v: 0 < v <= 10, "a number of seconds in (0, 10]"),
            batch_delivery=_parse(e, "GATEWATCH_BATCH_DELIVERY", "1", int,
                                  lambda v: v in (0, 1), "0 or 1") == 1,
            fetch_max_wait_ms=_parse(e, "GATEWATCH_FETCH_MAX_WAIT_MS", "100", int,
                                     lambda v: 0 <= v <= 10000, "milliseconds in [0, 10000]"),
            gc_tuning=_parse(e, "GATEWATCH_GC_TUNING", "1", int, lambda v: v in (0, 1),
                             "0 or 1"),
            broker_compat=compat,
            api_token=e.get("GATEWATCH_API_TOKEN", "").strip(),
            api_cors_origins=tuple(o.strip() for o in e.get(
                "GATEWATCH_API_CORS_ORIGINS", "").split(",") if o.strip()),
            security_protocol=protocol,
            sasl_mechanism=mechanism,
            sasl_username=e.get("GATEWATCH_KAFKA_SASL_USERNAME", ""),
            sasl_password=password,
            ssl_cafile=e.get("GATEWATCH_KAFKA_SSL_CAFILE", "").strip(),
            log_level=level,
        )

    def runbook(self) -> str:
        """The runbook link for alert messages."""
        return self.runbook_url or f"{self.advertised_url}/runbook"

    @property
    def advertised_url(self) -> str:
        """This worker's HTTP address as other workers and people should use it."""
        host = f"[{self.advertised_host}]" if ":" in self.advertised_host \
            else self.advertised_host
        return f"http://{host}:{self.web_port}"

    def topic(self, name: str) -> str:
        """Full topic name for a logical name such as ``gate.events``."""
        return f"{self.topic_prefix}{name}"

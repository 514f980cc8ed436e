"""Runtime settings, read once from an environment mapping.

Every setting is one row of :data:`SETTINGS`: its ``GATEWATCH_*`` variable, the
:class:`Settings` field it fills, its default as written in the environment, the parser
that checks it (and says what it expects), one line of documentation, and whether it is a
secret. :meth:`Settings.from_env` reads the environment through that table, the
dataclass defaults are the table's defaults parsed, and the README's configuration
reference is generated from it (``python -m gatewatch.settings``; a unit test checks that
the README holds exactly that table). Defaults suit the one-laptop run (embedded broker
on 127.0.0.1:9092). Tests build settings from a plain dict:
``Settings.from_env({"GATEWATCH_TOPIC_PREFIX": "t-1234-"})``.

Secrets (the SASL password, the API and Grafana tokens) are never part of ``repr()`` and
are registered with :mod:`gatewatch.redact` so that no log line shows them; the SASL
password can also be given as a file (``GATEWATCH_KAFKA_SASL_PASSWORD_FILE``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from gatewatch.errors import ConfigError

__all__ = ["SETTINGS", "SETTINGS_DOC", "TABLE_BEGIN", "TABLE_END", "Parser", "Setting",
           "Settings", "markdown_table", "with_table"]

_N = TypeVar("_N", int, float)

_ENV = "environment"


@dataclasses.dataclass(frozen=True)
class Parser:
    """Turns a variable's raw text into the setting's value, or raises ``ValueError``
    whose message is the reason shown to the user (``'abc' is not a positive integer``).
    ``expect`` says in words what it accepts (error messages and the reference)."""

    expect: str
    parse: Callable[[str], Any]


def _number(conv: Callable[[str], _N], ok: Callable[[_N], bool], expect: str) -> Parser:
    def parse(raw: str) -> _N:
        try:
            value = conv(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not {expect}") from None
        if not ok(value):
            raise ValueError(f"{raw!r} must be {expect}")
        return value

    return Parser(expect, parse)


def _choice(options: tuple[str, ...], upper: bool = False) -> Parser:
    expect = ", ".join(options[:-1]) + f" or {options[-1]}"

    def parse(raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in options:
            raise ValueError(f"{value!r} must be {expect}")
        return value

    return Parser(expect, parse)


def _required(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _comma_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _path(raw: str) -> Path | None:
    return Path(raw.strip()) if raw.strip() else None


def _cap_sender(raw: str) -> str:
    value = _required(raw)
    if any(c in value for c in " ,<&\t\n"):
        raise ValueError(f"{value!r} must have no spaces, commas, '<' or '&' (CAP sender)")
    return value


_POSITIVE = _number(int, lambda v: v > 0, "a positive integer")
_NON_NEGATIVE = _number(int, lambda v: v >= 0, "a non-negative integer")
_ZERO_ONE = _number(int, lambda v: v in (0, 1), "0 or 1")


def _flag(raw: str) -> bool:
    return bool(_ZERO_ONE.parse(raw) == 1)


_TEXT = Parser("text", str.strip)
_RAW_TEXT = Parser("text (taken as written)", str)
_HOST = Parser("a host name or address", str.strip)
_URL = Parser("a URL", str.strip)
_URLS = Parser("URLs, comma-separated", _comma_list)
_TOKEN = Parser("a token", str.strip)


def _instant(raw: str) -> int | None:
    """An RFC 3339 time with offset as epoch milliseconds; empty means none."""
    if not raw.strip():
        return None
    from gatewatch.streams.codec import parse_timestamp_ms

    ms = parse_timestamp_ms(raw.strip())
    if ms is None:
        raise ValueError(f"{raw.strip()[:40]!r} is not an RFC 3339 time with an offset")
    return ms


def _optional_ms(raw: str) -> int | None:
    if not raw.strip():
        return None
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError(f"{raw.strip()[:40]!r} is not a whole number of milliseconds") from None


def _database_url(raw: str) -> str:
    """A history-store URL: checked here for its scheme; fully when the store opens."""
    value = raw.strip()
    scheme = value.partition(":")[0].lower()
    if scheme not in ("sqlite", "postgresql", "postgres", "postgresql+psycopg") \
            or "://" not in value:
        raise ValueError(f"{scheme[:20]!r} is not a supported database URL: use "
                         "sqlite:///path or postgresql://user@host/database")
    return value


def _utc_offset(raw: str) -> int:
    """``±HH:MM`` as minutes east of UTC."""
    value = raw.strip()
    if len(value) != 6 or value[0] not in "+-" or value[3] != ":" \
            or not (value[1:3] + value[4:]).isdigit() or int(value[1:3]) > 14 \
            or int(value[4:]) > 59:
        raise ValueError(f"{value[:20]!r} is not an offset like +07:00")
    minutes = int(value[1:3]) * 60 + int(value[4:])
    return -minutes if value[0] == "-" else minutes


@dataclasses.dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    env: str
    """the environment variable"""
    field: str
    """the :class:`Settings` attribute it fills"""
    default: str
    """the default, as it would be written in the environment"""
    parser: Parser
    doc: str
    """one line for the configuration reference (Markdown)"""
    secret: bool = False
    """never in ``repr()``, redacted from every log line"""
    shown_default: str = ""
    """the default as the reference shows it, when it is derived rather than literal"""
    blank_is_default: bool = False
    """an empty or blank value means the default (otherwise it is parsed like any value)"""

    def parse(self, env: Mapping[str, str]) -> Any:
        """This setting's value in ``env``; ConfigError(environment, variable, reason)."""
        raw = env.get(self.env, self.default)
        if self.blank_is_default and not raw.strip():
            raw = self.default
        try:
            return self.parser.parse(raw)
        except ValueError as exc:
            raise ConfigError(_ENV, self.env, str(exc)) from None

    @property
    def default_doc(self) -> str:
        """The default as the reference shows it."""
        if self.shown_default:
            return self.shown_default
        return f"`{self.default}`" if self.default else "(empty)"


#: The settings table: every ``GATEWATCH_*`` variable gatewatch reads, in reference order.
SETTINGS: tuple[Setting, ...] = (
    Setting("GATEWATCH_KAFKA_BOOTSTRAP", "bootstrap", "127.0.0.1:9092",
            Parser("host:port, comma-separated (not empty)", _required),
            "Kafka bootstrap servers"),
    Setting("GATEWATCH_GATES", "gates_path", "", Parser("a file path", _path),
            "path of the gate configuration YAML", shown_default="bundled Lạng Sơn gates"),
    Setting("GATEWATCH_APP_ID", "app_id", "gatewatch", _TEXT,
            "Faust app id = Kafka consumer group (and changelog topic prefix)",
            blank_is_default=True),
    Setting("GATEWATCH_TOPIC_PREFIX", "topic_prefix", "", _TEXT,
            "prefix for every topic name (tests use a uuid)"),
    Setting("GATEWATCH_PARTITIONS", "partitions", "4", _POSITIVE,
            "partitions for topics gatewatch creates"),
    Setting("GATEWATCH_REPLICATION", "replication", "1", _POSITIVE,
            "replication factor for topics gatewatch creates"),
    Setting("GATEWATCH_STANDBY_REPLICAS", "standby_replicas", "0", _NON_NEGATIVE,
            "standby copies of each state partition kept by other workers (Faust "
            "table_standby_replicas)"),
    Setting("GATEWATCH_WEB_HOST", "web_host", "127.0.0.1", _HOST,
            "address the worker's HTTP server binds", blank_is_default=True),
    Setting("GATEWATCH_WEB_PORT", "web_port", "6066",
            _number(int, lambda p: 0 < p < 65536, "a port number (1-65535)"),
            "port of the worker's HTTP server (`gatewatch worker --web-port`)"),
    Setting("GATEWATCH_ADVERTISED_HOST", "advertised_host", "", _HOST,
            "host other workers and alert links use to reach this worker (pod IP, compose "
            "service name): the API forwards requests for other workers' gates to it",
            shown_default="(`GATEWATCH_WEB_HOST`; the hostname if that is `0.0.0.0`)"),
    Setting("GATEWATCH_WINDOW_SECONDS", "window_seconds", "300", _POSITIVE,
            "tumbling window size (event time)"),
    Setting("GATEWATCH_GRACE_SECONDS", "grace_seconds", "60", _NON_NEGATIVE,
            "how late an event may be and still count in its window"),
    Setting("GATEWATCH_IDLE_SECONDS", "idle_seconds", "30", _POSITIVE,
            "after this much wall-clock silence a gate's watermark follows the wall clock"),
    Setting("GATEWATCH_NO_DATA_SECONDS", "no_data_seconds", "900", _POSITIVE,
            "a gate silent this long is \"no data\" (per gate: `no_data_seconds`; the bundled "
            "gates set 20-120 min: quiet gates have long normal gaps)"),
    Setting("GATEWATCH_RETENTION_SECONDS", "retention_seconds", "86400", _POSITIVE,
            "how long finished trips are kept (the dedup horizon)"),
    Setting("GATEWATCH_MAX_WAIT_SECONDS", "max_wait_seconds", "2592000", _POSITIVE,
            "a vehicle waiting longer (event time) is expired, and counted"),
    Setting("GATEWATCH_ALERT_RAISE_HOLD_SECONDS", "alert_raise_hold_seconds", "60",
            _NON_NEGATIVE, "a congestion level must hold this long before it is raised"),
    Setting("GATEWATCH_ALERT_CLEAR_HOLD_SECONDS", "alert_clear_hold_seconds", "300",
            _NON_NEGATIVE,
            "the backlog must stay below the clear level this long before a level clears"),
    Setting("GATEWATCH_ADVISORY_RAISE_HOLD_SECONDS", "advisory_raise_hold_seconds", "900",
            _NON_NEGATIVE, "a shipment advisory is raised once its figures held this long "
            "(shippers plan in hours: no flapping)"),
    Setting("GATEWATCH_ADVISORY_CLEAR_HOLD_SECONDS", "advisory_clear_hold_seconds", "1800",
            _NON_NEGATIVE, "a shipment advisory is lowered or cleared once its figures stayed "
            "below the clear level this long"),
    Setting("GATEWATCH_PERISHABLE_MAX_WAIT_SECONDS", "perishable_max_wait_seconds", "21600",
            _POSITIVE, "perishable-cargo wait that raises an alert (per gate: "
            "`perishable_max_wait_seconds`)"),
    Setting("GATEWATCH_RUNBOOK_URL", "runbook_url", "", _URL,
            "runbook link put in alert messages", shown_default="the worker's `/runbook`"),
    Setting("GATEWATCH_CAP_SENDER", "cap_sender", "gatewatch@localhost",
            Parser("a CAP sender id", _cap_sender), "`sender` of the CAP feed's messages "
            "(`/api/v1/cap.atom`): a unique id of the publisher, e.g. an address"),
    Setting("GATEWATCH_MAX_MESSAGE_BYTES", "max_message_bytes", "65536", _POSITIVE,
            "larger messages are rejected as `too_large`"),
    Setting("GATEWATCH_MAX_FUTURE_SKEW_SECONDS", "max_future_skew_seconds", "300",
            _NON_NEGATIVE, "events dated further ahead of the worker's clock are rejected "
            "as `from_the_future` (a wrong camera clock must not move a gate's watermark)"),
    Setting("GATEWATCH_RECONCILE", "reconcile", "1", Parser(_ZERO_ONE.expect, _flag),
            "`1`: reconcile misread and missed plates (fuzzy pairing of unmatched crossings, "
            "unconfirmed vehicles; docs/accuracy.md); `0`: the exact ledger alone"),
    Setting("GATEWATCH_UNCONFIRMED_MIN_OVERTAKES", "unconfirmed_min_overtakes", "50",
            _POSITIVE, "a waiting vehicle overtaken by more vehicles than this (and than the "
            "gate's own overtaking allows) since it was last read becomes *unconfirmed*"),
    Setting("GATEWATCH_COUNT_DISCREPANCY_VEHICLES", "count_discrepancy_vehicles", "20",
            _POSITIVE, "a `gate.counts` observation differing from the ledger by more than "
            "this (and 10 %) for 30 min raises a `data_quality` alert"),
    Setting("GATEWATCH_BATCH_DELIVERY", "batch_delivery", "1", Parser(_ZERO_ONE.expect, _flag),
            "`1`: the consumer hands whole fetched batches to the core; `0`: Faust's "
            "per-event stream"),
    Setting("GATEWATCH_FETCH_MAX_WAIT_MS", "fetch_max_wait_ms", "100",
            _number(int, lambda v: 0 <= v <= 10000, "milliseconds in [0, 10000]"),
            "fetch long-poll with batch delivery (Faust's own path is fixed at 1.5 s)"),
    Setting("GATEWATCH_BATCH_SIZE", "batch_size", "2000", _POSITIVE,
            "max events per batch on the stream path (`GATEWATCH_BATCH_DELIVERY=0`)"),
    Setting("GATEWATCH_BATCH_WITHIN_SECONDS", "batch_within_seconds", "0.05",
            _number(float, lambda v: 0 < v <= 10, "a number of seconds in (0, 10]"),
            "max wait to fill a batch on the stream path"),
    Setting("GATEWATCH_API_TOKEN", "api_token", "", _TOKEN,
            "if set, the JSON API requires `Authorization: Bearer <token>`", secret=True),
    Setting("GATEWATCH_API_CORS_ORIGINS", "api_cors_origins", "",
            Parser("origins, comma-separated, or `*`", _comma_list),
            "origins allowed to call the API from a browser"),
    Setting("GATEWATCH_PUBLIC_RATE_PER_MINUTE", "public_rate_per_minute", "60", _POSITIVE,
            "requests a minute each client address may make to the public feed "
            "`/api/v1/public/gates` (bursts of as many; then 429)"),
    Setting("GATEWATCH_BROKER_COMPAT", "broker_compat", "tansu", _choice(("tansu", "kafka")),
            "`tansu`: embedded-broker workarounds; `kafka`: Apache Kafka / Redpanda"),
    Setting("GATEWATCH_KAFKA_SECURITY_PROTOCOL", "security_protocol", "PLAINTEXT",
            _choice(("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"), upper=True),
            "how the Kafka clients connect"),
    Setting("GATEWATCH_KAFKA_SASL_MECHANISM", "sasl_mechanism", "",
            Parser("PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (required with `SASL_*`)",
                   lambda raw: raw.strip().upper()),
            "SASL mechanism"),
    Setting("GATEWATCH_KAFKA_SASL_USERNAME", "sasl_username", "", _RAW_TEXT, "SASL user"),
    Setting("GATEWATCH_KAFKA_SASL_PASSWORD", "sasl_password", "", _RAW_TEXT, "SASL password",
            secret=True),
    Setting("GATEWATCH_KAFKA_SASL_PASSWORD_FILE", "sasl_password_file", "",
            Parser("a file path", _path),
            "file holding the SASL password (read at start-up, surrounding whitespace "
            "dropped); overrides `GATEWATCH_KAFKA_SASL_PASSWORD`"),
    Setting("GATEWATCH_KAFKA_SSL_CAFILE", "ssl_cafile", "", Parser("a file path", str.strip),
            "CA bundle for TLS"),
    Setting("GATEWATCH_LOG_LEVEL", "log_level", "info",
            _choice(("debug", "info", "warning", "error")), "worker log level"),
    Setting("GATEWATCH_WEBHOOK_URL", "webhook_urls", "", _URLS,
            "`gatewatch notify`: POST every alert record to these URLs (or `--webhook-url`)"),
    Setting("GATEWATCH_ALERTMANAGER_URL", "alertmanager_url", "", _URL,
            "`gatewatch notify`: Alertmanager base URL, e.g. `http://127.0.0.1:9093` (or "
            "`--alertmanager-url`)"),
    Setting("GATEWATCH_GRAFANA_TOKEN", "grafana_token", "", _TOKEN,
            "`gatewatch dashboards push`: Grafana API token (or `--token`)", secret=True),
    Setting("GATEWATCH_HISTORY_URL", "history_url", "sqlite:///gatewatch-history.sqlite3",
            Parser("sqlite:///path or postgresql://user:password@host:port/database",
                   _database_url),
            "the history store `gatewatch history` writes and the worker's history API "
            "reads: a SQLite file (relative to the working directory; `sqlite:////abs/path` "
            "for an absolute one) or a PostgreSQL database (docs/history.md)", secret=True,
            shown_default="`sqlite:///gatewatch-history.sqlite3`"),
    Setting("GATEWATCH_HISTORY_UTC_OFFSET", "history_utc_offset_minutes", "+07:00",
            Parser("an offset ±HH:MM", _utc_offset),
            "the gates' local time for history days and hour-of-week patterns"),
    Setting("GATEWATCH_CLOCK_SPEED", "clock_speed", "1",
            _number(float, lambda v: 0 < v <= 1e7, "a number in (0, 10000000]"),
            "for drills and demos only: simulated seconds per real second of the clock of "
            "`gatewatch worker` and `gatewatch notify` (`1` with no origin: the real clock); "
            "with `GATEWATCH_CLOCK_ORIGIN` and `GATEWATCH_CLOCK_ANCHOR_MS`, all or none, "
            "simulated now = origin + (real now − anchor) × speed"),
    Setting("GATEWATCH_CLOCK_ORIGIN", "clock_origin_ms", "",
            Parser("an RFC 3339 time with an offset, or empty", _instant),
            "for drills and demos only: the simulated time at the anchor"),
    Setting("GATEWATCH_CLOCK_ANCHOR_MS", "clock_anchor_ms", "",
            Parser("Unix milliseconds, or empty", _optional_ms),
            "for drills and demos only: the real Unix time (ms) at which the simulated "
            "clock reads `GATEWATCH_CLOCK_ORIGIN` (processes given the same three values "
            "share one timeline)"),
)

_BY_FIELD: dict[str, Setting] = {s.field: s for s in SETTINGS}

#: (variable, default, meaning) for each setting, derived from :data:`SETTINGS`.
SETTINGS_DOC: tuple[tuple[str, str, str], ...] = tuple(
    (s.env, s.default_doc, s.doc) for s in SETTINGS)


def _field(name: str) -> Any:
    """The dataclass field for ``name``: the table's default, parsed; secrets not in repr."""
    row = _BY_FIELD[name]
    return dataclasses.field(default=row.parser.parse(row.default), repr=not row.secret)


def _hostname_for(bind: str) -> str:
    """A wildcard bind (0.0.0.0, ::) is not an address anyone can reach: the machine's
    hostname stands in for it."""
    if bind in ("0.0.0.0", "::", "[::]"):
        import socket

        return socket.gethostname()
    return bind


@dataclasses.dataclass(frozen=True)
class Settings:
    """Immutable runtime settings; build with :meth:`from_env`. Every field is a row of
    :data:`SETTINGS`; an empty ``advertised_host`` becomes the bind host (see
    :func:`_hostname_for`)."""

    bootstrap: str = _field("bootstrap")
    gates_path: Path | None = _field("gates_path")
    app_id: str = _field("app_id")
    topic_prefix: str = _field("topic_prefix")
    partitions: int = _field("partitions")
    replication: int = _field("replication")
    standby_replicas: int = _field("standby_replicas")
    web_host: str = _field("web_host")
    web_port: int = _field("web_port")
    advertised_host: str = _field("advertised_host")
    window_seconds: int = _field("window_seconds")
    grace_seconds: int = _field("grace_seconds")
    idle_seconds: int = _field("idle_seconds")
    no_data_seconds: int = _field("no_data_seconds")
    retention_seconds: int = _field("retention_seconds")
    max_wait_seconds: int = _field("max_wait_seconds")
    max_message_bytes: int = _field("max_message_bytes")
    max_future_skew_seconds: int = _field("max_future_skew_seconds")
    alert_raise_hold_seconds: int = _field("alert_raise_hold_seconds")
    alert_clear_hold_seconds: int = _field("alert_clear_hold_seconds")
    perishable_max_wait_seconds: int = _field("perishable_max_wait_seconds")
    advisory_raise_hold_seconds: int = _field("advisory_raise_hold_seconds")
    advisory_clear_hold_seconds: int = _field("advisory_clear_hold_seconds")
    runbook_url: str = _field("runbook_url")
    reconcile: bool = _field("reconcile")
    unconfirmed_min_overtakes: int = _field("unconfirmed_min_overtakes")
    count_discrepancy_vehicles: int = _field("count_discrepancy_vehicles")
    cap_sender: str = _field("cap_sender")
    batch_size: int = _field("batch_size")
    batch_within_seconds: float = _field("batch_within_seconds")
    batch_delivery: bool = _field("batch_delivery")
    fetch_max_wait_ms: int = _field("fetch_max_wait_ms")
    broker_compat: str = _field("broker_compat")
    api_token: str = _field("api_token")
    api_cors_origins: tuple[str, ...] = _field("api_cors_origins")
    public_rate_per_minute: int = _field("public_rate_per_minute")
    security_protocol: str = _field("security_protocol")
    sasl_mechanism: str = _field("sasl_mechanism")
    sasl_username: str = _field("sasl_username")
    sasl_password: str = _field("sasl_password")
    sasl_password_file: Path | None = _field("sasl_password_file")
    ssl_cafile: str = _field("ssl_cafile")
    log_level: str = _field("log_level")
    webhook_urls: tuple[str, ...] = _field("webhook_urls")
    alertmanager_url: str = _field("alertmanager_url")
    grafana_token: str = _field("grafana_token")
    history_url: str = _field("history_url")
    history_utc_offset_minutes: int = _field("history_utc_offset_minutes")
    clock_speed: float = _field("clock_speed")
    clock_origin_ms: int | None = _field("clock_origin_ms")
    clock_anchor_ms: int | None = _field("clock_anchor_ms")

    def __post_init__(self) -> None:
        if not self.advertised_host:
            object.__setattr__(self, "advertised_host", _hostname_for(self.web_host))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``env`` (default: ``os.environ``); raise ConfigError if bad."""
        e = os.environ if env is None else env
        values: dict[str, Any] = {s.field: s.parse(e) for s in SETTINGS}
        # the rules that involve more than one variable
        protocol = values["security_protocol"]
        if protocol.startswith("SASL") and values["sasl_mechanism"] not in (
                "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            raise ConfigError(_ENV, "GATEWATCH_KAFKA_SASL_MECHANISM",
                              f"{values['sasl_mechanism']!r} must be PLAIN, SCRAM-SHA-256 or "
                              f"SCRAM-SHA-512 with {protocol}")
        _check_clock(values)
        password_file: Path | None = values["sasl_password_file"]
        if password_file is not None:
            try:
                values["sasl_password"] = password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(_ENV, "GATEWATCH_KAFKA_SASL_PASSWORD_FILE",
                                  f"cannot read {password_file}: {exc.strerror}") from None
        from gatewatch.redact import register_secret

        for s in SETTINGS:  # kafka-python logs its config (password too) at DEBUG
            if s.secret:
                register_secret(values[s.field])
        return cls(**values)

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


def _check_clock(values: Mapping[str, Any]) -> None:
    """The simulated clock's three settings come all together or not at all."""
    given = {"GATEWATCH_CLOCK_ORIGIN": values["clock_origin_ms"] is not None,
             "GATEWATCH_CLOCK_ANCHOR_MS": values["clock_anchor_ms"] is not None}
    if values["clock_speed"] != 1 or any(given.values()):
        missing = [name for name, ok in given.items() if not ok]
        if missing:
            raise ConfigError(_ENV, missing[0],
                              "a simulated clock needs GATEWATCH_CLOCK_SPEED, "
                              "GATEWATCH_CLOCK_ORIGIN and GATEWATCH_CLOCK_ANCHOR_MS together "
                              "(all or none)")


def markdown_table() -> str:
    """The configuration reference (a Markdown table) made from :data:`SETTINGS`."""
    lines = ["| variable | default | accepts | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        doc = s.doc + ("; a secret: never printed or logged" if s.secret else "")
        lines.append(f"| `{s.env}` | {s.default_doc} | {s.parser.expect} | {doc} |")
    return "\n".join(lines) + "\n"


#: The generated table sits between these lines in the README.
TABLE_BEGIN, TABLE_END = "<!-- settings-table:begin -->", "<!-- settings-table:end -->"


def with_table(markdown: str) -> str:
    """``markdown`` with the text between the table markers replaced by
    :func:`markdown_table`; ValueError if the markers are missing."""
    begin, end = markdown.find(TABLE_BEGIN), markdown.find(TABLE_END)
    if begin < 0 or end < begin:
        raise ValueError(f"no {TABLE_BEGIN} ... {TABLE_END} lines")
    head = markdown[:begin + len(TABLE_BEGIN)]
    return f"{head}\n{markdown_table()}{markdown[end:]}"


def _main(argv: list[str]) -> int:
    """``python -m gatewatch.settings``: print the reference table;
    ``python -m gatewatch.settings docs/configuration.md``: rewrite the table
    between its markers."""
    if not argv:
        print(markdown_table(), end="")
        return 0
    for name in argv:
        path = Path(name)
        text = path.read_text(encoding="utf-8")
        updated = with_table(text)
        if updated != text:
            path.write_text(updated, encoding="utf-8")
            print(f"{name}: configuration table updated")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))

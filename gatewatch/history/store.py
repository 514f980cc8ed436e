"""The history store: ``HistoryStore(url)`` over SQLite (the default, a file) or PostgreSQL.

Writes are idempotent upserts: a window by ``(gate_id, start_ms)`` (a later record,
republished or replayed, replaces the row: last write wins, and replays never double
count), an alert record by ``(alert_id, updated_ms, change)`` (stored once). Reads return
typed records and the aggregations of :mod:`gatewatch.history.aggregate`.

URLs: ``sqlite:///relative/path.sqlite3``, ``sqlite:////absolute/path.sqlite3``,
``postgresql://user:password@host:port/database`` (the psycopg 3 driver; ``postgres://``
and ``postgresql+psycopg://`` are accepted too). A store opened ``readonly`` (the worker's
API) never creates a file or a table. Database errors become
:class:`~gatewatch.errors.HistoryError` with the URL shown without its password.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import Engine, Table, create_engine, func, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from gatewatch.errors import ConfigError, HistoryError
from gatewatch.history import schema
from gatewatch.history.aggregate import (
    STEPS,
    WEEK_MS,
    HourPattern,
    SeriesPoint,
    patterns_of,
    series_of,
)
from gatewatch.streams.codec import parse_timestamp_ms
from gatewatch.streams.records import WindowRecord

__all__ = ["DEFAULT_URL", "URL_VARIABLE", "HistoryStore", "alert_row", "normalize_url"]

URL_VARIABLE = "GATEWATCH_HISTORY_URL"
DEFAULT_URL = "sqlite:///gatewatch-history.sqlite3"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_WINDOW_FIELDS = {f.name for f in dataclasses.fields(WindowRecord)}
_T = TypeVar("_T")


def normalize_url(raw: str, source: str = "environment", key: str = URL_VARIABLE) -> URL:
    """``raw`` as a SQLAlchemy URL for a supported database (SQLite, PostgreSQL through
    psycopg 3); ConfigError naming ``key`` and the reason otherwise."""
    text = raw.strip()
    if not text:
        raise ConfigError(source, key, "must not be empty (e.g. sqlite:///history.sqlite3 "
                          "or postgresql://user@host/db)")
    try:
        url = make_url(text)
    except ArgumentError:
        raise ConfigError(source, key, "is not a database URL (e.g. sqlite:///history.sqlite3 "
                          "or postgresql://user@host/db)") from None
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if url.drivername not in ("postgresql", "postgres", "postgresql+psycopg"):
            raise ConfigError(source, key, f"driver {url.drivername!r} is not supported; use "
                              "postgresql:// (psycopg 3)")
        url = url.set(drivername="postgresql+psycopg")
        if not url.database:
            raise ConfigError(source, key, "names no database (postgresql://user@host/db)")
    elif backend == "sqlite":
        if url.drivername != "sqlite":
            raise ConfigError(source, key, f"driver {url.drivername!r} is not supported; use "
                              "sqlite:///path")
        if not url.database or url.database == ":memory:":
            raise ConfigError(source, key, "names no file (sqlite:///path/history.sqlite3; an "
                              "in-memory database would be lost and is not shared)")
    else:
        raise ConfigError(source, key, f"{backend!r} databases are not supported; use "
                          "sqlite:///path or postgresql://...")
    return url


def _ms(value: object) -> int | None:
    return parse_timestamp_ms(value) if isinstance(value, str) else None


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def alert_row(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``alerts`` row of a ``gate.alerts`` record, or ``None`` when it lacks the fields
    that identify it (alert_id, gate_id, kind, state, change, updated_at)."""
    need = ("alert_id", "gate_id", "kind", "state", "change")
    if not all(isinstance(doc.get(k), str) and doc.get(k) for k in need):
        return None
    updated = _ms(doc.get("updated_at"))
    if updated is None:
        return None
    waiting = doc.get("waiting")
    return {"alert_id": doc["alert_id"][:128], "updated_ms": updated,
            "change": doc["change"][:16], "state": doc["state"][:16],
            "gate_id": doc["gate_id"][:64], "kind": doc["kind"][:32],
            "severity": str(doc.get("severity") or "")[:16],
            "value": _num(doc.get("value")), "threshold": _num(doc.get("threshold")),
            "waiting": waiting if isinstance(waiting, int) and not isinstance(waiting, bool)
            else None,
            "started_ms": _ms(doc.get("started_at")), "resolved_ms": _ms(doc.get("resolved_at")),
            "message": doc.get("message") if isinstance(doc.get("message"), str) else None,
            "record": orjson.dumps(doc).decode()}


def _window_row(r: WindowRecord, updated_ms: int) -> dict[str, Any]:
    return {"gate_id": r.gate_id, "start_ms": r.start_ms, "end_ms": r.end_ms,
            "arrivals_export": r.arrivals_export, "arrivals_import": r.arrivals_import,
            "crossings_export": r.crossings_export, "crossings_import": r.crossings_import,
            "withdrawals_export": r.withdrawals_export,
            "withdrawals_import": r.withdrawals_import,
            "waits_count": r.waits_count, "waits_sum_seconds": float(r.waits_sum_seconds),
            "waits_max_seconds": float(r.waits_max_seconds),
            "waiting_export": r.waiting_export, "waiting_import": r.waiting_import,
            "closed_by": r.closed_by, "republished": bool(r.republished),
            "updated_ms": updated_ms}


def _window_record(row: Any) -> WindowRecord:
    values = {k: v for k, v in row._mapping.items() if k in _WINDOW_FIELDS}
    return WindowRecord(**values)


class HistoryStore:
    """Windows and alert records in SQL. ``url`` as in ``GATEWATCH_HISTORY_URL``;
    ConfigError for a URL that names no supported database (nothing is opened until the
    first call)."""

    def __init__(self, url: str = DEFAULT_URL, *, readonly: bool = False,
                 source: str = "environment", key: str = URL_VARIABLE) -> None:
        self.url = normalize_url(url, source, key)
        self.readonly = readonly
        self.key = key
        connect: URL = self.url
        args: dict[str, Any] = {}
        if readonly and self.url.get_backend_name() == "sqlite":
            # open the existing file read-only: never create an empty database
            path = Path(str(self.url.database)).resolve()
            connect = self.url.set(database=f"file:{path}?mode=ro", query={"uri": "true"})
        elif readonly:  # PostgreSQL refuses writes in read-only transactions
            args["options"] = "-c default_transaction_read_only=on"
        if self.url.get_backend_name() != "sqlite":
            args["connect_timeout"] = 10
        self.engine: Engine = create_engine(connect, pool_pre_ping=True, connect_args=args)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file (absolute), or ``None`` for PostgreSQL."""
        return Path(str(self.url.database)).resolve() if self.dialect == "sqlite" else None

    def describe(self) -> str:
        """The URL without its password (for messages); for SQLite, the file's path."""
        if self.dialect == "sqlite":
            return f"SQLite {Path(str(self.url.database)).resolve()}"
        return self.url.render_as_string(hide_password=True).replace("+psycopg", "")

    def close(self) -> None:
        self.engine.dispose()

    def _run(self, what: str, fn: Callable[[], _T]) -> _T:
        try:
            return fn()
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise HistoryError(f"history store {self.describe()}: cannot {what}: "
                               f"{reason[0] if reason else type(exc).__name__}") from None

    # -- schema ---------------------------------------------------------------------------

    def migrate(self) -> str:
        """Bring the database to the latest schema (Alembic ``upgrade head``); return the
        revision. Creates the SQLite file (and its folder) if missing."""
        import logging

        logging.getLogger("alembic").setLevel(logging.WARNING)  # not its INFO plugin list
        from alembic import command
        from alembic.config import Config

        if self.readonly:
            raise HistoryError(f"history store {self.describe()}: opened read-only")
        if self.dialect == "sqlite":
            Path(str(self.url.database)).resolve().parent.mkdir(parents=True, exist_ok=True)
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))

        def upgrade() -> str:
            with self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
            return self.revision() or ""
        return self._run("migrate the schema", upgrade)

    def revision(self) -> str | None:
        """The schema revision the database is at (``None``: not migrated)."""
        from alembic.migration import MigrationContext

        def read() -> str | None:
            with self.engine.connect() as conn:
                ctx = MigrationContext.configure(conn, opts={"version_table":
                                                          schema.VERSION_TABLE})
                return ctx.get_current_revision()
        return self._run("read the schema revision", read)

    # -- writes ---------------------------------------------------------------------------

    def _upsert(self, table: Table, rows: Sequence[Mapping[str, Any]], key: Sequence[str],
                replace: bool) -> int:
        if not rows:
            return 0
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert
            stmt: Any = pg_insert(table)
        else:
            from sqlalchemy.dialects.sqlite import insert as lite_insert
            stmt = lite_insert(table)
        if replace:
            stmt = stmt.on_conflict_do_update(index_elements=list(key), set_={
                c.name: stmt.excluded[c.name] for c in table.columns if c.name not in key})
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(key))

        def write() -> int:
            with self.engine.begin() as conn:
                conn.execute(stmt, list(rows))
            return len(rows)
        return self._run(f"write {table.name}", write)

    def put_windows(self, records: Iterable[WindowRecord], updated_ms: int) -> int:
        """Upsert closed windows (the last of a batch wins for a repeated key); return
        the rows written."""
        latest = {(r.gate_id, r.start_ms): _window_row(r, updated_ms) for r in records}
        return self._upsert(schema.windows, list(latest.values()), ("gate_id", "start_ms"),
                            replace=True)

    def put_alerts(self, docs: Iterable[Mapping[str, Any]]) -> int:
        """Store ``gate.alerts`` records not stored yet (skipping those :func:`alert_row`
        refuses); return the rows offered."""
        rows: dict[tuple[str, int, str], dict[str, Any]] = {}
        for doc in docs:
            row = alert_row(doc)
            if row is not None:
                rows[(row["alert_id"], row["updated_ms"], row["change"])] = row
        return self._upsert(schema.alerts, list(rows.values()),
                            ("alert_id", "updated_ms", "change"), replace=False)

    # -- reads ----------------------------------------------------------------------------

    def windows(self, gate_id: str, from_ms: int, to_ms: int) -> list[WindowRecord]:
        """A gate's windows starting in ``[from_ms, to_ms)``, oldest first."""
        w = schema.windows
        q = select(w).where(w.c.gate_id == gate_id, w.c.start_ms >= from_ms,
                            w.c.start_ms < to_ms).order_by(w.c.start_ms)

        def read() -> list[WindowRecord]:
            with self.engine.connect() as conn:
                return [_window_record(row) for row in conn.execute(q)]
        return self._run("read windows", read)

    def series(self, gate_id: str, from_ms: int, to_ms: int, step: str,
               utc_offset_ms: int = 0) -> list[SeriesPoint]:
        """A gate's windows in ``[from_ms, to_ms)`` summed per ``step`` (``5m``, ``1h``,
        ``1d``: days from local midnight at ``utc_offset_ms``)."""
        if step not in STEPS:
            raise ValueError(f"step must be one of {', '.join(STEPS)}")
        return series_of(self.windows(gate_id, from_ms, to_ms), STEPS[step], utc_offset_ms)

    def patterns(self, gate_id: str, weeks: int, now_ms: int, utc_offset_ms: int = 0
                 ) -> list[HourPattern]:
        """Hour-of-week patterns of the ``weeks`` weeks before ``now_ms`` (168 entries)."""
        return patterns_of(self.windows(gate_id, now_ms - weeks * WEEK_MS, now_ms),
                           utc_offset_ms)

    def alerts(self, gate_id: str | None = None, from_ms: int | None = None,
               to_ms: int | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Stored alert records (as published), oldest first, by ``updated_at``."""
        a = schema.alerts
        q = select(a.c.record).order_by(a.c.updated_ms, a.c.alert_id).limit(limit)
        if gate_id is not None:
            q = q.where(a.c.gate_id == gate_id)
        if from_ms is not None:
            q = q.where(a.c.updated_ms >= from_ms)
        if to_ms is not None:
            q = q.where(a.c.updated_ms < to_ms)

        def read() -> list[dict[str, Any]]:
            with self.engine.connect() as conn:
                return [orjson.loads(r) for (r,) in conn.execute(q)]
        return self._run("read alerts", read)

    def count(self, table: str, gate_id: str | None = None) -> int:
        """Rows in ``windows`` or ``alerts`` (optionally of one gate)."""
        t = {"windows": schema.windows, "alerts": schema.alerts}[table]
        q = select(func.count()).select_from(t)
        if gate_id is not None:
            q = q.where(t.c.gate_id == gate_id)

        def read() -> int:
            with self.engine.connect() as conn:
                return int(conn.execute(q).scalar_one())
        return self._run(f"count {table}", read)

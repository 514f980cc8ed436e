"""The history store's tables, one schema for SQLite and PostgreSQL (SQLAlchemy Core).

``windows``: one row per closed window of a gate, keyed by ``(gate_id, start_ms)``: a
republished window replaces the earlier row, a replayed one rewrites the same values, so
nothing is ever counted twice. ``alerts``: one row per alert record of ``gate.alerts``,
keyed by ``(alert_id, updated_ms, change)``, the record's identity: a replayed record is
stored once. Times are integer milliseconds since the Unix epoch (``*_ms``), as everywhere
in gatewatch. Schema changes go through the Alembic migrations in ``migrations/``; the
tables here are what the latest migration produces (a unit test compares them).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

__all__ = ["ALERT_COLUMNS", "VERSION_TABLE", "WINDOW_COLUMNS", "alerts", "metadata", "windows"]

#: the table Alembic records the schema revision in
VERSION_TABLE = "history_version"

metadata = MetaData()

windows = Table(
    "windows", metadata,
    Column("gate_id", String(64), nullable=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=False),
    Column("arrivals_export", Integer, nullable=False),
    Column("arrivals_import", Integer, nullable=False),
    Column("crossings_export", Integer, nullable=False),
    Column("crossings_import", Integer, nullable=False),
    Column("withdrawals_export", Integer, nullable=False),
    Column("withdrawals_import", Integer, nullable=False),
    Column("waits_count", Integer, nullable=False),
    Column("waits_sum_seconds", Float, nullable=False),
    Column("waits_max_seconds", Float, nullable=False),
    #: the gate's backlog by direction when the window closed (older records: NULL)
    Column("waiting_export", Integer, nullable=True),
    Column("waiting_import", Integer, nullable=True),
    Column("closed_by", String(16), nullable=False),
    Column("republished", Boolean, nullable=False),
    #: when the row was last written (wall clock of the writer, ms)
    Column("updated_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("gate_id", "start_ms", name="pk_windows"),
)

alerts = Table(
    "alerts", metadata,
    Column("alert_id", String(128), nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("change", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("gate_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("value", Float, nullable=True),
    Column("threshold", Float, nullable=True),
    Column("waiting", Integer, nullable=True),
    Column("started_ms", BigInteger, nullable=True),
    Column("resolved_ms", BigInteger, nullable=True),
    Column("message", Text, nullable=True),
    #: the whole record as published (JSON text)
    Column("record", Text, nullable=False),
    PrimaryKeyConstraint("alert_id", "updated_ms", "change", name="pk_alerts"),
    Index("ix_alerts_gate_updated", "gate_id", "updated_ms"),
)

WINDOW_COLUMNS = tuple(c.name for c in windows.columns)
ALERT_COLUMNS = tuple(c.name for c in alerts.columns)

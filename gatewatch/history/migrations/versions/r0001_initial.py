"""The first schema: closed windows and alert records.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "windows",
        sa.Column("gate_id", sa.String(64), nullable=False),
        sa.Column("start_ms", sa.BigInteger, nullable=False),
        sa.Column("end_ms", sa.BigInteger, nullable=False),
        sa.Column("arrivals_export", sa.Integer, nullable=False),
        sa.Column("arrivals_import", sa.Integer, nullable=False),
        sa.Column("crossings_export", sa.Integer, nullable=False),
        sa.Column("crossings_import", sa.Integer, nullable=False),
        sa.Column("withdrawals_export", sa.Integer, nullable=False),
        sa.Column("withdrawals_import", sa.Integer, nullable=False),
        sa.Column("waits_count", sa.Integer, nullable=False),
        sa.Column("waits_sum_seconds", sa.Float, nullable=False),
        sa.Column("waits_max_seconds", sa.Float, nullable=False),
        sa.Column("waiting_export", sa.Integer, nullable=True),
        sa.Column("waiting_import", sa.Integer, nullable=True),
        sa.Column("closed_by", sa.String(16), nullable=False),
        sa.Column("republished", sa.Boolean, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("gate_id", "start_ms", name="pk_windows"),
    )
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(128), nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("gate_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("threshold", sa.Float, nullable=True),
        sa.Column("waiting", sa.Integer, nullable=True),
        sa.Column("started_ms", sa.BigInteger, nullable=True),
        sa.Column("resolved_ms", sa.BigInteger, nullable=True),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("record", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("alert_id", "updated_ms", "change", name="pk_alerts"),
    )
    op.create_index("ix_alerts_gate_updated", "alerts", ["gate_id", "updated_ms"])


def downgrade() -> None:
    op.drop_index("ix_alerts_gate_updated", table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("windows")

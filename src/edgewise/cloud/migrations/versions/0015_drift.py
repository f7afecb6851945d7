"""Create the drift monitors and drift events, and let a training job propose an alias for its version.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from edgewise.cloud.db import UTCDateTime

revision = "0015"
down_revision: str | None = "0014"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``drift_monitors`` and ``drift_events``; add ``training_jobs.propose_alias``."""
    op.create_table(
        "drift_monitors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(64), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("stream", sa.String(256), nullable=False),
        sa.Column("window_ms", sa.BigInteger(), nullable=False),
        sa.Column("min_rows", sa.Integer(), nullable=False),
        sa.Column("psi_threshold", sa.Float(), nullable=False),
        sa.Column("p_value", sa.Float(), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        sa.Column("confirm_checks", sa.Integer(), nullable=False),
        sa.Column("retrain", sa.Boolean(), nullable=False),
        sa.Column("retrain_window_ms", sa.BigInteger(), nullable=True),
        sa.Column("auto_promote", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("drifted_checks", sa.Integer(), nullable=False),
        sa.Column("streak_version", sa.String(32), nullable=True),
        sa.Column("last_checked_at", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_monitors")),
        sa.UniqueConstraint("model_name", name=op.f("uq_drift_monitors_model_name")),
    )
    op.create_table(
        "drift_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("model_name", sa.String(64), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("checked_at", UTCDateTime(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("drifted", sa.Boolean(), nullable=False),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("retraining_job_id", sa.String(36), nullable=True),
        sa.Column("challenger_version", sa.String(32), nullable=True),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_events")),
    )
    op.create_index("ix_drift_events_model_id", "drift_events", ["model_name", "id"])
    op.create_index(op.f("ix_drift_events_retraining_job_id"), "drift_events", ["retraining_job_id"])
    with op.batch_alter_table("training_jobs") as batch:
        batch.add_column(sa.Column("propose_alias", sa.String(64), nullable=True))


def downgrade() -> None:
    """Drop ``training_jobs.propose_alias``, ``drift_events`` and ``drift_monitors``."""
    with op.batch_alter_table("training_jobs") as batch:
        batch.drop_column("propose_alias")
    op.drop_index(op.f("ix_drift_events_retraining_job_id"), table_name="drift_events")
    op.drop_index("ix_drift_events_model_id", table_name="drift_events")
    op.drop_table("drift_events")
    op.drop_table("drift_monitors")

"""Create the jobs tables: jobs and job executions.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from edgewise.cloud.db import UTCDateTime

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def _status(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=32)


JOB_STATUS = _status("job_status", "IN_PROGRESS", "CANCELED", "DELETION_IN_PROGRESS", "COMPLETED")
TARGET_SELECTION = _status("job_target_selection", "SNAPSHOT", "CONTINUOUS")
EXECUTION_STATUS = _status(
    "job_execution_status",
    "QUEUED",
    "IN_PROGRESS",
    "SUCCEEDED",
    "FAILED",
    "TIMED_OUT",
    "REJECTED",
    "REMOVED",
    "CANCELED",
)


def upgrade() -> None:
    """Create ``jobs`` and ``job_executions``."""
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("namespace_id", sa.String(64), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("target_selection", TARGET_SELECTION, nullable=False),
        sa.Column("rollout_config", sa.JSON(), nullable=True),
        sa.Column("abort_config", sa.JSON(), nullable=True),
        sa.Column("in_progress_timeout_minutes", sa.Integer(), nullable=True),
        sa.Column("retry_config", sa.JSON(), nullable=True),
        sa.Column("status", JOB_STATUS, nullable=False),
        sa.Column("force_canceled", sa.Boolean(), nullable=False),
        sa.Column("reason_code", sa.String(128), nullable=True),
        sa.Column("comment", sa.String(2028), nullable=True),
        sa.Column("planned_things", sa.JSON(), nullable=False),
        sa.Column("rollout_position", sa.Integer(), nullable=False),
        sa.Column("window_started_at", UTCDateTime(), nullable=False),
        sa.Column("window_count", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_updated_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("job_id", name=op.f("uq_jobs_job_id")),
    )
    op.create_index(op.f("ix_jobs_status"), "jobs", ["status"])
    op.create_table(
        "job_executions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_pk", sa.Integer(), nullable=False),
        sa.Column("thing_name", sa.String(128), nullable=False),
        sa.Column("execution_number", sa.BigInteger(), nullable=False),
        sa.Column("status", EXECUTION_STATUS, nullable=False),
        sa.Column("status_details", sa.JSON(), nullable=False),
        sa.Column("version_number", sa.Integer(), nullable=False),
        sa.Column("retry_attempt", sa.Integer(), nullable=False),
        sa.Column("queued_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("last_updated_at", UTCDateTime(), nullable=False),
        sa.Column("step_timeout_at", UTCDateTime(), nullable=True),
        sa.Column("in_progress_timeout_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_executions")),
        sa.ForeignKeyConstraint(
            ["job_pk"], ["jobs.id"], name=op.f("fk_job_executions_job_pk_jobs"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint("job_pk", "thing_name", "execution_number", name="uq_job_executions_run"),
    )
    op.create_index(op.f("ix_job_executions_job_pk"), "job_executions", ["job_pk"])
    op.create_index("ix_job_executions_thing_status", "job_executions", ["thing_name", "status"])


def downgrade() -> None:
    """Drop the jobs tables."""
    op.drop_table("job_executions")
    op.drop_table("jobs")

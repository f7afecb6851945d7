"""Create the tables of datasets and training jobs.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from edgewise.cloud.db import UTCDateTime

revision = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None

TRAINING_STATUS = sa.Enum(
    "QUEUED",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "CANCELLED",
    name="training_job_status",
    native_enum=False,
    length=16,
)


def upgrade() -> None:
    """Create ``datasets`` and ``training_jobs``."""
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=True),
        sa.Column("source", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("name", name=op.f("uq_datasets_name")),
    )
    op.create_index(op.f("ix_datasets_sha256"), "datasets", ["sha256"])
    op.create_table(
        "training_jobs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("model_name", sa.String(64), nullable=False),
        sa.Column("dataset_name", sa.String(64), nullable=False),
        sa.Column("dataset_sha256", sa.String(64), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("status", TRAINING_STATUS, nullable=False),
        sa.Column("phase", sa.Text(), nullable=False),
        sa.Column("leaderboard", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("model_version", sa.String(32), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_jobs")),
    )
    op.create_index(op.f("ix_training_jobs_status"), "training_jobs", ["status"])
    op.create_index(op.f("ix_training_jobs_model_name"), "training_jobs", ["model_name"])
    op.create_index(op.f("ix_training_jobs_dataset_name"), "training_jobs", ["dataset_name"])


def downgrade() -> None:
    """Drop ``training_jobs`` and ``datasets``."""
    op.drop_table("training_jobs")
    op.drop_table("datasets")

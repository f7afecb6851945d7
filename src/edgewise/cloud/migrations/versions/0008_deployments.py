"""Create the deployments table.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from edgewise.cloud.db import UTCDateTime

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``deployments``."""
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("target_kind", sa.String(8), nullable=False),
        sa.Column("target_name", sa.String(128), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("deployment_policies", sa.JSON(), nullable=False),
        sa.Column("iot_job_configuration", sa.JSON(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("ended_as", sa.String(16), nullable=True),
        sa.Column("is_latest_for_target", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
        sa.UniqueConstraint("deployment_id", name=op.f("uq_deployments_deployment_id")),
        sa.UniqueConstraint("job_id", name=op.f("uq_deployments_job_id")),
        sa.UniqueConstraint("target_kind", "target_name", "revision", name="uq_deployments_target_revision"),
    )
    op.create_index(op.f("ix_deployments_target_name"), "deployments", ["target_name"])


def downgrade() -> None:
    """Drop ``deployments``."""
    op.drop_table("deployments")

"""Create the fleet status table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from edgewise.cloud.db import UTCDateTime

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``device_status``."""
    op.create_table(
        "device_status",
        sa.Column("thing_id", sa.Integer(), nullable=False),
        sa.Column("connected", sa.Boolean(), nullable=True),
        sa.Column("connectivity_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("connectivity_updated_at", UTCDateTime(), nullable=True),
        sa.Column("overall_status", sa.String(16), nullable=False),
        sa.Column("core_version", sa.String(64), nullable=False),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("architecture", sa.String(64), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("deployment", sa.JSON(), nullable=True),
        sa.Column("status_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("status_updated_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("thing_id", name=op.f("pk_device_status")),
        sa.ForeignKeyConstraint(
            ["thing_id"], ["things.id"], name=op.f("fk_device_status_thing_id_things"), ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    """Drop ``device_status``."""
    op.drop_table("device_status")

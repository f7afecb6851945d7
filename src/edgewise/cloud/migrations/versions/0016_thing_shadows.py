"""Create the thing shadows table.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from edgewise.cloud.db import UTCDateTime

revision = "0016"
down_revision: str | None = "0015"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``thing_shadows``."""
    op.create_table(
        "thing_shadows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("thing_name", sa.String(128), nullable=False),
        sa.Column("shadow_name", sa.String(64), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("unpublished", sa.JSON(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_thing_shadows")),
        sa.UniqueConstraint("thing_name", "shadow_name", name=op.f("uq_thing_shadows_thing_name")),
    )


def downgrade() -> None:
    """Drop ``thing_shadows``."""
    op.drop_table("thing_shadows")

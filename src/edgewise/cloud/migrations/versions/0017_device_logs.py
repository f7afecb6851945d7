"""Create the device logs table.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from edgewise.cloud.db import UTCDateTime

revision = "0017"
down_revision: str | None = "0016"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``device_logs``."""
    op.create_table(
        "device_logs",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("thing_name", sa.String(128), nullable=False),
        sa.Column("component", sa.String(256), nullable=False),
        sa.Column("file", sa.String(256), nullable=False),
        sa.Column("file_id", sa.String(64), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=True),
        sa.Column("level", sa.String(8), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_logs")),
        sa.UniqueConstraint("thing_name", "file_id", "offset", name="uq_device_logs_thing_file_offset"),
    )
    op.create_index(
        "ix_device_logs_thing_component_id", "device_logs", ["thing_name", "component", "id"], unique=False
    )
    op.create_index("ix_device_logs_received_at", "device_logs", ["received_at"], unique=False)


def downgrade() -> None:
    """Drop ``device_logs``."""
    op.drop_index("ix_device_logs_received_at", table_name="device_logs")
    op.drop_index("ix_device_logs_thing_component_id", table_name="device_logs")
    op.drop_table("device_logs")

"""Create the telemetry tables: ingested device messages and per-stream retention.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from edgewise.cloud.db import UTCDateTime

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``telemetry_messages`` and ``telemetry_retention``."""
    op.create_table(
        "telemetry_messages",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("thing_name", sa.String(128), nullable=False),
        sa.Column("stream", sa.String(256), nullable=False),
        sa.Column("topic", sa.String(256), nullable=True),
        sa.Column("source", sa.String(255), nullable=False, server_default=""),
        sa.Column("sequence_number", sa.BigInteger(), nullable=True),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("payload_json", sa.JSON(), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telemetry_messages")),
        sa.UniqueConstraint(
            "thing_name",
            "stream",
            "source",
            "sequence_number",
            name="uq_telemetry_messages_thing_stream_source_sequence",
        ),
    )
    op.create_index(
        "ix_telemetry_messages_thing_stream_time",
        "telemetry_messages",
        ["thing_name", "stream", "timestamp_ms"],
        unique=False,
    )
    op.create_index(
        "ix_telemetry_messages_stream_time", "telemetry_messages", ["stream", "timestamp_ms"], unique=False
    )
    op.create_table(
        "telemetry_retention",
        sa.Column("stream", sa.String(256), nullable=False),
        sa.Column("max_age_seconds", sa.Integer(), nullable=True),
        sa.Column("max_bytes", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("stream", name=op.f("pk_telemetry_retention")),
    )


def downgrade() -> None:
    """Drop the telemetry tables."""
    op.drop_table("telemetry_retention")
    op.drop_index("ix_telemetry_messages_stream_time", table_name="telemetry_messages")
    op.drop_index("ix_telemetry_messages_thing_stream_time", table_name="telemetry_messages")
    op.drop_table("telemetry_messages")

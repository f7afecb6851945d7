"""Create the client-device tables: associations, core device connectivity and core device CAs.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from edgewise.cloud.db import UTCDateTime

revision = "0018"
down_revision: str | None = "0017"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``client_device_associations``, ``core_device_connectivity`` and ``core_device_authorities``."""
    op.create_table(
        "client_device_associations",
        sa.Column("core_thing_id", sa.Integer(), nullable=False),
        sa.Column("client_thing_id", sa.Integer(), nullable=False),
        sa.Column("associated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["core_thing_id"],
            ["things.id"],
            name=op.f("fk_client_device_associations_core_thing_id_things"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_thing_id"],
            ["things.id"],
            name=op.f("fk_client_device_associations_client_thing_id_things"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "core_thing_id", "client_thing_id", name=op.f("pk_client_device_associations")
        ),
    )
    op.create_index(
        op.f("ix_client_device_associations_client_thing_id"),
        "client_device_associations",
        ["client_thing_id"],
        unique=False,
    )
    op.create_table(
        "core_device_connectivity",
        sa.Column("thing_id", sa.Integer(), nullable=False),
        sa.Column("entries", sa.JSON(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["thing_id"],
            ["things.id"],
            name=op.f("fk_core_device_connectivity_thing_id_things"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("thing_id", name=op.f("pk_core_device_connectivity")),
    )
    op.create_table(
        "core_device_authorities",
        sa.Column("thing_id", sa.Integer(), nullable=False),
        sa.Column("certificates", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["thing_id"],
            ["things.id"],
            name=op.f("fk_core_device_authorities_thing_id_things"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("thing_id", name=op.f("pk_core_device_authorities")),
    )


def downgrade() -> None:
    """Drop the client-device tables."""
    op.drop_table("core_device_authorities")
    op.drop_table("core_device_connectivity")
    op.drop_index(
        op.f("ix_client_device_associations_client_thing_id"), table_name="client_device_associations"
    )
    op.drop_table("client_device_associations")

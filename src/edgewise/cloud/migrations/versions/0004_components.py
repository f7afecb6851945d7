"""Create the component registry tables: component versions and their artifacts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from edgewise.cloud.db import UTCDateTime

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the component tables."""
    op.create_table(
        "component_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("recipe", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("publisher", sa.String(256), nullable=True),
        sa.Column("published_by", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_component_versions")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_component_versions_name")),
    )
    op.create_index(op.f("ix_component_versions_name"), "component_versions", ["name"])
    op.create_table(
        "component_artifacts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("component_version_id", sa.Integer(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("storage_key", sa.String(1024), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_component_artifacts")),
        sa.UniqueConstraint(
            "component_version_id", "uri", name=op.f("uq_component_artifacts_component_version_id")
        ),
        sa.ForeignKeyConstraint(
            ["component_version_id"],
            ["component_versions.id"],
            name=op.f("fk_component_artifacts_component_version_id_component_versions"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(op.f("ix_component_artifacts_sha256"), "component_artifacts", ["sha256"])


def downgrade() -> None:
    """Drop the component tables."""
    op.drop_table("component_artifacts")
    op.drop_table("component_versions")

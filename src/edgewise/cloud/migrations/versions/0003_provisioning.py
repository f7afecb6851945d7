"""Create the provisioning tables: templates and certificate ownership tokens.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from edgewise.cloud.db import UTCDateTime

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create the provisioning tables."""
    op.create_table(
        "provisioning_templates",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(36), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provisioning_templates")),
        sa.UniqueConstraint("name", name=op.f("uq_provisioning_templates_name")),
    )
    op.create_table(
        "certificate_ownership_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("certificate_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_certificate_ownership_tokens")),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_certificate_ownership_tokens_certificate_id_certificates"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        op.f("ix_certificate_ownership_tokens_certificate_id"),
        "certificate_ownership_tokens",
        ["certificate_id"],
    )


def downgrade() -> None:
    """Drop the provisioning tables."""
    op.drop_table("certificate_ownership_tokens")
    op.drop_table("provisioning_templates")

"""Add the pre-provisioning hook of provisioning templates.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add ``hook_url`` and ``hook_payload_version`` (both null: no hook)."""
    op.add_column("provisioning_templates", sa.Column("hook_url", sa.String(2048), nullable=True))
    op.add_column("provisioning_templates", sa.Column("hook_payload_version", sa.String(16), nullable=True))


def downgrade() -> None:
    """Drop the hook columns (SQLite needs a table copy for that)."""
    with op.batch_alter_table("provisioning_templates") as batch:
        batch.drop_column("hook_payload_version")
        batch.drop_column("hook_url")

"""Create the table of deleted certificates, which the CRL goes on listing until they expire.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from edgewise.cloud.db import UTCDateTime

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``deleted_certificates``."""
    op.create_table(
        "deleted_certificates",
        sa.Column("certificate_id", sa.String(64), nullable=False),
        sa.Column("serial_hex", sa.String(64), nullable=False),
        sa.Column("common_name", sa.String(128), nullable=False),
        sa.Column("not_after", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("certificate_id", name=op.f("pk_deleted_certificates")),
    )
    op.create_index(
        op.f("ix_deleted_certificates_not_after"), "deleted_certificates", ["not_after"], unique=False
    )


def downgrade() -> None:
    """Drop ``deleted_certificates``."""
    op.drop_index(op.f("ix_deleted_certificates_not_after"), table_name="deleted_certificates")
    op.drop_table("deleted_certificates")

"""Create the identity tables: certificates, policies and their attachments.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from edgewise.cloud.db import UTCDateTime

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

STATUS = sa.Enum("ACTIVE", "INACTIVE", "REVOKED", "PENDING_TRANSFER", name="certificate_status")


def upgrade() -> None:
    """Create the identity tables."""
    op.create_table(
        "certificates",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("certificate_id", sa.String(64), nullable=False),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("serial_hex", sa.String(64), nullable=False),
        sa.Column("common_name", sa.String(128), nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("not_after", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificates")),
        sa.UniqueConstraint("certificate_id", name=op.f("uq_certificates_certificate_id")),
    )
    op.create_table(
        "policies",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policies")),
        sa.UniqueConstraint("name", name=op.f("uq_policies_name")),
    )
    _attachment_table(
        "policy_certificate_attachments", ("policy_id", "policies"), ("certificate_id", "certificates")
    )
    _attachment_table("policy_group_attachments", ("policy_id", "policies"), ("group_id", "thing_groups"))
    _attachment_table("thing_principals", ("thing_id", "things"), ("certificate_id", "certificates"))


def _attachment_table(name: str, first: tuple[str, str], second: tuple[str, str]) -> None:
    """A table joining two others, keyed by both ids, cascading with either, indexed on the second."""
    op.create_table(
        name,
        sa.Column(first[0], sa.Integer(), nullable=False),
        sa.Column(second[0], sa.Integer(), nullable=False),
        sa.Column("attached_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint(first[0], second[0], name=op.f(f"pk_{name}")),
        *(
            sa.ForeignKeyConstraint(
                [column], [f"{table}.id"], name=op.f(f"fk_{name}_{column}_{table}"), ondelete="CASCADE"
            )
            for column, table in (first, second)
        ),
    )
    op.create_index(op.f(f"ix_{name}_{second[0]}"), name, [second[0]])


def downgrade() -> None:
    """Drop the identity tables."""
    op.drop_table("thing_principals")
    op.drop_table("policy_group_attachments")
    op.drop_table("policy_certificate_attachments")
    op.drop_table("policies")
    op.drop_table("certificates")
    STATUS.drop(op.get_bind(), checkfirst=True)

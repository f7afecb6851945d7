"""Create the registry (things, thing groups, memberships) and the API tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from edgewise.cloud.db import UTCDateTime

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

ROLE = sa.Enum("admin", "operator", "read-only", name="api_token_role")


def upgrade() -> None:
    """Create the first tables."""
    op.create_table(
        "things",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("thing_type_name", sa.String(128), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_things")),
        sa.UniqueConstraint("name", name=op.f("uq_things_name")),
    )
    op.create_table(
        "thing_groups",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("dynamic", sa.Boolean(), nullable=False),
        sa.Column("query_string", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_thing_groups")),
        sa.UniqueConstraint("name", name=op.f("uq_thing_groups_name")),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["thing_groups.id"],
            name=op.f("fk_thing_groups_parent_id_thing_groups"),
            ondelete="RESTRICT",
        ),
    )
    op.create_index(op.f("ix_thing_groups_parent_id"), "thing_groups", ["parent_id"])
    op.create_table(
        "thing_group_memberships",
        sa.Column("thing_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("added_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("thing_id", "group_id", name=op.f("pk_thing_group_memberships")),
        sa.ForeignKeyConstraint(
            ["thing_id"],
            ["things.id"],
            name=op.f("fk_thing_group_memberships_thing_id_things"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["thing_groups.id"],
            name=op.f("fk_thing_group_memberships_group_id_thing_groups"),
            ondelete="CASCADE",
        ),
    )
    op.create_index(op.f("ix_thing_group_memberships_group_id"), "thing_group_memberships", ["group_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", ROLE, nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("secret_sha256", name=op.f("uq_api_tokens_secret_sha256")),
    )


def downgrade() -> None:
    """Drop the first tables."""
    op.drop_table("api_tokens")
    op.drop_table("thing_group_memberships")
    op.drop_table("thing_groups")
    op.drop_table("things")
    ROLE.drop(op.get_bind(), checkfirst=True)

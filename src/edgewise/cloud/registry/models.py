"""Registry tables: things, thing groups (static hierarchy or dynamic query) and static memberships."""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from edgewise.cloud.db import Base, UTCDateTime, utcnow


class Thing(Base):
    """A device or gateway known to the cloud."""

    __tablename__ = "things"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128), unique=True)
    thing_type_name: Mapped[str | None] = mapped_column(sa.String(128), default=None)
    attributes: Mapped[dict[str, str]] = mapped_column(sa.JSON, default=dict)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ThingGroup(Base):
    """A named set of things: static (explicit members, in a hierarchy) or dynamic (selected by a query)."""

    __tablename__ = "thing_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128), unique=True)
    # Groups with children cannot be deleted, so the database refuses it too.
    parent_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("thing_groups.id", ondelete="RESTRICT"), default=None, index=True
    )
    description: Mapped[str] = mapped_column(sa.Text, default="")
    attributes: Mapped[dict[str, str]] = mapped_column(sa.JSON, default=dict)
    dynamic: Mapped[bool] = mapped_column(default=False)
    query_string: Mapped[str | None] = mapped_column(sa.Text, default=None)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)

    parent: Mapped[ThingGroup | None] = relationship(remote_side=[id])


class ThingGroupMembership(Base):
    """A thing's membership of a static group."""

    __tablename__ = "thing_group_memberships"

    thing_id: Mapped[int] = mapped_column(sa.ForeignKey("things.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(
        sa.ForeignKey("thing_groups.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)

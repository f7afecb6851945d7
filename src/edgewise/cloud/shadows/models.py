"""The ``thing_shadows`` table: one row per classic (``shadow_name`` ``""``) or named shadow of a thing.

A deleted shadow keeps its row (``deleted`` set, state emptied) so that its version numbering continues, as AWS
IoT's does. ``unpublished`` holds the MQTT messages a REST change owes the devices (``[topic, document]`` pairs)
until the shadow worker has sent them.
"""

from __future__ import annotations

import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from edgewise.cloud.db import Base, UTCDateTime, utcnow


class ThingShadow(Base):
    """A thing's shadow document: state, metadata and version."""

    __tablename__ = "thing_shadows"
    __table_args__ = (sa.UniqueConstraint("thing_name", "shadow_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    thing_name: Mapped[str] = mapped_column(sa.String(128))
    shadow_name: Mapped[str] = mapped_column(sa.String(64), default="")
    state: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    shadow_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", sa.JSON, default=dict)
    version: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    deleted: Mapped[bool] = mapped_column(default=False)
    unpublished: Mapped[list[Any] | None] = mapped_column(sa.JSON(none_as_null=True), default=None)
    updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)

    # Every UPDATE names the version it read (``WHERE version = :read``), so a change made meanwhile by another
    # transaction fails it (StaleDataError) instead of being overwritten, on SQLite as on PostgreSQL.
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}

"""The fleet status table: one row per thing that has reported its health or presence."""

from __future__ import annotations

import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from edgewise.cloud.db import Base, UTCDateTime

# The status rows name the registry's things, which must be on the same metadata to resolve.
from edgewise.cloud.registry import models as _registry_models  # noqa: F401


class DeviceStatus(Base):
    """The latest health and presence a device reported; device timestamps are kept to order late messages."""

    __tablename__ = "device_status"

    thing_id: Mapped[int] = mapped_column(sa.ForeignKey("things.id", ondelete="CASCADE"), primary_key=True)
    connected: Mapped[bool | None] = mapped_column(default=None)
    connectivity_timestamp: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    connectivity_updated_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, default=None)
    overall_status: Mapped[str] = mapped_column(sa.String(16), default="UNKNOWN")
    core_version: Mapped[str] = mapped_column(sa.String(64), default="")
    platform: Mapped[str] = mapped_column(sa.String(64), default="")
    architecture: Mapped[str] = mapped_column(sa.String(64), default="")
    components: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    deployment: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, default=None)
    status_timestamp: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    status_updated_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, default=None)

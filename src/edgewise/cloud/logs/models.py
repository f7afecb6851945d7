"""The device logs table: every log line devices upload, once each."""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from edgewise.cloud.db import Base, UTCDateTime, utcnow

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class DeviceLog(Base):
    """One line of a device's log file.

    ``(thing_name, file_id, offset)`` is unique: a line is where it starts in one file (the device names a file
    across rotations with ``file_id``), so a batch resent after a lost answer is stored once. The id is the
    order of arrival and the cursor of reads; retention deletes by ``received_at``.
    """

    __tablename__ = "device_logs"
    __table_args__ = (
        sa.UniqueConstraint("thing_name", "file_id", "offset", name="uq_device_logs_thing_file_offset"),
        sa.Index("ix_device_logs_thing_component_id", "thing_name", "component", "id"),
        sa.Index("ix_device_logs_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    thing_name: Mapped[str] = mapped_column(sa.String(128))
    #: "System" for the runtime's own log, else the component's name.
    component: Mapped[str] = mapped_column(sa.String(256))
    file: Mapped[str] = mapped_column(sa.String(256))
    file_id: Mapped[str] = mapped_column(sa.String(64))
    offset: Mapped[int] = mapped_column(sa.BigInteger)
    #: When the line says it was written, ms since the epoch; None when the line does not say.
    timestamp_ms: Mapped[int | None] = mapped_column(sa.BigInteger, default=None, nullable=True)
    level: Mapped[str | None] = mapped_column(sa.String(8), default=None, nullable=True)
    message: Mapped[str] = mapped_column(sa.Text)
    received_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)

"""The telemetry tables: every message ingested from devices, and the retention asked for per stream."""

from __future__ import annotations

import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from edgewise.cloud.db import Base, UTCDateTime, utcnow

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class TelemetryMessage(Base):
    """One message from a device: a record of a stream export (with its ``sequence_number``) or a message
    published on a device topic (with its ``topic``, stored under ``stream`` = the topic).

    ``(thing_name, stream, source, sequence_number)`` is unique, so an export resent after a lost acknowledgement
    is stored once, and two device streams exported into one telemetry stream (each numbering its own messages)
    never collide; topic messages have no sequence number, and NULLs stay distinct, so none is ever merged.
    """

    __tablename__ = "telemetry_messages"
    __table_args__ = (
        sa.UniqueConstraint(
            "thing_name",
            "stream",
            "source",
            "sequence_number",
            name="uq_telemetry_messages_thing_stream_source_sequence",
        ),
        sa.Index("ix_telemetry_messages_thing_stream_time", "thing_name", "stream", "timestamp_ms"),
        sa.Index("ix_telemetry_messages_stream_time", "stream", "timestamp_ms"),
    )

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    thing_name: Mapped[str] = mapped_column(sa.String(128))
    stream: Mapped[str] = mapped_column(sa.String(256))
    topic: Mapped[str | None] = mapped_column(sa.String(256), default=None)
    #: The device's message stream an exported record came from ("" for topic messages and rule output).
    source: Mapped[str] = mapped_column(sa.String(255), default="", server_default="")
    sequence_number: Mapped[int | None] = mapped_column(sa.BigInteger, default=None)
    timestamp_ms: Mapped[int] = mapped_column(sa.BigInteger)
    payload: Mapped[bytes] = mapped_column(sa.LargeBinary)
    #: The payload parsed, when it is a JSON object or array, so queries can read its fields.
    payload_json: Mapped[Any] = mapped_column(sa.JSON(none_as_null=True), default=None, nullable=True)
    received_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


class TelemetryRetention(Base):
    """How long, and how much, of a stream's messages the cloud keeps; None means no limit of that kind."""

    __tablename__ = "telemetry_retention"

    stream: Mapped[str] = mapped_column(sa.String(256), primary_key=True)
    max_age_seconds: Mapped[int | None] = mapped_column(sa.Integer, default=None)
    max_bytes: Mapped[int | None] = mapped_column(sa.BigInteger, default=None)
    updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExportedObject(Base):
    """A file a device uploaded through a stream manager S3 export task: the object ``key`` of ``bucket`` in the
    thing's own namespace, its bytes kept in the cloud's object store under their SHA-256.

    ``(thing_name, bucket, key)`` is unique: uploading a key again replaces the object, as S3's PUT does.
    """

    __tablename__ = "exported_objects"
    __table_args__ = (
        sa.UniqueConstraint("thing_name", "bucket", "key", name="uq_exported_objects_thing_bucket_key"),
    )

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    thing_name: Mapped[str] = mapped_column(sa.String(128))
    bucket: Mapped[str] = mapped_column(sa.String(63))
    key: Mapped[str] = mapped_column(sa.String(1024))
    sha256: Mapped[str] = mapped_column(sa.String(64))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    user_metadata: Mapped[dict[str, str]] = mapped_column(sa.JSON, default=dict)
    #: The certificate the device uploaded with.
    certificate_id: Mapped[str] = mapped_column(sa.String(64))
    uploaded_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)

"""The objects devices uploaded through stream manager S3 export tasks: recorded once stored, listed, fetched.

The HTTPS publish listener puts an upload's bytes into the cloud's object store (content-addressed by SHA-256)
and then calls :func:`record_object`, which files it as ``(thing, bucket, key)`` in one transaction: a key
uploaded again points at its new bytes, as an S3 PUT replaces an object. Each thing has its own namespace, so
two devices writing the same bucket and key never overwrite each other. Every function blocks (database I/O).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edgewise.cloud.db import utcnow
from edgewise.cloud.telemetry.models import ExportedObject

MAX_PAGE: Final = 1000


def record_object(
    session: Session,
    *,
    thing_name: str,
    bucket: str,
    key: str,
    sha256: str,
    size: int,
    user_metadata: Mapping[str, str],
    certificate_id: str,
) -> ExportedObject:
    """File the stored bytes ``sha256`` as ``key`` of ``bucket`` for ``thing_name``, replacing any object there.
    Commits. Blocks."""
    row = session.scalar(
        sa.select(ExportedObject).where(
            ExportedObject.thing_name == thing_name,
            ExportedObject.bucket == bucket,
            ExportedObject.key == key,
        )
    )
    if row is None:
        row = ExportedObject(thing_name=thing_name, bucket=bucket, key=key)
        session.add(row)
    row.sha256 = sha256
    row.size = size
    row.user_metadata = dict(user_metadata)
    row.certificate_id = certificate_id
    row.uploaded_at = utcnow()
    session.commit()
    return row


def list_objects(
    session: Session,
    *,
    thing_name: str | None = None,
    bucket: str | None = None,
    prefix: str | None = None,
    after: int | None = None,
    limit: int = MAX_PAGE,
) -> list[ExportedObject]:
    """The objects matching every filter given, by id, from the one after ``after``; at most ``limit``. Blocks."""
    statement = sa.select(ExportedObject).order_by(ExportedObject.id).limit(min(limit, MAX_PAGE))
    if thing_name is not None:
        statement = statement.where(ExportedObject.thing_name == thing_name)
    if bucket is not None:
        statement = statement.where(ExportedObject.bucket == bucket)
    if prefix:
        statement = statement.where(ExportedObject.key.startswith(prefix, autoescape=True))
    if after is not None:
        statement = statement.where(ExportedObject.id > after)
    return list(session.scalars(statement))


def get_object(session: Session, *, thing_name: str, bucket: str, key: str) -> ExportedObject | None:
    """The object ``key`` of ``bucket`` that ``thing_name`` uploaded, if any. Blocks."""
    return session.scalar(
        sa.select(ExportedObject).where(
            ExportedObject.thing_name == thing_name,
            ExportedObject.bucket == bucket,
            ExportedObject.key == key,
        )
    )

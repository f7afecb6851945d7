"""The ``datasets`` table: each dataset's Parquet file (kept in the artifact store under its SHA-256), how it was
made and what it holds."""

from __future__ import annotations

import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from edgewise.cloud.db import Base, UTCDateTime, utcnow


class Dataset(Base):
    """A named table for training: built from telemetry (``spec`` says how) or uploaded as a file.

    ``source`` is ``{"kind": "telemetry", "selection": ..., "messages": N}`` or ``{"kind": "file", "fileName":
    ..., "fileBytes": N}``; ``summary`` is :meth:`edgewise.ml.datasets.DatasetSummary.to_json`.
    """

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    rows: Mapped[int] = mapped_column(sa.BigInteger)
    spec: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, default=None, nullable=True)
    source: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    summary: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(sa.String(128))

"""The drift tables: one monitor per model (what to compare, how often, what to do on confirmed drift) and the
events its checks record (append-only, newest last)."""

from __future__ import annotations

import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from edgewise.cloud.db import Base, UTCDateTime, utcnow

_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class DriftMonitor(Base):
    """How the capture records of the version ``alias`` of ``model_name`` points at are checked for drift.

    ``drifted_checks`` counts the consecutive drifted checks of ``streak_version`` (a new version starts from 0);
    drift is confirmed once it reaches ``confirm_checks``.
    """

    __tablename__ = "drift_monitors"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    alias: Mapped[str] = mapped_column(sa.String(64))
    stream: Mapped[str] = mapped_column(sa.String(256))
    window_ms: Mapped[int] = mapped_column(sa.BigInteger)
    min_rows: Mapped[int] = mapped_column(sa.Integer)
    psi_threshold: Mapped[float] = mapped_column(sa.Float)
    p_value: Mapped[float] = mapped_column(sa.Float)
    interval_seconds: Mapped[int] = mapped_column(sa.Integer)
    confirm_checks: Mapped[int] = mapped_column(sa.Integer)
    retrain: Mapped[bool] = mapped_column(sa.Boolean)
    #: The telemetry a retraining dataset is built from (ending now); None: ``window_ms``.
    retrain_window_ms: Mapped[int | None] = mapped_column(sa.BigInteger, default=None)
    auto_promote: Mapped[bool] = mapped_column(sa.Boolean)
    enabled: Mapped[bool] = mapped_column(sa.Boolean)
    drifted_checks: Mapped[int] = mapped_column(sa.Integer, default=0)
    streak_version: Mapped[str | None] = mapped_column(sa.String(32), default=None)
    last_checked_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, default=None)
    updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(sa.String(128))


class DriftEvent(Base):
    """One check: how many capture records it read, what :func:`edgewise.ml.drift.compare` found (``report`` is
    :meth:`DriftReport.to_json`, empty when too few records), whether drift is confirmed, and what followed: the
    retraining job, the challenger it registered, whether that became champion."""

    __tablename__ = "drift_events"
    __table_args__ = (sa.Index("ix_drift_events_model_id", "model_name", "id"),)

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(sa.String(64))
    version: Mapped[str] = mapped_column(sa.String(32))
    alias: Mapped[str] = mapped_column(sa.String(64))
    checked_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    rows: Mapped[int] = mapped_column(sa.Integer)
    drifted: Mapped[bool] = mapped_column(sa.Boolean)
    confirmed: Mapped[bool] = mapped_column(sa.Boolean)
    report: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    #: Why the check compared nothing, or why confirmed drift started no retraining.
    note: Mapped[str | None] = mapped_column(sa.Text, default=None)
    retraining_job_id: Mapped[str | None] = mapped_column(sa.String(36), default=None, index=True)
    challenger_version: Mapped[str | None] = mapped_column(sa.String(32), default=None)
    promoted: Mapped[bool] = mapped_column(sa.Boolean, default=False)

"""The deployments table: one row per deployment (a revision of what a target runs) and the job that carries it."""

from __future__ import annotations

import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from edgewise.cloud.db import Base, UTCDateTime, utcnow


class Deployment(Base):
    """A deployment: the request as given, the document devices get, its target's revision and its job."""

    __tablename__ = "deployments"
    __table_args__ = (
        sa.UniqueConstraint("target_kind", "target_name", "revision", name="uq_deployments_target_revision"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    deployment_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(256), default="")
    #: ``thing`` or ``group``, as in :class:`edgewise.cloud.jobs.targets.Target`.
    target_kind: Mapped[str] = mapped_column(sa.String(8))
    target_name: Mapped[str] = mapped_column(sa.String(128), index=True)
    revision: Mapped[int] = mapped_column()
    #: The components as requested: ``{name: {componentVersion, configurationUpdate, runWith}}``.
    components: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    deployment_policies: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    iot_job_configuration: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    #: The device-side document the job carries (docs/device-protocol.md).
    document: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    job_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    #: Set when an operator cancelled it, or a newer deployment to the same target replaced it.
    ended_as: Mapped[str | None] = mapped_column(sa.String(16), default=None)
    is_latest_for_target: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)

"""The ``model_alias_events`` table: every move of a model alias, kept for good (append-only).

MLflow holds the aliases themselves; this table says who pointed an alias where, and when, so that "which
version was champion last Tuesday" has an answer after the alias moved on.
"""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from edgewise.cloud.db import Base, UTCDateTime, utcnow


class ModelAliasEvent(Base):
    """One alias move: set to ``version`` (from ``previous_version``), or deleted (``version`` is None)."""

    __tablename__ = "model_alias_events"
    __table_args__ = (sa.Index("ix_model_alias_events_model_alias", "model_name", "alias", "id"),)

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    model_name: Mapped[str] = mapped_column(sa.String(64))
    alias: Mapped[str] = mapped_column(sa.String(64))
    #: The version the alias points to after the move; None when it was deleted.
    version: Mapped[str | None] = mapped_column(sa.String(32), default=None)
    previous_version: Mapped[str | None] = mapped_column(sa.String(32), default=None)
    #: The API token that moved it.
    actor: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)

"""The ``rules`` table: routing rules as AWS IoT's ``TopicRulePayload`` keeps them, with their counters.

``actions`` and ``error_action`` hold the validated action objects as the API shows them (camelCase JSON);
``matched``, ``actions_failed`` and ``last_error`` are added to by the rules worker now and then, not per message.
"""

from __future__ import annotations

import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from edgewise.cloud.db import Base, UTCDateTime, utcnow

LAST_ERROR_MAX_LENGTH = 1024


class Rule(Base):
    """A routing rule: SQL over the broker's messages, and the actions its output goes to."""

    __tablename__ = "rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128), unique=True)
    sql: Mapped[str] = mapped_column(sa.Text)
    sql_version: Mapped[str] = mapped_column(sa.String(16))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    actions: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    error_action: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, default=None)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Messages whose topic and WHERE matched, so that the actions ran.
    matched: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    actions_failed: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    last_error: Mapped[str | None] = mapped_column(sa.String(LAST_ERROR_MAX_LENGTH), default=None)
    last_error_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, default=None)

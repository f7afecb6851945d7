"""The API token table: a name, a role and the SHA-256 of the secret (never the secret itself)."""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from edgewise.cloud.auth.roles import Role
from edgewise.cloud.db import Base, UTCDateTime, utcnow


class ApiToken(Base):
    """A bearer token for the REST API."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128), unique=True)
    role: Mapped[Role] = mapped_column(
        sa.Enum(Role, name="api_token_role", values_callable=lambda roles: [role.value for role in roles])
    )
    secret_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime.datetime | None] = mapped_column(UTCDateTime, default=None)

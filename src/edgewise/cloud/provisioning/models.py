"""Provisioning tables: templates (with their pre-provisioning hook), and the ownership tokens that bind a
claimed certificate to its device."""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from edgewise.cloud.db import Base, UTCDateTime, utcnow

# Tokens name the identity tables, which must be on the same metadata to resolve.
from edgewise.cloud.identity import models as _identity_models  # noqa: F401


class ProvisioningTemplate(Base):
    """A named fleet provisioning template; ``body`` is the template JSON as text."""

    __tablename__ = "provisioning_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(36), unique=True)
    description: Mapped[str] = mapped_column(sa.String(500), default="")
    body: Mapped[str] = mapped_column(sa.Text)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    #: The pre-provisioning hook's URL and input version; both ``None`` when the template has none.
    hook_url: Mapped[str | None] = mapped_column(sa.String(2048), default=None)
    hook_payload_version: Mapped[str | None] = mapped_column(sa.String(16), default=None)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


class OwnershipToken(Base):
    """A certificate ownership token: only its SHA-256 is kept, so a database reader cannot replay it."""

    __tablename__ = "certificate_ownership_tokens"

    token_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    certificate_id: Mapped[int] = mapped_column(
        sa.ForeignKey("certificates.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime)

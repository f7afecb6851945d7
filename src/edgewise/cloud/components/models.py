"""Component registry tables: published component versions and the artifacts each one references."""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from edgewise.cloud.db import Base, UTCDateTime, utcnow


class ComponentVersion(Base):
    """One published, immutable version of a component, with its stored recipe (digests filled in)."""

    __tablename__ = "component_versions"
    __table_args__ = (sa.UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128), index=True)
    version: Mapped[str] = mapped_column(sa.String(64))
    #: The recipe as JSON text, in the author's key order, with every artifact's Digest and Algorithm.
    recipe: Mapped[str] = mapped_column(sa.Text)
    description: Mapped[str | None] = mapped_column(sa.Text, default=None)
    #: The recipe's ComponentPublisher.
    publisher: Mapped[str | None] = mapped_column(sa.String(256), default=None)
    #: The name of the API token that published it.
    published_by: Mapped[str] = mapped_column(sa.String(128))
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)

    artifacts: Mapped[list[ComponentArtifact]] = relationship(
        back_populates="component_version",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ComponentArtifact.id",
    )


class ComponentArtifact(Base):
    """An artifact ``Uri`` of a component version and the stored file it stands for."""

    __tablename__ = "component_artifacts"
    __table_args__ = (sa.UniqueConstraint("component_version_id", "uri"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    component_version_id: Mapped[int] = mapped_column(
        sa.ForeignKey("component_versions.id", ondelete="CASCADE")
    )
    uri: Mapped[str] = mapped_column(sa.Text)
    file_name: Mapped[str] = mapped_column(sa.String(255))
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    #: Where the store keeps the file (a path under its directory, or an object key).
    storage_key: Mapped[str] = mapped_column(sa.String(1024))

    component_version: Mapped[ComponentVersion] = relationship(back_populates="artifacts")

"""Identity tables: device certificates, policies, and what they are attached to.

Attachments cascade with the thing or group they name (the registry deletes those without knowing about
identity); certificates and policies themselves refuse deletion while attached, as AWS IoT does. A deleted
certificate leaves a :class:`DeletedCertificate` behind until it expires: the CA signed it, so only the CRL
keeps a device from presenting it again.
"""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from edgewise.cloud.db import Base, UTCDateTime, utcnow
from edgewise.cloud.identity.certificates import CertificateStatus

# The foreign keys name the registry's tables, which must be on the same metadata to resolve.
from edgewise.cloud.registry import models as _registry_models  # noqa: F401


class Certificate(Base):
    """A device certificate issued by the cloud's CA; the private key is never stored."""

    __tablename__ = "certificates"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Hex SHA-256 of the DER encoding, AWS IoT's ``certificateId``.
    certificate_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    pem: Mapped[str] = mapped_column(sa.Text)
    # Serials are up to 159 bits, too large for BIGINT.
    serial_hex: Mapped[str] = mapped_column(sa.String(64))
    common_name: Mapped[str] = mapped_column(sa.String(128))
    status: Mapped[CertificateStatus] = mapped_column(
        sa.Enum(
            CertificateStatus,
            name="certificate_status",
            values_callable=lambda statuses: [status.value for status in statuses],
        )
    )
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    not_after: Mapped[datetime.datetime] = mapped_column(UTCDateTime)


class DeletedCertificate(Base):
    """A deleted certificate, kept until it expires so the CRL goes on refusing it (it can never return)."""

    __tablename__ = "deleted_certificates"

    certificate_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    serial_hex: Mapped[str] = mapped_column(sa.String(64))
    common_name: Mapped[str] = mapped_column(sa.String(128))
    not_after: Mapped[datetime.datetime] = mapped_column(UTCDateTime, index=True)
    deleted_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Policy(Base):
    """A named AWS IoT-style policy document, stored as the JSON text it was given."""

    __tablename__ = "policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128), unique=True)
    document: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PolicyCertificateAttachment(Base):
    """A policy attached to a certificate: it applies to whoever connects with that certificate."""

    __tablename__ = "policy_certificate_attachments"

    policy_id: Mapped[int] = mapped_column(sa.ForeignKey("policies.id", ondelete="CASCADE"), primary_key=True)
    certificate_id: Mapped[int] = mapped_column(
        sa.ForeignKey("certificates.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    attached_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PolicyGroupAttachment(Base):
    """A policy attached to a thing group: it applies to the group's things and those of its child groups."""

    __tablename__ = "policy_group_attachments"

    policy_id: Mapped[int] = mapped_column(sa.ForeignKey("policies.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(
        sa.ForeignKey("thing_groups.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    attached_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ThingPrincipal(Base):
    """A certificate attached to a thing: a device presenting it acts as that thing."""

    __tablename__ = "thing_principals"

    thing_id: Mapped[int] = mapped_column(sa.ForeignKey("things.id", ondelete="CASCADE"), primary_key=True)
    certificate_id: Mapped[int] = mapped_column(
        sa.ForeignKey("certificates.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    attached_at: Mapped[datetime.datetime] = mapped_column(UTCDateTime, default=utcnow)

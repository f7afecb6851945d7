"""Device certificates as the rest of the cloud stores them: status, id, serial and validity, all plain values.

A certificate's id is the hex SHA-256 of its DER encoding, as AWS IoT computes ``certificateId``. Serial
numbers are 159-bit integers (too large for a SQL BIGINT): persist :attr:`IssuedCertificate.serial_hex`.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from edgewise.cloud.identity.errors import CertificateError, CertificateStatusError


class CertificateStatus(enum.StrEnum):
    """Where a certificate is in its life; the values are AWS IoT's spellings."""

    #: Usable: the device may connect with it.
    ACTIVE = "ACTIVE"
    #: Switched off by an operator; can be activated again.
    INACTIVE = "INACTIVE"
    #: Permanently withdrawn; no status change leads out of it.
    REVOKED = "REVOKED"
    #: Being handed to another account; cannot connect until the transfer is accepted or rejected.
    PENDING_TRANSFER = "PENDING_TRANSFER"

    @property
    def can_connect(self) -> bool:
        """Whether a device presenting this certificate may connect."""
        return self is CertificateStatus.ACTIVE

    @property
    def is_final(self) -> bool:
        """Whether no further status change is possible."""
        return self is CertificateStatus.REVOKED

    def can_change_to(self, target: CertificateStatus) -> bool:
        """Whether the lifecycle allows going from this status to ``target`` (staying put is allowed)."""
        return target is self or target in _TRANSITIONS[self]


_TRANSITIONS: dict[CertificateStatus, frozenset[CertificateStatus]] = {
    CertificateStatus.ACTIVE: frozenset(
        {CertificateStatus.INACTIVE, CertificateStatus.REVOKED, CertificateStatus.PENDING_TRANSFER}
    ),
    CertificateStatus.INACTIVE: frozenset(
        {CertificateStatus.ACTIVE, CertificateStatus.REVOKED, CertificateStatus.PENDING_TRANSFER}
    ),
    CertificateStatus.PENDING_TRANSFER: frozenset(
        {CertificateStatus.ACTIVE, CertificateStatus.INACTIVE, CertificateStatus.REVOKED}
    ),
    CertificateStatus.REVOKED: frozenset(),
}


def change_status(current: CertificateStatus, target: CertificateStatus) -> CertificateStatus:
    """Return ``target`` if the lifecycle allows the change.

    Raises:
        CertificateStatusError: the change is not allowed (e.g. anything out of REVOKED).
    """
    if not current.can_change_to(target):
        raise CertificateStatusError(current, target)
    return target


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate and the facts the registry keeps about it.

    ``common_name`` is the subject CN; for device certificates it is the thing name, which Mosquitto's
    ``use_identity_as_username`` turns into the MQTT user name. Times are timezone-aware UTC.
    """

    certificate_pem: str
    certificate_id: str
    serial: int
    common_name: str
    not_before: datetime.datetime
    not_after: datetime.datetime

    @property
    def serial_hex(self) -> str:
        """The serial number in lowercase hex, the form to store and to show."""
        return format(self.serial, "x")

    @classmethod
    def from_pem(cls, certificate_pem: str, *, field: str = "certificate") -> IssuedCertificate:
        """Read the facts out of a PEM certificate.

        Raises:
            CertificateError: ``field`` is not a PEM X.509 certificate.
        """
        return cls.from_x509(load_certificate(certificate_pem, field=field))

    @classmethod
    def from_x509(cls, certificate: x509.Certificate) -> IssuedCertificate:
        """The facts about an already parsed certificate."""
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        common_name = names[0].value if names else ""
        return cls(
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            certificate_id=certificate_id(certificate),
            serial=certificate.serial_number,
            common_name=common_name
            if isinstance(common_name, str)
            else common_name.decode("utf-8", "replace"),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
        )


def certificate_id(certificate: x509.Certificate) -> str:
    """AWS IoT's certificate id: the lowercase hex SHA-256 of the DER encoding."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def load_certificate(certificate_pem: str, *, field: str = "certificate") -> x509.Certificate:
    """Parse one PEM certificate.

    Raises:
        CertificateError: naming ``field`` when the text is not a PEM X.509 certificate.
    """
    try:
        return x509.load_pem_x509_certificate(certificate_pem.encode("utf-8"))
    except ValueError as exc:
        raise CertificateError(field, f"not a PEM X.509 certificate ({exc})") from exc

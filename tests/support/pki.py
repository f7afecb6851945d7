"""The tests' one throwaway certificate authority: server and client certificates, a CRL, and CSRs.

Tests that run a real Mosquitto, the cloud's managed broker or the runtime's TLS clients all take their
certificates from :class:`CertificateAuthority`. It writes ``<name>.pem.crt``/``<name>.pem.key`` as AWS IoT
does, remembers each certificate's serial, and keeps ``crl.pem`` current for the revocation tests.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Credentials:
    """A certificate, its key and the CA that signed it, as PEM files; ``serial`` is 0 where unknown."""

    certificate: Path
    private_key: Path
    ca: Path
    serial: int


class CredentialIssuer(Protocol):
    """What servers under test need of a CA: its certificate file, and certificates it issues.

    :class:`CertificateAuthority` is one; a test of the cloud's own CA wraps that one to fit.
    """

    @property
    def certificate(self) -> Path: ...

    def issue(self, common_name: str, *, server: bool = False) -> Credentials: ...


class CertificateAuthority:
    """A throwaway CA (EC P-256) that issues server and client certificates into ``directory``;
    :meth:`revoke` rewrites ``crl.pem`` (empty until then)."""

    def __init__(self, directory: Path, name: str = "Edgewise Test CA") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self._certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.certificate = directory / "ca.pem"
        self.certificate.write_bytes(self._certificate.public_bytes(serialization.Encoding.PEM))
        self.crl = directory / "crl.pem"
        self._revoked: set[int] = set()
        self.revoke()

    def issue(self, common_name: str, *, server: bool = False) -> Credentials:
        """A certificate for ``common_name`` (a server one is valid for localhost and 127.0.0.1)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        serial = x509.random_serial_number()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._certificate.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        certificate = builder.sign(self._key, hashes.SHA256())
        stem = self.directory / common_name.replace("/", "_")
        cert_path = stem.with_suffix(".pem.crt")
        key_path = stem.with_suffix(".pem.key")
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return Credentials(cert_path, key_path, self.certificate, serial)

    def revoke(self, *revoked: Credentials) -> None:
        """Add ``revoked`` to the revoked set and rewrite the CRL (an empty one when none)."""
        self._revoked.update(credentials.serial for credentials in revoked)
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._certificate.subject)
            .last_update(now - datetime.timedelta(minutes=1))
            .next_update(now + datetime.timedelta(days=1))
        )
        for serial in sorted(self._revoked):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
            )
        self.crl.write_bytes(
            builder.sign(self._key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        )


def signing_request(common_name: str, key: CertificateIssuerPrivateKeyTypes | None = None) -> str:
    """A PEM certificate signing request for ``common_name``, signed by ``key`` (a new EC P-256 one if none)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    # Edwards-curve signatures hash internally and take no separate digest.
    digest = None if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey) else hashes.SHA256()
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, digest)
    )
    return request.public_bytes(serialization.Encoding.PEM).decode("ascii")

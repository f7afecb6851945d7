"""The core device's own certificate authority and the server certificate of its client-device broker.

The local CA (an EC P-256 key, kept ``0600`` in the Auth component's work folder, and a self-signed certificate)
is made once and kept across restarts, so client devices that cached it from discovery keep trusting the core.
It signs the gate's server certificate, whose subject alternative names are ``localhost``, ``127.0.0.1``, the
host's own addresses and the connectivity addresses the IP detector reports. The server certificate is issued
again when 80 % of its validity (``serverCertificateValiditySeconds``) has passed and whenever its names change.
Time is read from an injected clock (seconds since the epoch).
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgewise.runtime.files import write_atomically

logger = logging.getLogger(__name__)

#: The share of a server certificate's validity after which it is replaced.
ROTATE_AT: Final = 0.8
CA_VALIDITY: Final = datetime.timedelta(days=5 * 365)
#: Certificates are valid from a little before they are made, for clocks that differ slightly.
_BACKDATE: Final = datetime.timedelta(minutes=5)
_CA_KEY: Final = "ca.key"
_CA_CERTIFICATE: Final = "ca.pem"
_SERVER_KEY: Final = "server.key"
_SERVER_CERTIFICATE: Final = "server.pem"


def host_names() -> list[str]:
    """``localhost``, ``127.0.0.1`` and this host's name and addresses. Blocks (name resolution)."""
    names = ["localhost", "127.0.0.1"]
    host = socket.gethostname()
    names.append(host)
    try:
        for *_, address in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP):
            names.append(str(address[0]))
    except OSError:
        logger.warning("The addresses of host %r cannot be resolved; the server certificate omits them", host)
    return sorted(set(names))


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _time(epoch: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC)


@dataclass(frozen=True)
class ServerCertificate:
    """The current server certificate: its files, its names and when it must be replaced."""

    certificate: Path
    key: Path
    names: tuple[str, ...]
    rotate_at: float  #: seconds since the epoch


class CoreCertificates:
    """The local CA and the server certificate, as files in ``directory``. Blocking methods say so."""

    def __init__(self, directory: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self._clock = clock
        self._ca_key: ec.EllipticCurvePrivateKey | None = None
        self._ca: x509.Certificate | None = None
        self.server: ServerCertificate | None = None

    @property
    def ca_file(self) -> Path:
        return self.directory / _CA_CERTIFICATE

    @property
    def ca_pem(self) -> str:
        """The local CA certificate (PEM), what discovery hands to client devices."""
        if self._ca is None:
            raise RuntimeError("The local CA is not loaded; call open() first")
        return self._ca.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def open(self) -> None:
        """Load the local CA, making it the first time. Blocks (file I/O, key generation)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key_path, certificate_path = self.directory / _CA_KEY, self.ca_file
        if key_path.exists() and certificate_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{key_path} does not hold an EC private key")
            self._ca_key, self._ca = key, x509.load_pem_x509_certificate(certificate_path.read_bytes())
            return
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Edgewise core device local CA")])
        now = _time(self._clock())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        write_atomically(key_path, _key_pem(key), mode=0o600)
        write_atomically(certificate_path, certificate.public_bytes(serialization.Encoding.PEM))
        self._ca_key, self._ca = key, certificate
        logger.info("Made the core device's local CA in %s", self.directory)

    def needs_server_certificate(self, names: Iterable[str]) -> bool:
        """Whether the server certificate is missing, due for rotation, or has other names than ``names``."""
        server = self.server
        return (
            server is None or self._clock() >= server.rotate_at or server.names != tuple(sorted(set(names)))
        )

    def issue_server_certificate(self, names: Iterable[str], validity: int) -> ServerCertificate:
        """A new server key and certificate for ``names``, valid ``validity`` seconds. Blocks (file I/O)."""
        if self._ca_key is None or self._ca is None:
            raise RuntimeError("The local CA is not loaded; call open() first")
        chosen = tuple(sorted(set(names)))
        key = ec.generate_private_key(ec.SECP256R1())
        issued = self._clock()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(self._ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_time(issued) - _BACKDATE)
            .not_valid_after(_time(issued + validity))
            .add_extension(
                x509.SubjectAlternativeName([_general_name(name) for name in chosen]), critical=False
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()), critical=False
            )
            .sign(self._ca_key, hashes.SHA256())
        )
        key_path, certificate_path = self.directory / _SERVER_KEY, self.directory / _SERVER_CERTIFICATE
        write_atomically(key_path, _key_pem(key), mode=0o600)
        write_atomically(certificate_path, certificate.public_bytes(serialization.Encoding.PEM))
        self.server = ServerCertificate(certificate_path, key_path, chosen, issued + ROTATE_AT * validity)
        logger.info(
            "Issued the client-device broker's server certificate for %s, valid %d s",
            ", ".join(chosen),
            validity,
        )
        return self.server


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

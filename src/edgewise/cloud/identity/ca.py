"""The cloud's certificate authority: issues device and broker certificates and the revocation list.

Keys are EC P-256: the signatures and TLS handshakes are several times cheaper than RSA 2048 (it matters
when hundreds of devices reconnect at once), the keys and certificates are small, and OpenSSL (Mosquitto),
the AWS CRT (awsiotsdk) and AWS IoT itself all accept them. A loaded CA may also hold an RSA key.

Device certificates carry the thing name as subject CN, so that Mosquitto's ``use_identity_as_username``
makes the MQTT user name the thing name. The CN always comes from the caller, never from a CSR: a device
must not choose whose identity it gets.

Usage::

    ca = CertificateAuthority.create("Edgewise Root CA", valid_days=3650)
    issued = ca.sign_csr(csr_pem, common_name="sensor-1", valid_days=365)
    store(ca.certificate_pem, ca.private_key_pem, issued.certificate_id, issued.certificate_pem)
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgewise.cloud.identity.certificates import IssuedCertificate, load_certificate
from edgewise.cloud.identity.errors import CertificateError

Clock = Callable[[], datetime.datetime]
CaPrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

#: RFC 5280's upper bound for a CN (ub-common-name); longer thing names cannot be a certificate's CN.
MAX_COMMON_NAME_LENGTH = 64
#: Device keys AWS IoT accepts, and so do we.
ACCEPTED_CURVES = ("secp256r1", "secp384r1", "secp521r1")
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 4096

# Devices' clocks drift; a certificate valid from "now" would be refused by a device a minute behind.
_BACKDATE = datetime.timedelta(minutes=5)
_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class CertificateAuthority:
    """A root CA held in memory: its certificate and key, both persistable as PEM text."""

    def __init__(self, certificate: x509.Certificate, key: CaPrivateKey, *, clock: Clock = _utc_now) -> None:
        """Prefer :meth:`create` or :meth:`load`, which check their input."""
        self._certificate = certificate
        self._key = key
        self._clock = clock

    @classmethod
    def create(
        cls, common_name: str, *, valid_days: int = 3650, clock: Clock = _utc_now
    ) -> CertificateAuthority:
        """A new root CA with a fresh EC P-256 key and a self-signed certificate.

        Raises:
            CertificateError: a bad ``common_name`` or ``valid_days``.
        """
        _check_common_name(common_name, field="common_name", device=False)
        _check_valid_days(valid_days)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = clock()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + datetime.timedelta(days=valid_days))
            # path_length=0: this CA signs end-entity certificates only, never another CA.
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key, clock=clock)

    @classmethod
    def load(
        cls, certificate_pem: str, private_key_pem: str, *, clock: Clock = _utc_now
    ) -> CertificateAuthority:
        """The CA stored as ``certificate_pem`` and ``private_key_pem`` (unencrypted PKCS#8 or traditional).

        Raises:
            CertificateError: either text does not parse, the key does not belong to the certificate, or
                the certificate is not a CA certificate.
        """
        certificate = load_certificate(certificate_pem, field="certificate_pem")
        try:
            key = serialization.load_pem_private_key(private_key_pem.encode("utf-8"), password=None)
        except (ValueError, TypeError) as exc:
            raise CertificateError("private_key_pem", f"not an unencrypted PEM private key ({exc})") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise CertificateError(
                "private_key_pem", f"a {type(key).__name__} cannot sign here; use an EC or RSA key"
            )
        if key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) != certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            raise CertificateError("private_key_pem", "does not belong to the certificate in certificate_pem")
        try:
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise CertificateError(
                "certificate_pem", "is not a CA certificate (basicConstraints CA:TRUE missing)"
            )
        return cls(certificate, key, clock=clock)

    @property
    def certificate(self) -> x509.Certificate:
        return self._certificate

    @property
    def certificate_pem(self) -> str:
        """The CA certificate, for devices' and the broker's trust stores."""
        return self._certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @property
    def private_key_pem(self) -> str:
        """The CA key, unencrypted PKCS#8: store it with owner-only permissions."""
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")

    def sign_csr(self, csr_pem: str, *, common_name: str, valid_days: int = 365) -> IssuedCertificate:
        """A device certificate for the key in ``csr_pem``, with subject CN ``common_name`` (the thing name).

        The CSR's own subject and extensions are ignored: only its public key is used, after its
        signature proves the requester holds the private key.

        Raises:
            CertificateError: the CSR does not parse, its signature does not verify, its key is of a
                type or size we refuse, or ``common_name``/``valid_days`` is bad.
        """
        _check_common_name(common_name, field="common_name", device=True)
        _check_valid_days(valid_days)
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode("utf-8"))
        except ValueError as exc:
            raise CertificateError("csr", f"not a PEM certificate signing request ({exc})") from exc
        try:
            signature_valid = csr.is_signature_valid
            public_key = _device_key(csr.public_key())
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise CertificateError("csr", f"its key or signature cannot be read ({exc})") from exc
        if not signature_valid:
            raise CertificateError("csr", "its signature does not verify against its own public key")
        return self._issue(public_key, common_name, valid_days=valid_days, server_names=())

    def issue_with_new_key(self, common_name: str, *, valid_days: int = 365) -> tuple[IssuedCertificate, str]:
        """A fresh EC P-256 key pair and a device certificate for it, as AWS ``CreateKeysAndCertificate``.

        Returns:
            The certificate and the private key as unencrypted PKCS#8 PEM (shown once; never store it).

        Raises:
            CertificateError: a bad ``common_name`` or ``valid_days``.
        """
        _check_common_name(common_name, field="common_name", device=True)
        _check_valid_days(valid_days)
        key = ec.generate_private_key(ec.SECP256R1())
        issued = self._issue(key.public_key(), common_name, valid_days=valid_days, server_names=())
        return issued, _private_key_pem(key)

    def server_certificate(
        self, names: Sequence[str], *, valid_days: int = 365
    ) -> tuple[IssuedCertificate, str]:
        """A TLS server certificate (and its new key) for the broker, valid for every DNS name or IP in
        ``names``; the first one is also the CN.

        Raises:
            CertificateError: ``names`` is empty or holds something that is neither a DNS name nor an IP.
        """
        if not names:
            raise CertificateError("names", "at least one DNS name or IP address is required")
        alternative: list[x509.GeneralName] = []
        for index, name in enumerate(names):
            try:
                alternative.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                if not _DNS_NAME.match(name):
                    raise CertificateError(
                        f"names[{index}]", f"{name!r} is neither a DNS name nor an IP address"
                    ) from None
                alternative.append(x509.DNSName(name))
        _check_common_name(names[0], field="names[0]", device=False)
        _check_valid_days(valid_days)
        key = ec.generate_private_key(ec.SECP256R1())
        issued = self._issue(key.public_key(), names[0], valid_days=valid_days, server_names=alternative)
        return issued, _private_key_pem(key)

    def verify(self, certificate_pem: str) -> IssuedCertificate:
        """Check that ``certificate_pem`` was signed by this CA and is valid now; return its facts.

        Raises:
            CertificateError: it does not parse, another CA issued it, or it is expired or not yet valid.
        """
        certificate = load_certificate(certificate_pem)
        try:
            certificate.verify_directly_issued_by(self._certificate)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise CertificateError(
                "certificate", f"was not issued by this certificate authority ({self._subject_text()})"
            ) from exc
        now = self._clock()
        issued = IssuedCertificate.from_x509(certificate)
        if not issued.not_before <= now <= issued.not_after:
            raise CertificateError(
                "certificate",
                f"is valid from {issued.not_before.isoformat()} to {issued.not_after.isoformat()}, "
                f"not at {now.isoformat()}",
            )
        return issued

    def build_crl(
        self, revoked_serials: Iterable[int], *, held_serials: Iterable[int] = (), valid_days: int = 365
    ) -> str:
        """A PEM certificate revocation list for Mosquitto's ``crlfile``.

        ``revoked_serials`` (REVOKED certificates, and deleted ones until they expire) are listed for good;
        ``held_serials`` (INACTIVE or PENDING_TRANSFER) with the reversible reason ``certificateHold``. OpenSSL refuses every client
        once the CRL's next update has passed, so the default lifetime is long: rebuild it whenever a
        status changes and when the broker starts.

        Raises:
            CertificateError: a negative serial or a bad ``valid_days``.
        """
        _check_valid_days(valid_days)
        now = self._clock()
        revoked = dict.fromkeys(_serials(revoked_serials, "revoked_serials"), x509.ReasonFlags.unspecified)
        for serial in _serials(held_serials, "held_serials"):
            revoked.setdefault(serial, x509.ReasonFlags.certificate_hold)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._certificate.subject)
            .last_update(now - _BACKDATE)
            .next_update(now + datetime.timedelta(days=valid_days))
            # Readers take the higher CRL number as newer; the build time in ms keeps it increasing.
            .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            )
        )
        for serial, reason in sorted(revoked.items()):
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(now - _BACKDATE)
                .add_extension(x509.CRLReason(reason), critical=False)
                .build()
            )
            builder = builder.add_revoked_certificate(entry)
        crl = builder.sign(self._key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def _issue(
        self,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        common_name: str,
        *,
        valid_days: int,
        server_names: Sequence[x509.GeneralName],
    ) -> IssuedCertificate:
        now = self._clock()
        not_after = min(now + datetime.timedelta(days=valid_days), self._certificate.not_valid_after_utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self._certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                _key_usage(cert_sign=False, rsa_key=isinstance(public_key, rsa.RSAPublicKey)), critical=True
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            )
        )
        if server_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(server_names)), critical=False)
        return IssuedCertificate.from_x509(builder.sign(self._key, hashes.SHA256()))

    def _subject_text(self) -> str:
        return self._certificate.subject.rfc4514_string()


def _key_usage(*, cert_sign: bool, rsa_key: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        # RSA key exchange (non-ECDHE TLS suites) encrypts the premaster secret with the certificate's key.
        key_encipherment=rsa_key,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _private_key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def _check_common_name(common_name: str, *, field: str, device: bool) -> None:
    if not isinstance(common_name, str) or not common_name:
        raise CertificateError(field, "must be a non-empty string")
    if len(common_name) > MAX_COMMON_NAME_LENGTH:
        raise CertificateError(
            field,
            f"{common_name!r} is {len(common_name)} characters; a certificate CN holds at most "
            f"{MAX_COMMON_NAME_LENGTH}",
        )
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in common_name):
        raise CertificateError(field, f"{common_name!r} contains a control character")
    # The CN becomes the MQTT user name, and user names with wildcards or levels break ACL patterns.
    if device and any(char in common_name for char in "+#/"):
        raise CertificateError(
            field, f"{common_name!r} contains '+', '#' or '/', which a device name may not"
        )


def _check_valid_days(valid_days: int) -> None:
    if isinstance(valid_days, bool) or not isinstance(valid_days, int) or valid_days < 1:
        raise CertificateError("valid_days", f"must be a positive whole number of days, not {valid_days!r}")
    if valid_days > 36500:
        raise CertificateError("valid_days", f"{valid_days} is more than 100 years")


def _device_key(public_key: object) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in ACCEPTED_CURVES:
            raise CertificateError(
                "csr",
                f"EC curve {public_key.curve.name} is not accepted; use one of {', '.join(ACCEPTED_CURVES)}",
            )
        return public_key
    if isinstance(public_key, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= public_key.key_size <= MAX_RSA_BITS:
            raise CertificateError(
                "csr",
                f"RSA key of {public_key.key_size} bits is not accepted; use {MIN_RSA_BITS} to {MAX_RSA_BITS} bits",
            )
        return public_key
    raise CertificateError(
        "csr", f"{type(public_key).__name__.lstrip('_')} keys are not accepted; use an EC (P-256) or RSA key"
    )


def _serials(serials: Iterable[int], field: str) -> list[int]:
    result = []
    for serial in serials:
        if isinstance(serial, bool) or not isinstance(serial, int) or serial < 1:
            raise CertificateError(
                field, f"{serial!r} is not a certificate serial number (a positive integer)"
            )
        result.append(serial)
    return result

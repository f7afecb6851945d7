"""The device side of fleet provisioning by claim: AWS IoT's CreateKeysAndCertificate (or
CreateCertificateFromCsr) and RegisterThing over MQTT 5 with mutual TLS, as a device with a claim
certificate does it.

:func:`provision_by_claim` blocks (see :mod:`edgewise.runtime.provisioning._connection`). The cloud answers on
the request topic plus ``/accepted`` or ``/rejected``, which every client holding a claim certificate may
subscribe to, and AWS's protocol has no correlation token. A reply to a CSR is matched by its certificate's
public key; other replies are taken as the first that arrives (see docs/cloud.md "Provisioning by claim" for
what sharing a claim certificate exposes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edgewise.protocol.provisioning import (
    CREATE_FROM_CSR_TOPIC,
    CREATE_TOPIC,
    OUTCOMES,
    CreateCertificateAccepted,
    CreateCertificateFromCsrRequest,
    CreateKeysAndCertificateRequest,
    ProvisioningPayloadError,
    RegisterThingAccepted,
    RegisterThingRequest,
    build_create_from_csr_request,
    build_create_keys_request,
    build_register_request,
    parse_create_accepted,
    parse_register_accepted,
    provision_topic,
    reply_topic,
)
from edgewise.runtime.provisioning._connection import ClaimConnection, ClaimIdentity
from edgewise.runtime.provisioning.errors import ClaimError

DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class ProvisionedDevice:
    """A device's permanent identity, as CreateKeysAndCertificate (or FromCsr) and RegisterThing gave it."""

    thing_name: str
    certificate_id: str
    certificate_pem: str
    private_key_pem: str = field(repr=False)
    device_configuration: dict[str, str]


def _created(operation: str, body: Mapping[str, Any]) -> CreateCertificateAccepted:
    try:
        return parse_create_accepted(body)
    except ProvisioningPayloadError as exc:
        raise ClaimError(f"The cloud's {operation} reply is unusable: {exc}") from None


def _registered(body: Mapping[str, Any]) -> RegisterThingAccepted:
    try:
        return parse_register_accepted(body)
    except ProvisioningPayloadError as exc:
        raise ClaimError(f"The cloud's RegisterThing reply is unusable: {exc}") from None


def _device(
    created: CreateCertificateAccepted, registered: RegisterThingAccepted, private_key_pem: str
) -> ProvisionedDevice:
    return ProvisionedDevice(
        thing_name=registered.thing_name,
        certificate_id=created.certificate_id,
        certificate_pem=created.certificate_pem,
        private_key_pem=private_key_pem,
        device_configuration=dict(registered.device_configuration),
    )


def provisioned_device(
    created: Mapping[str, Any], registered: Mapping[str, Any], private_key_pem: str
) -> ProvisionedDevice:
    """The device's identity from the accepted certificate and RegisterThing replies.

    Raises:
        ClaimError: a reply lacks a field or has one of the wrong type.
    """
    return _device(_created("certificate", created), _registered(registered), private_key_pem)


def _new_csr() -> tuple[str, str, bytes]:
    """A new EC P-256 key (PKCS#8 PEM), a CSR for it, and its public key (to recognise our certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edgewise-device")]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return (
        key_pem,
        csr.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        _public_key(key.public_key()),
    )


def _public_key(key: Any) -> bytes:
    return bytes(
        key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _issued_for(public_key: bytes) -> Callable[[Mapping[str, Any]], CreateCertificateAccepted | None]:
    """An accepted CreateCertificateFromCsr reply when it carries a certificate for ``public_key``, else ``None``
    (another device's)."""

    def ours(body: Mapping[str, Any]) -> CreateCertificateAccepted | None:
        created = _created("CreateCertificateFromCsr", body)
        try:
            certificate = x509.load_pem_x509_certificate(created.certificate_pem.encode())
        except ValueError:
            return None
        return created if _public_key(certificate.public_key()) == public_key else None

    return ours


def provision_by_claim(
    host: str,
    port: int,
    identity: ClaimIdentity,
    *,
    template: str,
    parameters: Mapping[str, str] | None = None,
    use_csr: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    on_step: Callable[[str], None] | None = None,
) -> ProvisionedDevice:
    """Provision a device by claim with ``template``: a new certificate, then RegisterThing. Blocks.

    Args:
        host: the broker's host name, port: its mutual-TLS port.
        identity: the claim certificate, its key and the CA to trust.
        template: the provisioning template's name.
        parameters: the template parameters to send.
        use_csr: generate the key here and use CreateCertificateFromCsr, so the key never travels.
        timeout: seconds each step (connect, subscribe, each request) may take.
        on_step: called with a short description as each step starts (for progress display).

    Raises:
        ClaimError: one of its subclasses, naming the step that failed.
        ValueError: ``template`` is not a template name.
    """
    register_topic = provision_topic(template)
    step = on_step or (lambda _description: None)
    create_topic = CREATE_FROM_CSR_TOPIC if use_csr else CREATE_TOPIC
    connection = ClaimConnection(host, port, identity, timeout)
    try:
        step(f"Connecting to {host}:{port} with the claim certificate")
        connection.open()
        step("Subscribing to the provisioning replies")
        connection.subscribe(
            [reply_topic(topic, outcome) for topic in (create_topic, register_topic) for outcome in OUTCOMES]
        )
        if use_csr:
            private_key_pem, csr_pem, public_key = _new_csr()
            step("Asking for a certificate for a key made here (CreateCertificateFromCsr)")
            created = connection.request(
                "CreateCertificateFromCsr",
                create_topic,
                build_create_from_csr_request(CreateCertificateFromCsrRequest(csr_pem)),
                _issued_for(public_key),
            )
        else:
            step("Asking for a certificate and key (CreateKeysAndCertificate)")
            created = connection.request(
                "CreateKeysAndCertificate",
                create_topic,
                build_create_keys_request(CreateKeysAndCertificateRequest()),
                lambda body: _created("CreateKeysAndCertificate", body),
            )
            if created.private_key is None:
                raise ClaimError("The cloud's CreateKeysAndCertificate reply has no privateKey")
            private_key_pem = created.private_key
        step(f"Registering the thing with template {template} (RegisterThing)")
        registered = connection.request(
            "RegisterThing",
            register_topic,
            build_register_request(
                RegisterThingRequest(created.certificate_ownership_token, dict(parameters or {}))
            ),
            _registered,
        )
    finally:
        connection.close()
    return _device(created, registered, private_key_pem)

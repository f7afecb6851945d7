"""Fleet provisioning by claim: AWS IoT's CreateKeysAndCertificate, CreateCertificateFromCsr and RegisterThing
topics, as a device holding a claim certificate and the cloud's provisioning worker both use them.

- :data:`CREATE_TOPIC` and :data:`CREATE_FROM_CSR_TOPIC` ask for a certificate (with a new key, or for a CSR).
- :func:`provision_topic` (``$aws/provisioning-templates/<template>/provision/json``) registers a thing with a
  template; :data:`PROVISION_FILTER` matches every template's, and :func:`template_name` reads the template back.
- The cloud answers on the request topic plus ``/accepted`` or ``/rejected`` (:func:`reply_topic`); the device reads
  a reply with :func:`read_reply`. AWS's protocol has no correlation token, so every claim device subscribed to a
  reply topic receives every reply on it.

Each payload is a frozen value with one builder and one parser, on AWS's JSON shapes:

- CreateKeysAndCertificate: :class:`CreateKeysAndCertificateRequest` (:func:`build_create_keys_request`,
  :func:`parse_create_keys_request`); CreateCertificateFromCsr: :class:`CreateCertificateFromCsrRequest`
  (:func:`build_create_from_csr_request`, :func:`parse_create_from_csr_request`). Both are accepted with
  :class:`CreateCertificateAccepted` (:func:`build_create_accepted`, :func:`parse_create_accepted`).
- RegisterThing: :class:`RegisterThingRequest` (:func:`build_register_request`, :func:`parse_register_request`),
  accepted with :class:`RegisterThingAccepted` (:func:`build_register_accepted`, :func:`parse_register_accepted`).
- Any request refused: :class:`ProvisioningRejection` (:func:`build_rejection`, :func:`parse_rejection`).

The cloud parses requests from their bytes; the device parses a reply's object as :func:`read_reply` gives it.
A payload that does not parse raises :class:`ProvisioningPayloadError`, naming the field's path.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from edgewise.errors import EdgewiseError

logger = logging.getLogger(__name__)

TEMPLATE_NAME_MAX_LENGTH: Final = 36
#: AWS's template names; nothing else may go into a topic, so no other topic can be reached.
TEMPLATE_NAME_PATTERN: Final = rf"[0-9A-Za-z_-]{{1,{TEMPLATE_NAME_MAX_LENGTH}}}"
CREATE_TOPIC = "$aws/certificates/create/json"
CREATE_FROM_CSR_TOPIC = "$aws/certificates/create-from-csr/json"
PROVISION_FILTER = "$aws/provisioning-templates/+/provision/json"
#: The field of a RegisterThing request that the cloud's refusal of the token names (AWS answers
#: InvalidCertificateOwnershipToken rather than InvalidParameters).
OWNERSHIP_TOKEN_FIELD: Final = "certificateOwnershipToken"  # noqa: S105 (a field name, not a token)

Outcome = Literal["accepted", "rejected"]
OUTCOMES: tuple[Outcome, ...] = ("accepted", "rejected")


def provision_topic(template: str) -> str:
    """The RegisterThing topic of ``template``.

    Raises:
        ValueError: ``template`` is not a template name.
    """
    if re.fullmatch(TEMPLATE_NAME_PATTERN, template) is None:
        raise ValueError(f"template: {template!r} is not 1-36 letters, digits, '_' or '-'")
    return f"$aws/provisioning-templates/{template}/provision/json"


def template_name(topic: str) -> str | None:
    """The template a RegisterThing ``topic`` names, or ``None`` when it is not one."""
    parts = topic.split("/")
    if (
        len(parts) == 5
        and parts[:2] == ["$aws", "provisioning-templates"]
        and parts[3:] == ["provision", "json"]
    ):
        return parts[2]
    return None


def reply_topic(request_topic: str, outcome: Outcome) -> str:
    """Where the cloud answers a request on ``request_topic``."""
    return f"{request_topic}/{outcome}"


def read_reply(request_topic: str, topic: str, payload: bytes) -> tuple[Outcome, dict[str, Any]] | None:
    """A message received on ``topic`` as a reply to ``request_topic``: ``("accepted" | "rejected", object)``,
    or ``None`` when it is on another topic or is not a JSON object."""
    outcome = next((each for each in OUTCOMES if topic == reply_topic(request_topic, each)), None)
    if outcome is None:
        return None
    try:
        answer = json.loads(payload)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        logger.warning("provisioning-reply-unreadable topic=%s", topic)
        return None
    return (outcome, answer) if isinstance(answer, dict) else None


class ProvisioningPayloadError(EdgewiseError):
    """A request or reply that does not parse; ``field`` is the path of the field that is wrong, or ``None`` when
    the payload as a whole is (not JSON, not an object)."""

    def __init__(self, field: str | None, problem: str) -> None:
        super().__init__(problem if field is None else f"Field {field!r} is invalid: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class CreateKeysAndCertificateRequest:
    """A device asks for a new key and a certificate for it; the request carries nothing."""


@dataclass(frozen=True)
class CreateCertificateFromCsrRequest:
    """A device asks for a certificate for the key of its CSR, so its key never travels."""

    certificate_signing_request: str  #: PEM


@dataclass(frozen=True)
class CreateCertificateAccepted:
    """The cloud's new certificate and the token that redeems it in RegisterThing; ``private_key`` only answers
    CreateKeysAndCertificate."""

    certificate_id: str
    certificate_pem: str
    certificate_ownership_token: str = field(repr=False)
    private_key: str | None = field(default=None, repr=False)  #: PEM


@dataclass(frozen=True)
class RegisterThingRequest:
    """A device redeems its ownership token with a template. The parameters' values are checked against the
    template, which names the parameter and says what is wrong; here only their shape is."""

    certificate_ownership_token: str = field(repr=False)
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RegisterThingAccepted:
    """The thing the device became, and the template's device configuration."""

    thing_name: str
    device_configuration: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProvisioningRejection:
    """AWS's error payload for a refused request. The device reads any ``/rejected`` reply as one, making up
    what it lacks, so a reply it cannot fully read still fails the request."""

    status_code: int
    error_code: str
    error_message: str


def _load(payload: bytes) -> dict[str, Any]:
    try:
        body = json.loads(payload)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ProvisioningPayloadError(None, f"The payload is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ProvisioningPayloadError(None, "The payload must be a JSON object")
    return body


def _text(body: Mapping[str, Any], key: str) -> str:
    """``body[key]`` as a non-empty string."""
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ProvisioningPayloadError(key, f"{value!r:.100} is not a non-empty string")
    return value


def _dump(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body).encode()


def build_create_keys_request(_request: CreateKeysAndCertificateRequest) -> bytes:
    """The payload of a CreateKeysAndCertificate request."""
    return _dump({})


def parse_create_keys_request(payload: bytes) -> CreateKeysAndCertificateRequest:
    """Parse a CreateKeysAndCertificate request: an empty payload or any JSON object, whose fields AWS ignores.

    Raises:
        ProvisioningPayloadError: it is neither.
    """
    if payload.strip():
        _load(payload)
    return CreateKeysAndCertificateRequest()


def build_create_from_csr_request(request: CreateCertificateFromCsrRequest) -> bytes:
    """The payload of ``request``."""
    return _dump({"certificateSigningRequest": request.certificate_signing_request})


def parse_create_from_csr_request(payload: bytes) -> CreateCertificateFromCsrRequest:
    """Parse a CreateCertificateFromCsr request; whether the CSR is one is the certificate authority's to say.

    Raises:
        ProvisioningPayloadError: naming the field that is wrong.
    """
    csr = _load(payload).get("certificateSigningRequest")
    if not isinstance(csr, str) or not csr:
        raise ProvisioningPayloadError("certificateSigningRequest", "must be a PEM CSR string")
    return CreateCertificateFromCsrRequest(csr)


def build_create_accepted(accepted: CreateCertificateAccepted) -> bytes:
    """The payload of ``accepted``."""
    body = {
        "certificateId": accepted.certificate_id,
        "certificatePem": accepted.certificate_pem,
        "certificateOwnershipToken": accepted.certificate_ownership_token,
    }
    if accepted.private_key is not None:
        body["privateKey"] = accepted.private_key
    return _dump(body)


def parse_create_accepted(body: Mapping[str, Any]) -> CreateCertificateAccepted:
    """Parse an accepted CreateKeysAndCertificate or CreateCertificateFromCsr reply.

    Raises:
        ProvisioningPayloadError: naming the field that is wrong.
    """
    private_key = body.get("privateKey")
    return CreateCertificateAccepted(
        certificate_id=_text(body, "certificateId"),
        certificate_pem=_text(body, "certificatePem"),
        certificate_ownership_token=_text(body, "certificateOwnershipToken"),
        private_key=None if private_key is None else _text(body, "privateKey"),
    )


def build_register_request(request: RegisterThingRequest) -> bytes:
    """The payload of ``request``; like awsiotsdk's RegisterThingRequest, it has no ``parameters`` when there are
    none."""
    body: dict[str, Any] = {OWNERSHIP_TOKEN_FIELD: request.certificate_ownership_token}
    if request.parameters:
        body["parameters"] = dict(request.parameters)
    return _dump(body)


def parse_register_request(payload: bytes) -> RegisterThingRequest:
    """Parse a RegisterThing request. A missing token reads as empty, which the cloud refuses as AWS does; a
    missing or empty ``parameters`` reads as none.

    Raises:
        ProvisioningPayloadError: naming the field that is wrong.
    """
    body = _load(payload)
    token = body.get(OWNERSHIP_TOKEN_FIELD, "")
    if not isinstance(token, str):
        raise ProvisioningPayloadError(OWNERSHIP_TOKEN_FIELD, "must be a string")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ProvisioningPayloadError("parameters", "must be an object of strings")
    return RegisterThingRequest(token, parameters)


def build_register_accepted(accepted: RegisterThingAccepted) -> bytes:
    """The payload of ``accepted``."""
    return _dump(
        {"thingName": accepted.thing_name, "deviceConfiguration": dict(accepted.device_configuration)}
    )


def parse_register_accepted(body: Mapping[str, Any]) -> RegisterThingAccepted:
    """Parse an accepted RegisterThing reply; a missing ``deviceConfiguration`` reads as empty.

    Raises:
        ProvisioningPayloadError: naming the field that is wrong.
    """
    configuration = body.get("deviceConfiguration", {})
    if not isinstance(configuration, dict):
        raise ProvisioningPayloadError("deviceConfiguration", "must be an object of strings")
    for key, value in configuration.items():
        if not isinstance(value, str):
            raise ProvisioningPayloadError(f"deviceConfiguration.{key}", f"{value!r:.100} is not a string")
    return RegisterThingAccepted(
        thing_name=_text(body, "thingName"), device_configuration=dict(configuration)
    )


def build_rejection(rejection: ProvisioningRejection) -> bytes:
    """The payload of ``rejection``."""
    return _dump(
        {
            "statusCode": rejection.status_code,
            "errorCode": rejection.error_code,
            "errorMessage": rejection.error_message,
        }
    )


def parse_rejection(body: Mapping[str, Any]) -> ProvisioningRejection:
    """Read a ``/rejected`` reply; a status that is not an integer reads as 0, a missing or empty code as
    ``Unknown``, a message that is not a string as empty."""
    status = body.get("statusCode")
    code = body.get("errorCode")
    message = body.get("errorMessage")
    return ProvisioningRejection(
        status_code=status if isinstance(status, int) and not isinstance(status, bool) else 0,
        error_code=code if isinstance(code, str) and code else "Unknown",
        error_message=message if isinstance(message, str) else "",
    )

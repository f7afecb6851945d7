"""The device side of fleet provisioning by claim: AWS IoT's CreateKeysAndCertificate (or
CreateCertificateFromCsr) and RegisterThing over MQTT 5 with mutual TLS, as a device with a claim
certificate does it.

``edgewise device bootstrap --claim-cert`` uses it; the runtime never imports it (it stays light).
:func:`provision_by_claim` blocks; it runs paho's network loop in paho's own thread and waits on a condition
that paho's callbacks signal.

Usage::

    claim = ClaimIdentity(Path("claim.pem.crt"), Path("claim.private.pem.key"), Path("root-ca.pem"))
    device = provision_by_claim("cloud.example.com", 8883, claim, template="sensors", parameters={"Serial": "7"})
    device.thing_name, device.certificate_pem, device.private_key_pem

The cloud answers on the request topic plus ``/accepted`` or ``/rejected``, which every client holding a
claim certificate may subscribe to, and AWS's protocol has no correlation token. A reply to a CSR is matched
by its certificate's public key; other replies are taken as the first that arrives (see docs/cloud.md
"Provisioning by claim" for what sharing a claim certificate exposes).

Errors::

    ClaimError                     (edgewise.errors.EdgewiseError)
     ├── ClaimConnectionError      the broker could not be reached, refused the claim certificate or hung up
     ├── ClaimNotAuthorizedError   the broker kept refusing a provisioning topic until the deadline
     ├── ClaimTimeoutError         nothing answered a step before the deadline (names the step)
     └── ClaimRejectedError        the cloud answered on /rejected (AWS's statusCode, errorCode, errorMessage)
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from edgewise.errors import EdgewiseError

logger = logging.getLogger(__name__)

#: AWS's template names; nothing else may go into a topic, so no other topic can be reached.
TEMPLATE_NAME_PATTERN = r"[0-9A-Za-z_-]{1,36}"
CREATE_TOPIC = "$aws/certificates/create/json"
CREATE_FROM_CSR_TOPIC = "$aws/certificates/create-from-csr/json"
DEFAULT_TIMEOUT = 30.0
_KEEPALIVE = 30
#: A new claim certificate's topics reach the broker's ACL a moment after the API answers: a refused
#: subscription or publish is retried with these pauses, up to the step's deadline.
_RETRY_FIRST = 0.2
_RETRY_CAP = 2.0


class ClaimError(EdgewiseError):
    """Provisioning by claim failed; the message says which step and why."""


class ClaimConnectionError(ClaimError):
    """The broker could not be reached, refused the claim certificate, or closed the connection."""


class ClaimNotAuthorizedError(ClaimError):
    """The broker refused to let the claim certificate use a provisioning topic until the deadline."""

    def __init__(self, topic: str, action: str, reason: str) -> None:
        super().__init__(
            f"The broker refused to let the claim certificate {action} {topic} ({reason}); "
            "does the claim certificate's policy allow that topic?"
        )
        self.topic = topic


class ClaimTimeoutError(ClaimError):
    """Nothing answered a step before its deadline."""

    def __init__(self, what: str, timeout: float) -> None:
        super().__init__(f"No answer from {what} within {timeout:g} s")
        self.what = what


class ClaimRejectedError(ClaimError):
    """The cloud refused a request on its ``/rejected`` topic."""

    def __init__(self, operation: str, status_code: int, error_code: str, message: str) -> None:
        super().__init__(f"{operation} was rejected: {error_code} ({status_code}): {message}")
        self.operation = operation
        self.status_code = status_code
        self.error_code = error_code
        self.error_message = message


@dataclass(frozen=True)
class ClaimIdentity:
    """The claim certificate and key the device connects with, and the CA that signed the broker's."""

    certificate: Path
    private_key: Path
    root_ca: Path


@dataclass(frozen=True)
class ProvisionedDevice:
    """A device's permanent identity, as CreateKeysAndCertificate (or FromCsr) and RegisterThing gave it."""

    thing_name: str
    certificate_id: str
    certificate_pem: str
    private_key_pem: str = field(repr=False)
    device_configuration: dict[str, str]


@dataclass
class _Exchange:
    """What paho's thread has reported so far; guarded by :class:`_ClaimConnection`'s condition."""

    connack: ReasonCode | None = None
    closed: str | None = None
    subacks: dict[int, list[ReasonCode]] = field(default_factory=dict)
    pubacks: dict[int, ReasonCode] = field(default_factory=dict)
    messages: deque[tuple[str, bytes]] = field(default_factory=deque)


def _client_id(certificate: Path) -> str:
    """The claim certificate's CN (AWS policies often bind ``iot:Connect`` to it), else a random id."""
    try:
        names = x509.load_pem_x509_certificate(certificate.read_bytes()).subject.get_attributes_for_oid(
            NameOID.COMMON_NAME
        )
    except (OSError, ValueError):
        names = []
    common_name = names[0].value if names else ""
    return common_name if isinstance(common_name, str) and common_name else f"claim-{secrets.token_hex(8)}"


class _ClaimConnection:
    """One MQTT 5 connection with the claim certificate; callbacks run in paho's thread."""

    def __init__(self, host: str, port: int, identity: ClaimIdentity, timeout: float) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._condition = threading.Condition()
        self._exchange = _Exchange()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=_client_id(identity.certificate),
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self._client.tls_set(str(identity.root_ca), str(identity.certificate), str(identity.private_key))
        self._client.connect_timeout = timeout
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message

    @property
    def broker(self) -> str:
        return f"the broker at {self.host}:{self.port}"

    # paho's thread

    def _on_connect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        with self._condition:
            self._exchange.connack = reason
            self._condition.notify_all()

    def _on_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        self._closed("the connection failed")

    def _on_disconnect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._closed(str(reason))

    def _closed(self, reason: str) -> None:
        with self._condition:
            self._exchange.closed = reason
            self._condition.notify_all()

    def _on_subscribe(
        self, _client: paho.Client, _userdata: Any, mid: int, reasons: list[ReasonCode], _props: Any
    ) -> None:
        with self._condition:
            self._exchange.subacks[mid] = reasons
            self._condition.notify_all()

    def _on_publish(
        self, _client: paho.Client, _userdata: Any, mid: int, reason: ReasonCode, _props: Any
    ) -> None:
        with self._condition:
            self._exchange.pubacks[mid] = reason
            self._condition.notify_all()

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        with self._condition:
            self._exchange.messages.append((message.topic, bytes(message.payload)))
            self._condition.notify_all()

    # the caller's thread

    def _wait(self, ready: Callable[[_Exchange], Any], deadline: float) -> Any:
        """``ready(exchange)`` once it is truthy; ``None`` at the deadline. Raises if the connection closed."""
        with self._condition:
            while True:
                result = ready(self._exchange)
                if result:
                    return result
                if self._exchange.closed is not None:
                    raise ClaimConnectionError(f"Connection closed by {self.broker}: {self._exchange.closed}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._condition.wait(remaining)

    def _pause_or_raise(self, attempt: int, deadline: float, refusal: ClaimNotAuthorizedError) -> None:
        """Wait before retrying what the broker refused; raise ``refusal`` when no retry fits before
        ``deadline``."""
        pause = min(_RETRY_FIRST * 2**attempt, _RETRY_CAP)
        if time.monotonic() + pause >= deadline:
            raise refusal
        self._wait(lambda _exchange: False, time.monotonic() + pause)

    def _suback(self, mid: int, deadline: float) -> list[ReasonCode] | None:
        reasons: list[ReasonCode] | None = self._wait(
            lambda exchange: exchange.subacks.pop(mid, None), deadline
        )
        return reasons

    def _puback(self, mid: int, deadline: float) -> ReasonCode | None:
        reason: ReasonCode | None = self._wait(lambda exchange: exchange.pubacks.pop(mid, None), deadline)
        return reason

    def open(self) -> None:
        """Connect; returns once the broker accepted the claim certificate."""
        try:
            self._client.connect(self.host, self.port, keepalive=_KEEPALIVE)
        except ssl.SSLError as exc:
            raise ClaimConnectionError(
                f"TLS with {self.broker} failed: {exc.reason or exc} "
                "(is --ca the CA of the cloud, and the claim certificate issued by it?)"
            ) from exc
        except OSError as exc:
            raise ClaimConnectionError(f"Cannot reach {self.broker}: {exc.strerror or exc}") from exc
        self._client.loop_start()
        try:
            connack: ReasonCode | None = self._wait(
                lambda exchange: exchange.connack, time.monotonic() + self.timeout
            )
        except ClaimConnectionError as exc:
            # With TLS 1.3 the broker refuses a client certificate only after the handshake.
            raise ClaimConnectionError(
                f"{exc} (is the claim certificate ACTIVE and issued by the cloud's CA?)"
            ) from exc
        if connack is None:
            raise ClaimTimeoutError(f"{self.broker} (CONNACK)", self.timeout)
        if connack.is_failure:
            raise ClaimConnectionError(f"The claim certificate was refused by {self.broker}: {connack}")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def subscribe(self, topics: list[str]) -> None:
        """Subscribe to ``topics`` with QoS 1, retrying refusals until the deadline."""
        deadline = time.monotonic() + self.timeout
        pending = list(topics)
        attempt = 0
        while pending:
            result, mid = self._client.subscribe([(topic, 1) for topic in pending])
            self._check_queued(result, f"subscribe to {pending[0]}")
            assert mid is not None  # queued, so numbered
            reasons = self._suback(mid, deadline)
            if reasons is None:
                raise ClaimTimeoutError(f"{self.broker} (SUBACK for {', '.join(pending)})", self.timeout)
            refused = [
                (topic, reason) for topic, reason in zip(pending, reasons, strict=True) if reason.is_failure
            ]
            pending = [topic for topic, _reason in refused]
            if refused:
                topic, reason = refused[0]
                self._pause_or_raise(
                    attempt, deadline, ClaimNotAuthorizedError(topic, "subscribe to", str(reason))
                )
                attempt += 1

    def request(
        self, operation: str, topic: str, payload: Mapping[str, Any], accept: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        """Publish ``payload`` to ``topic``; the first ``/accepted`` reply that ``accept`` takes.

        Raises:
            ClaimRejectedError: a reply came on ``/rejected``.
        """
        deadline = time.monotonic() + self.timeout
        body = json.dumps(payload)
        attempt = 0
        while True:
            info = self._client.publish(topic, body, qos=1)
            self._check_queued(info.rc, f"publish to {topic}")
            puback = self._puback(info.mid, deadline)
            if puback is None:
                raise ClaimTimeoutError(f"{self.broker} (PUBACK for {topic})", self.timeout)
            if not puback.is_failure:
                break
            self._pause_or_raise(attempt, deadline, ClaimNotAuthorizedError(topic, "publish to", str(puback)))
            attempt += 1
        while True:
            reply: tuple[str, dict[str, Any]] | None = self._wait(
                lambda exchange: self._reply(exchange, topic), deadline
            )
            if reply is None:
                raise ClaimTimeoutError(
                    f"the cloud's provisioning service to {operation} on {topic}", self.timeout
                )
            outcome, answer = reply
            if outcome == "rejected":
                raise rejection(operation, answer)
            if accept(answer):
                return answer

    @staticmethod
    def _reply(exchange: _Exchange, topic: str) -> tuple[str, dict[str, Any]] | None:
        """The next reply to ``topic``, dropping anything else received before it."""
        while exchange.messages:
            reply = read_reply(topic, *exchange.messages.popleft())
            if reply is not None:
                return reply
        return None

    def _check_queued(self, result: MQTTErrorCode | int, what: str) -> None:
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ClaimConnectionError(f"Cannot {what} on {self.broker}: {paho.error_string(result)}")


def read_reply(request_topic: str, topic: str, payload: bytes) -> tuple[str, dict[str, Any]] | None:
    """A message received on ``topic`` as a reply to ``request_topic``: ``("accepted" | "rejected", object)``,
    or ``None`` when it is on another topic or is not a JSON object."""
    outcome = topic.removeprefix(f"{request_topic}/")
    if topic == outcome or outcome not in ("accepted", "rejected"):
        return None
    try:
        answer = json.loads(payload)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        logger.warning("provisioning-reply-unreadable topic=%s", topic)
        return None
    return (outcome, answer) if isinstance(answer, dict) else None


def rejection(operation: str, answer: Mapping[str, Any]) -> ClaimRejectedError:
    """The error a ``/rejected`` reply to ``operation`` stands for (AWS's error payload; missing parts made up)."""
    status = answer.get("statusCode")
    code = answer.get("errorCode")
    message = answer.get("errorMessage")
    return ClaimRejectedError(
        operation,
        status if isinstance(status, int) and not isinstance(status, bool) else 0,
        code if isinstance(code, str) and code else "Unknown",
        message if isinstance(message, str) else "",
    )


def _string(answer: Mapping[str, Any], name: str, operation: str) -> str:
    value = answer.get(name)
    if not isinstance(value, str) or not value:
        raise ClaimError(f"The cloud's {operation} reply has no {name}")
    return value


def provisioned_device(
    created: Mapping[str, Any], registered: Mapping[str, Any], private_key_pem: str
) -> ProvisionedDevice:
    """The device's identity from the accepted certificate and RegisterThing replies.

    Raises:
        ClaimError: a reply lacks a field or has one of the wrong type.
    """
    configuration = registered.get("deviceConfiguration", {})
    if not isinstance(configuration, dict) or not all(
        isinstance(value, str) for value in configuration.values()
    ):
        raise ClaimError("The cloud's RegisterThing reply has a deviceConfiguration that is not flat strings")
    return ProvisionedDevice(
        thing_name=_string(registered, "thingName", "RegisterThing"),
        certificate_id=_string(created, "certificateId", "certificate"),
        certificate_pem=_string(created, "certificatePem", "certificate"),
        private_key_pem=private_key_pem,
        device_configuration=dict(configuration),
    )


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


def _issued_for(public_key: bytes) -> Callable[[dict[str, Any]], bool]:
    """Whether an accepted CreateCertificateFromCsr reply carries a certificate for ``public_key``."""

    def ours(answer: dict[str, Any]) -> bool:
        try:
            certificate = x509.load_pem_x509_certificate(str(answer.get("certificatePem", "")).encode())
        except ValueError:
            return False
        return _public_key(certificate.public_key()) == public_key

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
    if re.fullmatch(TEMPLATE_NAME_PATTERN, template) is None:
        raise ValueError(f"template: {template!r} is not 1-36 letters, digits, '_' or '-'")
    step = on_step or (lambda _description: None)
    create_topic = CREATE_FROM_CSR_TOPIC if use_csr else CREATE_TOPIC
    register_topic = f"$aws/provisioning-templates/{template}/provision/json"
    connection = _ClaimConnection(host, port, identity, timeout)
    try:
        step(f"Connecting to {host}:{port} with the claim certificate")
        connection.open()
        step("Subscribing to the provisioning replies")
        connection.subscribe(
            [
                f"{topic}/{outcome}"
                for topic in (create_topic, register_topic)
                for outcome in ("accepted", "rejected")
            ]
        )
        if use_csr:
            private_key_pem, csr_pem, public_key = _new_csr()
            step("Asking for a certificate for a key made here (CreateCertificateFromCsr)")
            created = connection.request(
                "CreateCertificateFromCsr",
                create_topic,
                {"certificateSigningRequest": csr_pem},
                _issued_for(public_key),
            )
        else:
            step("Asking for a certificate and key (CreateKeysAndCertificate)")
            created = connection.request("CreateKeysAndCertificate", create_topic, {}, lambda _answer: True)
            private_key_pem = _string(created, "privateKey", "CreateKeysAndCertificate")
        token = _string(created, "certificateOwnershipToken", "certificate")
        step(f"Registering the thing with template {template} (RegisterThing)")
        registered = connection.request(
            "RegisterThing",
            register_topic,
            # Like awsiotsdk's RegisterThingRequest: no parameters, no key.
            {"certificateOwnershipToken": token, **({"parameters": dict(parameters)} if parameters else {})},
            lambda _answer: True,
        )
    finally:
        connection.close()
    return provisioned_device(created, registered, private_key_pem)

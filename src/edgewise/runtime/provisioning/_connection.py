"""One MQTT 5 connection with a claim certificate, as provisioning by claim needs it: connect, subscribe to the
reply topics and send requests, each step with a deadline, refusals of a topic retried until then.

Blocks: paho's network loop runs in paho's own thread, and each step waits on a condition that paho's callbacks
signal.
"""

from __future__ import annotations

import secrets
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as paho
from cryptography import x509
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from edgewise.protocol.provisioning import read_reply
from edgewise.runtime.provisioning.errors import (
    ClaimConnectionError,
    ClaimNotAuthorizedError,
    ClaimTimeoutError,
    rejection,
)

_KEEPALIVE = 30
#: A new claim certificate's topics reach the broker's ACL a moment after the API answers: a refused
#: subscription or publish is retried with these pauses, up to the step's deadline.
_RETRY_FIRST = 0.2
_RETRY_CAP = 2.0

_Answer = TypeVar("_Answer")


@dataclass(frozen=True)
class ClaimIdentity:
    """The claim certificate and key the device connects with, and the CA that signed the broker's."""

    certificate: Path
    private_key: Path
    root_ca: Path


@dataclass
class _Exchange:
    """What paho's thread has reported so far; guarded by :class:`ClaimConnection`'s condition."""

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


class ClaimConnection:
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
        self,
        operation: str,
        topic: str,
        payload: bytes,
        answer_of: Callable[[Mapping[str, Any]], _Answer | None],
    ) -> _Answer:
        """Publish ``payload`` to ``topic``; what ``answer_of`` makes of the first ``/accepted`` reply it does not
        pass over (``None``: another device's).

        Raises:
            ClaimRejectedError: a reply came on ``/rejected``.
            ClaimError: what ``answer_of`` raises for a reply it cannot read.
        """
        deadline = time.monotonic() + self.timeout
        attempt = 0
        while True:
            info = self._client.publish(topic, payload, qos=1)
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
            outcome, body = reply
            if outcome == "rejected":
                raise rejection(operation, body)
            answer = answer_of(body)
            if answer is not None:
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

"""The MQTT side of fleet provisioning: answers CreateKeysAndCertificate, CreateCertificateFromCsr and
RegisterThing requests on AWS IoT's reserved topics, with AWS's payloads.

The worker connects to the broker's loopback worker listener (user name and password, every topic). paho's
network thread hands each request to the event loop; the store work runs in a thread so the loop stays
free. Replies go to the request topic plus ``/accepted`` or ``/rejected``. Every claim device subscribes
to those same topics and Mosquitto cannot address one connection, so a reply reaches every claim device
connected at that moment (see docs/cloud.md "Provisioning by claim" for what that means).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker.config import WorkerListenerSettings
from edgewise.cloud.errors import CloudError, ConflictError, InvalidRequestError, NotFoundError
from edgewise.cloud.identity.ca import CertificateAuthority
from edgewise.cloud.provisioning import service

logger = logging.getLogger(__name__)

CREATE_TOPIC = "$aws/certificates/create/json"
CREATE_FROM_CSR_TOPIC = "$aws/certificates/create-from-csr/json"
PROVISION_FILTER = "$aws/provisioning-templates/+/provision/json"
_CLIENT_ID = "edgewise-provisioning"
_CONNECT_TIMEOUT = 10.0


class ProvisioningRejected(Exception):
    """A request answered on ``/rejected`` with AWS's error payload."""

    def __init__(self, status_code: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code

    def payload(self) -> dict[str, Any]:
        """The ``/rejected`` body."""
        return {"statusCode": self.status_code, "errorCode": self.error_code, "errorMessage": str(self)}


def _rejection(exc: CloudError) -> ProvisioningRejected:
    if isinstance(exc, InvalidRequestError):
        code = (
            "InvalidCertificateOwnershipToken"
            if exc.field == "certificateOwnershipToken"
            else "InvalidParameters"
        )
        return ProvisioningRejected(400, code, str(exc))
    if isinstance(exc, NotFoundError):
        return ProvisioningRejected(404, "ResourceNotFound", str(exc))
    if isinstance(exc, ConflictError):
        return ProvisioningRejected(409, "ResourceConflict", str(exc))
    return ProvisioningRejected(400, "InvalidRequest", str(exc))


def _request_object(payload: bytes, *, allow_empty: bool = False) -> dict[str, Any]:
    if allow_empty and not payload.strip():
        return {}
    try:
        request = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProvisioningRejected(400, "InvalidPayload", f"The payload is not JSON: {exc}") from exc
    if not isinstance(request, dict):
        raise ProvisioningRejected(400, "InvalidPayload", "The payload must be a JSON object")
    return request


def _template_name(topic: str) -> str | None:
    parts = topic.split("/")
    if (
        len(parts) == 5
        and parts[:2] == ["$aws", "provisioning-templates"]
        and parts[3:] == ["provision", "json"]
    ):
        return parts[2]
    return None


class ProvisioningWorker:
    """Serves provisioning requests until closed; ``on_registered`` runs on the loop after each new thing."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        authority: CertificateAuthority,
        listener: WorkerListenerSettings,
        *,
        on_registered: Callable[[], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._authority = authority
        self._listener = listener
        self._on_registered = on_registered
        self._ready = threading.Event()
        self._failure: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=_CLIENT_ID, protocol=MQTTProtocolVersion.MQTTv5
        )
        self._client.username_pw_set(listener.username, listener.password)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    async def start(self) -> None:
        """Connect and subscribe to the request topics.

        Raises:
            ConnectionError: the worker listener refused or did not answer within 10 s.
        """
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._client.connect, "127.0.0.1", self._listener.port, 30)
        self._client.loop_start()
        if not await asyncio.to_thread(self._ready.wait, _CONNECT_TIMEOUT) or self._failure is not None:
            self._client.loop_stop()
            raise ConnectionError(
                f"The provisioning worker could not subscribe on port {self._listener.port}: "
                f"{self._failure or f'no answer within {_CONNECT_TIMEOUT:.0f} s'}"
            )
        logger.info("provisioning-worker-started port=%d", self._listener.port)

    async def close(self) -> None:
        """Disconnect; requests being answered are abandoned."""
        for pending in list(self._pending):
            pending.cancel()
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    def _on_connect(self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._failure = f"the broker refused the connection: {reason}"
            self._ready.set()
            return
        client.subscribe([(CREATE_TOPIC, 1), (CREATE_FROM_CSR_TOPIC, 1), (PROVISION_FILTER, 1)])

    def _on_subscribe(
        self, _client: paho.Client, _userdata: Any, _mid: int, reasons: Any, _props: Any
    ) -> None:
        failed = [reason for reason in reasons if reason.is_failure]
        if failed:
            self._failure = f"the broker refused a subscription: {failed[0]}"
        self._ready.set()

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._dispatch, message.topic, bytes(message.payload))

    def _dispatch(self, topic: str, payload: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._answer(topic, payload))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _answer(self, topic: str, payload: bytes) -> None:
        registered = False
        try:
            reply, registered = await asyncio.to_thread(self._handle, topic, payload)
            outcome = "accepted"
        except ProvisioningRejected as exc:
            reply, outcome = exc.payload(), "rejected"
            logger.info("provisioning-rejected topic=%s code=%s: %s", topic, exc.error_code, exc)
        except Exception:
            logger.exception("provisioning-failed topic=%s", topic)
            reply = ProvisioningRejected(
                500, "InternalFailure", "The request failed; see the cloud log"
            ).payload()
            outcome = "rejected"
        self._client.publish(f"{topic}/{outcome}", json.dumps(reply), qos=1)
        if registered and self._on_registered is not None:
            self._on_registered()

    def _handle(self, topic: str, payload: bytes) -> tuple[dict[str, Any], bool]:
        """The accepted reply to the request, and whether a thing was registered. Blocks."""
        with self._sessions() as session:
            try:
                if topic == CREATE_TOPIC:
                    _request_object(payload, allow_empty=True)
                    return self._create(session, None), False
                if topic == CREATE_FROM_CSR_TOPIC:
                    csr = _request_object(payload).get("certificateSigningRequest")
                    if not isinstance(csr, str) or not csr:
                        raise InvalidRequestError("certificateSigningRequest", "must be a PEM CSR string")
                    return self._create(session, csr), False
                template = _template_name(topic)
                if template is None:
                    raise ProvisioningRejected(
                        404, "ResourceNotFound", f"No provisioning operation on {topic!r}"
                    )
                return self._register(session, template, _request_object(payload)), True
            except CloudError as exc:
                session.rollback()
                raise _rejection(exc) from exc

    def _create(self, session: Session, csr_pem: str | None) -> dict[str, Any]:
        claimed = service.create_claimed_certificate(session, self._authority, csr_pem=csr_pem)
        reply: dict[str, Any] = {
            "certificateId": claimed.certificate.certificate_id,
            "certificatePem": claimed.certificate.pem,
            "certificateOwnershipToken": claimed.ownership_token,
        }
        if claimed.private_key_pem is not None:
            reply["privateKey"] = claimed.private_key_pem
        return reply

    def _register(self, session: Session, template: str, request: dict[str, Any]) -> dict[str, Any]:
        token = request.get("certificateOwnershipToken", "")
        if not isinstance(token, str):
            raise InvalidRequestError("certificateOwnershipToken", "must be a string")
        parameters = request.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise InvalidRequestError("parameters", "must be an object of strings")
        registered = service.register_thing(session, template, token, parameters)
        return {"thingName": registered.thing_name, "deviceConfiguration": registered.device_configuration}

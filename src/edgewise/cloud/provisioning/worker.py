"""The MQTT side of fleet provisioning: answers CreateKeysAndCertificate, CreateCertificateFromCsr and
RegisterThing requests on AWS IoT's reserved topics, with AWS's payloads, and cleans up ownership tokens
that expired unredeemed (at most once per ``cleanup_interval``).

The worker connects to the broker through a :class:`WorkerLink` (the managed broker's loopback worker
listener, or an external broker), with the right to every topic; the store work runs in a thread so the
loop stays free. Replies go to the request topic plus ``/accepted`` or ``/rejected``. Every claim device subscribes
to those same topics and Mosquitto cannot address one connection, so a reply reaches every claim device
connected at that moment (see docs/cloud.md "Provisioning by claim" for what that means).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker import BrokerConnection
from edgewise.cloud.db import utcnow
from edgewise.cloud.errors import (
    CloudConflictError,
    CloudError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from edgewise.cloud.identity import CertificateAuthority
from edgewise.cloud.provisioning import registration, service
from edgewise.cloud.workerlink import WorkerLink
from edgewise.protocol.provisioning import (
    CREATE_FROM_CSR_TOPIC,
    CREATE_TOPIC,
    OWNERSHIP_TOKEN_FIELD,
    PROVISION_FILTER,
    CreateCertificateAccepted,
    Outcome,
    ProvisioningPayloadError,
    ProvisioningRejection,
    RegisterThingAccepted,
    RegisterThingRequest,
    build_create_accepted,
    build_register_accepted,
    build_rejection,
    parse_create_from_csr_request,
    parse_create_keys_request,
    parse_register_request,
    reply_topic,
    template_name,
)

logger = logging.getLogger(__name__)

#: How often expired ownership tokens are looked for.
CLEANUP_INTERVAL = datetime.timedelta(minutes=1)
_CLIENT_ID = "edgewise-provisioning"


class ProvisioningRejected(Exception):
    """A request answered on ``/rejected`` with AWS's error payload."""

    def __init__(self, status_code: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code

    def payload(self) -> bytes:
        """The ``/rejected`` body."""
        return build_rejection(ProvisioningRejection(self.status_code, self.error_code, str(self)))


def _rejection(exc: CloudError) -> ProvisioningRejected:
    if isinstance(exc, InvalidRequestError):
        code = (
            "InvalidCertificateOwnershipToken" if exc.field == OWNERSHIP_TOKEN_FIELD else "InvalidParameters"
        )
        return ProvisioningRejected(400, code, str(exc))
    if isinstance(exc, PermissionDeniedError):
        return ProvisioningRejected(403, "AccessDenied", str(exc))
    if isinstance(exc, NotFoundError):
        return ProvisioningRejected(404, "ResourceNotFound", str(exc))
    if isinstance(exc, CloudConflictError):
        return ProvisioningRejected(409, "ResourceConflict", str(exc))
    return ProvisioningRejected(400, "InvalidRequest", str(exc))


def _unreadable(exc: ProvisioningPayloadError) -> ProvisioningRejected | InvalidRequestError:
    """A payload that is not a JSON object is InvalidPayload; a bad field is an invalid request naming it."""
    if exc.field is None:
        return ProvisioningRejected(400, "InvalidPayload", str(exc))
    return InvalidRequestError(exc.field, exc.problem)


class ProvisioningWorker:
    """Serves provisioning requests until closed; ``on_registered`` runs on the loop after each new thing.

    ``clock`` gives the time the cleanup of expired ownership tokens goes by.
    """

    #: What the cloud's logs call this worker.
    name = "provisioning"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        authority: CertificateAuthority,
        connection: BrokerConnection,
        *,
        on_registered: Callable[[], None] | None = None,
        clock: Callable[[], datetime.datetime] = utcnow,
        cleanup_interval: datetime.timedelta = CLEANUP_INTERVAL,
    ) -> None:
        self._sessions = sessions
        self._authority = authority
        self._on_registered = on_registered
        self._clock = clock
        self._cleanup_interval = cleanup_interval
        self._cleaned_at: datetime.datetime | None = None
        self._cleaner: asyncio.Task[None] | None = None
        self._link = WorkerLink(
            connection,
            client_id=_CLIENT_ID,
            filters=(CREATE_TOPIC, CREATE_FROM_CSR_TOPIC, PROVISION_FILTER),
            on_message=self._answer,
        )

    async def start(self) -> None:
        """Connect and subscribe to the request topics.

        Raises:
            OSError: the broker cannot be reached or its TLS certificate does not verify.
            ConnectionError: the broker refused or did not answer within 10 s.
        """
        await self._link.start()
        self._cleaner = asyncio.create_task(self._clean_up_periodically(), name="ownership-token-cleanup")

    async def close(self) -> None:
        """Disconnect; requests being answered and a cleanup under way are abandoned."""
        if self._cleaner is not None:
            self._cleaner.cancel()
            await asyncio.gather(self._cleaner, return_exceptions=True)
        await self._link.close()

    async def clean_up_if_due(self) -> service.Cleanup | None:
        """Clean up expired ownership tokens unless the last cleanup is less than ``cleanup_interval`` ago
        by the clock; returns what it did, or ``None`` when it was not due."""
        now = self._clock()
        if self._cleaned_at is not None and now - self._cleaned_at < self._cleanup_interval:
            return None
        self._cleaned_at = now
        return await asyncio.to_thread(self._clean_up, now)

    def _clean_up(self, now: datetime.datetime) -> service.Cleanup:
        with self._sessions() as session:
            return service.clean_up_ownership_tokens(session, now=now)

    async def _clean_up_periodically(self) -> None:
        while True:
            try:
                await self.clean_up_if_due()
            except Exception:
                logger.exception("ownership-token-cleanup-failed")
            await asyncio.sleep(self._cleanup_interval.total_seconds())

    async def _answer(self, topic: str, payload: bytes) -> None:
        registered = False
        outcome: Outcome
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
        self._link.publish(reply_topic(topic, outcome), reply)
        if registered and self._on_registered is not None:
            self._on_registered()

    def _handle(self, topic: str, payload: bytes) -> tuple[bytes, bool]:
        """The accepted reply to the request, and whether a thing was registered. Blocks."""
        with self._sessions() as session:
            try:
                try:
                    if topic == CREATE_TOPIC:
                        parse_create_keys_request(payload)
                        return self._create(session, None), False
                    if topic == CREATE_FROM_CSR_TOPIC:
                        csr = parse_create_from_csr_request(payload).certificate_signing_request
                        return self._create(session, csr), False
                    template = template_name(topic)
                    if template is None:
                        raise ProvisioningRejected(
                            404, "ResourceNotFound", f"No provisioning operation on {topic!r}"
                        )
                    return self._register(session, template, parse_register_request(payload)), True
                except ProvisioningPayloadError as exc:
                    raise _unreadable(exc) from exc
            except CloudError as exc:
                session.rollback()
                raise _rejection(exc) from exc

    def _create(self, session: Session, csr_pem: str | None) -> bytes:
        claimed = service.create_claimed_certificate(session, self._authority, csr_pem=csr_pem)
        return build_create_accepted(
            CreateCertificateAccepted(
                certificate_id=claimed.certificate.certificate_id,
                certificate_pem=claimed.certificate.pem,
                certificate_ownership_token=claimed.ownership_token,
                private_key=claimed.private_key_pem,
            )
        )

    def _register(self, session: Session, template: str, request: RegisterThingRequest) -> bytes:
        registered = registration.register_thing(
            session, template, request.certificate_ownership_token, request.parameters
        )
        return build_register_accepted(
            RegisterThingAccepted(registered.thing_name, registered.device_configuration)
        )

"""Answers the client-device conversations core devices hold with the cloud (:mod:`edgewise.protocol.client_devices`):
the trust list (``clientdevices/get``), connectivity updates (``connectivity/update``) and core CA updates
(``clientdevices/ca/update``), each answered on ``accepted`` or ``rejected`` with the request's ``clientToken``.

The core device is the one in the topic: the broker's ACL (the default device policy) lets a device publish only
under ``$aws/things/<its own name>/``. The trust list carries the core's associated client devices with the
SHA-256 of each ACTIVE certificate, the cloud CA that issues device certificates and that CA's CRL (rebuilt when
a certificate's status changes, otherwise reused for up to a day, since signing one costs a signature).

The worker tells a core device on ``clientdevices/changed`` when its trust list changed: it keeps a digest of
each core's list, and compares them again when woken (after an API write to associations, things or
certificates) and every ``poll_interval`` seconds (a change made by another cloud process). The first digests
are taken at start without notices; a core asks for its list whenever it connects anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable
from typing import Final, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker import BrokerConnection
from edgewise.cloud.client_devices import service
from edgewise.cloud.errors import NotFoundError
from edgewise.cloud.identity import CertificateAuthority, held_serials, revoked_serials
from edgewise.cloud.workerlink import PacketTooLargeError, WorkerLink
from edgewise.protocol import client_devices as protocol
from edgewise.protocol.client_devices import (
    ClientDeviceList,
    ClientDeviceProtocolError,
    ClientDeviceRejection,
    ConnectivityAccepted,
    RejectionCode,
)

logger = logging.getLogger(__name__)

_CLIENT_ID: Final = "edgewise-client-devices"
_FILTERS: Final = (protocol.GET_FILTER, protocol.CONNECTIVITY_FILTER, protocol.CA_FILTER)
#: How long a CRL is handed out before it is signed again although no status changed.
_CRL_REUSE: Final = datetime.timedelta(days=1)

_Request = TypeVar("_Request")


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Refused(Exception):
    """A request answered on ``rejected``."""

    def __init__(self, code: RejectionCode, message: str) -> None:
        super().__init__(message)
        self.code: RejectionCode = code
        self.message = message


class ClientDevicesWorker:
    """Serves core devices' client-device requests and change notices until closed."""

    #: What the cloud's logs call this worker.
    name = "client-devices"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        authority: CertificateAuthority,
        connection: BrokerConnection,
        *,
        poll_interval: float = 10.0,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self._sessions = sessions
        self._authority = authority
        self._poll_interval = poll_interval
        self._clock = clock
        self._digests: dict[str, str] = {}
        self._crl: tuple[tuple[list[int], list[int]], datetime.datetime, str] | None = None
        self._wake = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._link = WorkerLink(connection, client_id=_CLIENT_ID, filters=_FILTERS, on_message=self._answer)

    async def start(self) -> None:
        """Take the first digests, connect and subscribe.

        Raises:
            OSError: the broker cannot be reached.
            ConnectionError: the broker refused or did not answer.
        """
        self._digests = await asyncio.to_thread(self._read_digests)
        await self._link.start()
        self._watcher = asyncio.create_task(self._watch_changes(), name="client-devices-changes")

    async def close(self) -> None:
        """Stop watching and disconnect."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await self._link.close()

    def wake(self) -> None:
        """Look for changed trust lists now. Must be called from the event loop thread."""
        self._wake.set()

    # -- requests ---------------------------------------------------------------------------------------

    async def _answer(self, topic: str, payload: bytes) -> None:
        request = protocol.core_of_request(topic)
        if request is None:
            return
        core, kind = request
        try:
            if kind == "get":
                reply_topic = protocol.get_reply_topic
                answer = await asyncio.to_thread(self._trust_list, core, payload)
            elif kind == "connectivity":
                reply_topic = protocol.connectivity_reply_topic
                answer = await asyncio.to_thread(self._update_connectivity, core, payload)
            else:
                reply_topic = protocol.ca_reply_topic
                answer = await asyncio.to_thread(self._update_authorities, core, payload)
        except _Refused as refused:
            logger.warning("client-devices-request-rejected core=%s kind=%s: %s", core, kind, refused.message)
            rejection = ClientDeviceRejection(
                protocol.client_token_of(payload), refused.code, refused.message[:1024]
            )
            self._send(reply_topic(core, protocol.REJECTED), protocol.build_rejection(rejection))
            return
        self._send(reply_topic(core, protocol.ACCEPTED), answer)

    def _send(self, topic: str, payload: bytes) -> None:
        try:
            self._link.publish(topic, payload)
        except PacketTooLargeError as exc:
            logger.error("client-devices-answer-dropped topic=%s: %s", topic, exc)

    def _run(
        self,
        core: str,
        payload: bytes,
        parse: Callable[[bytes], _Request],
        act: Callable[[Session, _Request], bytes],
    ) -> bytes:
        """Parse ``payload`` and act on it in a session; failures as rejections. Blocks."""
        try:
            request = parse(payload)
        except ClientDeviceProtocolError as exc:
            raise _Refused(exc.code, str(exc)) from None
        try:
            with self._sessions() as session:
                return act(session, request)
        except NotFoundError as exc:
            raise _Refused(
                protocol.INVALID_PAYLOAD, f"Core device {core!r} is not a thing here: {exc}"
            ) from None
        except ClientDeviceProtocolError as exc:
            raise _Refused(protocol.INTERNAL_ERROR, str(exc)) from None
        except SQLAlchemyError as exc:
            logger.exception("client-devices-request-failed core=%s", core)
            raise _Refused(
                protocol.INTERNAL_ERROR, f"The cloud failed to answer: {type(exc).__name__}"
            ) from None

    def _trust_list(self, core: str, payload: bytes) -> bytes:
        def answer(session: Session, token: str) -> bytes:
            devices = service.client_devices_of(session, core)
            crl = self._current_crl(session)
            listed = ClientDeviceList(devices, (self._authority.certificate_pem,), crl, self._clock())
            logger.info("client-devices-listed core=%s devices=%d", core, len(devices))
            return protocol.build_client_device_list(token, listed)

        return self._run(core, payload, protocol.parse_get_request, answer)

    def _update_connectivity(self, core: str, payload: bytes) -> bytes:
        def answer(session: Session, update: protocol.ConnectivityUpdate) -> bytes:
            stored = service.set_connectivity(session, core, update.connectivity_info)
            logger.info(
                "connectivity-updated core=%s entries=%d version=%d",
                core,
                len(stored.entries),
                stored.version,
            )
            return protocol.build_connectivity_accepted(
                ConnectivityAccepted(update.client_token, stored.version)
            )

        return self._run(core, payload, protocol.parse_connectivity_update, answer)

    def _update_authorities(self, core: str, payload: bytes) -> bytes:
        def answer(session: Session, update: protocol.CaUpdate) -> bytes:
            service.set_core_authorities(session, core, update.ca_certificates)
            logger.info("core-ca-updated core=%s certificates=%d", core, len(update.ca_certificates))
            return protocol.build_ca_accepted(update.client_token)

        return self._run(core, payload, protocol.parse_ca_update, answer)

    def _current_crl(self, session: Session) -> str:
        """The CA's CRL for the statuses in the store, signed again only when they changed or a day passed."""
        serials = (revoked_serials(session), held_serials(session))
        now = datetime.datetime.now(datetime.UTC)
        cached = self._crl
        if cached is not None and cached[0] == serials and now - cached[1] < _CRL_REUSE:
            return cached[2]
        crl = self._authority.build_crl(serials[0], held_serials=serials[1])
        self._crl = (serials, now, crl)
        return crl

    # -- change notices ---------------------------------------------------------------------------------

    def _read_digests(self) -> dict[str, str]:
        with self._sessions() as session:
            return service.trust_digests(session)

    async def _watch_changes(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            self._wake.clear()
            try:
                digests = await asyncio.to_thread(self._read_digests)
            except SQLAlchemyError:
                logger.exception("client-devices-changes-unread")
                continue
            changed = sorted(
                core
                for core in digests.keys() | self._digests.keys()
                if digests.get(core) != self._digests.get(core)
            )
            self._digests = digests
            for core in changed:
                logger.info("client-devices-changed core=%s", core)
                self._send(protocol.changed_topic(core), protocol.build_changed(self._clock()))

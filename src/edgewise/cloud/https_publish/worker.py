"""HTTPS publish as one of the cloud's workers: the listener, and the broker connection it publishes through.

Every accepted message goes into the same broker as the devices' MQTT publishes, through a
:class:`~edgewise.cloud.workerlink.WorkerLink` of its own (client id ``edgewise-https-publish``, subscribed to
nothing), so whoever subscribes there (devices, the telemetry ingest, the rules) gets it. QoS 1 is answered
200 only once the broker has acknowledged the message; QoS 0 once it is handed to the connection. Authorization
reads the store in a worker thread, never on the loop.

Given the cloud's object store, it also takes object uploads (the stream manager's S3 export tasks): the upload
is authorized as an ``iot:Publish`` on :func:`edgewise.protocol.object_uploads.upload_topic`, its body streamed into the store (which
keeps it only if its SHA-256 is the declared one) in a worker thread, and the object filed under the thing with
:func:`edgewise.cloud.telemetry.objects.record_object`.

It also answers Greengrass discovery: the certificate must be an ACTIVE certificate of the thing asked about
(403 otherwise, as AWS answers a device asking for another thing), and a thing associated with no core device is
a 404 (:mod:`edgewise.cloud.client_devices.discovery`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker import BrokerConnection
from edgewise.cloud.client_devices.discovery import discover_body
from edgewise.cloud.components import ArtifactStore
from edgewise.cloud.components.errors import ArtifactStoreError, DigestMismatchError
from edgewise.cloud.https_publish.authorization import Publisher, authorize_publish, identify
from edgewise.cloud.https_publish.errors import (
    PublishForbiddenError,
    PublishPayloadTooLargeError,
    PublishTargetNotFoundError,
    PublishUnavailableError,
    UploadDigestMismatchError,
    UploadUnavailableError,
)
from edgewise.cloud.https_publish.server import HttpsPublishServer, HttpsPublishSettings
from edgewise.cloud.https_publish.uploads import BodyReader, ObjectUpload
from edgewise.cloud.telemetry.objects import record_object
from edgewise.cloud.workerlink import PacketTooLargeError, WorkerLink
from edgewise.protocol.object_uploads import DIGEST_HEADER, upload_topic

logger = logging.getLogger(__name__)

CLIENT_ID: Final = "edgewise-https-publish"
#: Seconds the broker has to acknowledge a QoS 1 message before the device is answered 503.
PUBLISH_TIMEOUT: Final = 10.0


class HttpsPublishWorker:
    """Serves HTTPS publish until closed: connects to the broker, then listens."""

    #: What the cloud's logs call this worker.
    name = "https-publish"

    def __init__(
        self,
        settings: HttpsPublishSettings,
        sessions: sessionmaker[Session],
        connection: BrokerConnection,
        *,
        store: ArtifactStore | None = None,
        publish_timeout: float = PUBLISH_TIMEOUT,
    ) -> None:
        self._sessions = sessions
        self._store = store
        self._publish_timeout = publish_timeout
        self._link = WorkerLink(connection, client_id=CLIENT_ID, filters=(), on_message=_ignore)
        self.server = HttpsPublishServer(
            settings,
            authorize=self._authorize,
            publish=self._publish,
            upload=None if store is None else self._upload,
            discover=self._discover,
        )

    async def start(self) -> None:
        """Connect to the broker, then listen.

        Raises:
            OSError: the broker cannot be reached.
            ConnectionError: the broker refused the connection.
            HttpsPublishStartError: the port is in use or the TLS files cannot be used.
        """
        await self._link.start()
        await self.server.start()

    async def close(self) -> None:
        """Stop listening (requests in flight are abandoned), then disconnect."""
        await self.server.close()
        await self._link.close()

    async def _authorize(self, certificate: bytes, topic: str) -> Publisher:
        return await asyncio.to_thread(self._authorize_blocking, certificate, topic)

    def _authorize_blocking(self, certificate: bytes, topic: str) -> Publisher:
        with self._sessions() as session:
            return authorize_publish(session, certificate, topic)

    async def _discover(self, certificate: bytes, thing: str) -> bytes:
        return await asyncio.to_thread(self._discover_blocking, certificate, thing)

    def _discover_blocking(self, certificate: bytes, thing: str) -> bytes:
        with self._sessions() as session:
            asking = identify(session, certificate).thing_name
            if asking != thing:
                raise PublishForbiddenError(
                    f"the certificate of thing {asking!r} may not discover for thing {thing!r}"
                )
            body = discover_body(session, thing)
        if body is None:
            raise PublishTargetNotFoundError(f"Thing {thing!r} is not associated with any core device")
        return body

    def _authorize_upload(self, certificate: bytes, bucket: str) -> Publisher:
        with self._sessions() as session:
            thing = identify(session, certificate).thing_name
            return authorize_publish(session, certificate, upload_topic(thing, bucket))

    async def _upload(self, certificate: bytes, upload: ObjectUpload, body: BodyReader) -> None:
        store = self._store
        assert store is not None
        publisher = await asyncio.to_thread(self._authorize_upload, certificate, upload.bucket)
        try:
            stored = await asyncio.to_thread(store.put, body, expected_sha256=upload.sha256)
        except DigestMismatchError as exc:
            raise UploadDigestMismatchError(
                f"{DIGEST_HEADER}: the body's SHA-256 is {exc.actual}, not {upload.sha256}; nothing is stored"
            ) from exc
        except ArtifactStoreError as exc:
            raise UploadUnavailableError(f"The object store did not take the upload: {exc}") from exc
        await asyncio.to_thread(self._record, publisher, upload, stored.size)
        logger.info(
            "object-uploaded thing=%s bucket=%s key=%s bytes=%d sha256=%s",
            publisher.thing_name,
            upload.bucket,
            upload.key[:200],
            stored.size,
            upload.sha256,
        )

    def _record(self, publisher: Publisher, upload: ObjectUpload, size: int) -> None:
        with self._sessions() as session:
            record_object(
                session,
                thing_name=publisher.thing_name,
                bucket=upload.bucket,
                key=upload.key,
                sha256=upload.sha256,
                size=size,
                user_metadata=upload.user_metadata,
                certificate_id=publisher.certificate_id,
            )

    async def _publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> None:
        try:
            if qos == 1:
                await self._link.publish_acknowledged(
                    topic, payload, retain=retain, timeout=self._publish_timeout
                )
            else:
                self._link.publish(topic, payload, qos=0, retain=retain)
        except PacketTooLargeError as exc:
            raise PublishPayloadTooLargeError(exc.limit) from exc
        except TimeoutError as exc:
            raise PublishUnavailableError(
                f"The broker did not acknowledge the message within {self._publish_timeout:.0f} s; send it again"
            ) from exc
        except ConnectionError as exc:
            raise PublishUnavailableError(f"The broker did not take the message: {exc}") from exc


async def _ignore(_topic: str, _payload: bytes) -> None:
    """The link subscribes to nothing, so nothing arrives."""

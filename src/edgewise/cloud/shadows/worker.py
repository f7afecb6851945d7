"""Answers AWS IoT Device Shadow requests devices publish on ``$aws/things/<thing>/shadow/[name/<shadow>/]<op>``.

``get``, ``update`` and ``delete`` are answered on ``<op>/accepted`` or ``<op>/rejected`` (AWS's error document,
with the request's ``clientToken``); an accepted update is also published on ``update/documents`` and, when
desired and reported differ, ``update/delta``. The thing is the one in the topic: the broker's ACL (the default
device policy) lets a device publish only under ``$aws/things/<its own name>/``, so a request on another thing's
shadow never arrives here. The worker subscribes to the request topics only, so its own answers do not come back.

Changes made through the REST API leave the messages devices are owed in the database
(:func:`~edgewise.cloud.shadows.service.take_unpublished`); :meth:`ShadowWorker.wake` (called after each API write
under ``/api/v1/things/``) and a periodic check publish them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker import BrokerConnection
from edgewise.cloud.partition import Partition
from edgewise.cloud.shadows import service
from edgewise.cloud.workerlink import PacketTooLargeError, WorkerLink
from edgewise.protocol.shadow.document import (
    REQUEST_FILTERS,
    JsonObject,
    client_token_of,
    encode_document,
    error_document,
    parse_request_topic,
    topic_prefix,
)
from edgewise.protocol.shadow.errors import ShadowError

logger = logging.getLogger(__name__)

_CLIENT_ID = "edgewise-shadows"


class ShadowWorker:
    """Serves the shadow MQTT protocol until closed."""

    #: What the cloud's logs call this worker.
    name = "shadows"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        connection: BrokerConnection,
        *,
        poll_interval: float = 10.0,
        clock: Callable[[], int] = service.now_seconds,
        partition: Partition | None = None,
    ) -> None:
        self._sessions = sessions
        #: With several cloud processes only process 0 publishes REST changes (the API runs there), so no
        #: message is taken and sent twice.
        self._publishes_api_changes = partition is None or partition.index == 0
        self._clock = clock
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._publisher: asyncio.Task[None] | None = None
        self._link = WorkerLink(
            connection,
            client_id=_CLIENT_ID,
            filters=REQUEST_FILTERS,
            on_message=self._answer,
            partition=partition,
        )

    async def start(self) -> None:
        """Connect and subscribe.

        Raises:
            OSError: the broker cannot be reached.
            ConnectionError: the broker refused or did not answer.
        """
        await self._link.start()
        if self._publishes_api_changes:
            self._publisher = asyncio.create_task(self._publish_api_changes(), name="shadows-publisher")

    async def close(self) -> None:
        """Stop publishing and disconnect."""
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher
        await self._link.close()

    def wake(self) -> None:
        """Publish what REST changes owe devices now. Must be called from the event loop thread."""
        self._wake.set()

    def _send(self, topic: str, document: Any) -> None:
        try:
            self._link.publish(topic, encode_document(document))
        except PacketTooLargeError as exc:
            logger.warning("shadow-answer-dropped topic=%s: %s", topic, exc)

    async def _answer(self, topic: str, payload: bytes) -> None:
        request = parse_request_topic(topic)
        if request is None:
            return
        thing, name, operation = request
        prefix = f"{topic_prefix(thing, name)}/{operation}"
        now = self._clock()
        try:
            messages = await asyncio.to_thread(self._run, thing, name, operation, payload, now)
        except ShadowError as exc:
            rejection = error_document(exc.code, exc.message, now=now, client_token=client_token_of(payload))
            self._send(f"{prefix}/rejected", rejection)
            return
        except SQLAlchemyError:
            logger.exception("shadow-request-failed topic=%s", topic)
            rejection = error_document(
                500, "Internal service failure", now=now, client_token=client_token_of(payload)
            )
            self._send(f"{prefix}/rejected", rejection)
            return
        for message_topic, document in messages:
            self._send(message_topic, document)

    def _run(
        self, thing: str, name: str, operation: str, payload: bytes, now: int
    ) -> list[tuple[str, JsonObject]]:
        prefix = topic_prefix(thing, name)
        token = client_token_of(payload)
        with self._sessions() as session:
            if operation == "update":
                outcome = service.update_shadow(session, thing, name, payload, now=now)
                return [
                    (f"{prefix}/update/accepted", outcome.accepted),
                    *service.update_messages(thing, name, outcome),
                ]
            if operation == "get":
                document = service.get_shadow(session, thing, name, now=now)
            else:
                document = service.delete_shadow(session, thing, name, now=now)
        if token is not None:
            document["clientToken"] = token
        return [(f"{prefix}/{operation}/accepted", document)]

    async def _publish_api_changes(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            self._wake.clear()
            try:
                messages = await asyncio.to_thread(self._take_unpublished)
            except SQLAlchemyError:
                logger.exception("shadow-publish-failed")
                continue
            for topic, document in messages:
                self._send(topic, document)

    def _take_unpublished(self) -> list[tuple[str, Any]]:
        with self._sessions() as session:
            return service.take_unpublished(session)

"""Where export batches go: the :class:`TelemetryChannel` interface, and the Edgewise cloud over the cloud link.

:class:`CloudTelemetryChannel` publishes each batch (QoS 1) on the thing's batch topic
(:mod:`edgewise.protocol.telemetry`) and waits for the cloud's answer, matched by client token. The cloud link
keeps QoS 1 publishes in its disk spool until the broker acknowledges them, and resends them after a reconnect;
an exporter also resends a batch that got no answer. So that the spool never piles up copies of one batch:

- a batch is published only while the link is connected (offline, :meth:`send` waits for the connection);
- each publish carries an MQTT message expiry equal to the answer timeout: a copy the spool still holds when the
  exporter has given up on it is dropped by the spool instead of sent, so at most one live copy of a batch is in
  the spool at any time;
- a resent batch keeps its client token and its records, and the cloud stores each (thing, stream, sequence
  number) once, so a copy that still arrives is counted as a duplicate, never stored twice;
- a batch published before the link reconnected fails at once (ExportDeliveryError) and is sent again at the
  exporter's first back-off: its answer may have been lost with the old connection (a cloud that stopped while
  storing it, say), and waiting out the whole answer timeout would stall the export for nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

from edgewise.errors import EdgewiseError
from edgewise.protocol import telemetry
from edgewise.runtime.cloudlink import CloudLinkError, MessageProperties

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink import CloudLink, CloudMessage, CloudSubscription

logger = logging.getLogger(__name__)

DEFAULT_ANSWER_TIMEOUT: Final = 30.0

Answer = telemetry.BatchAccepted | telemetry.BatchRejection


class ExportDeliveryError(EdgewiseError):
    """A batch whose destination gave no answer (offline, timed out, unreachable); the exporter sends it again."""


class TelemetryChannel(Protocol):
    """Sends export batches to one destination."""

    async def send(self, batch: telemetry.ExportBatch) -> Answer:
        """The destination's answer to ``batch``.

        Raises:
            ExportDeliveryError: no answer came; the batch may or may not have been stored.
        """
        ...


class CloudTelemetryChannel:
    """Export batches to the Edgewise cloud over the runtime's cloud link. Must be used from the event loop."""

    def __init__(self, link: CloudLink, thing: str, *, timeout: float = DEFAULT_ANSWER_TIMEOUT) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self._link = link
        self._thing = thing
        self._timeout = timeout
        self._waiting: dict[str, asyncio.Future[Answer]] = {}
        self._subscriptions: list[CloudSubscription] = []
        self._subscribing = asyncio.Lock()
        #: Client tokens of the batches published and not answered yet.
        self._published: set[str] = set()
        self._remove_listener: Callable[[], None] | None = None

    async def send(self, batch: telemetry.ExportBatch) -> Answer:
        """Publish ``batch`` once connected and wait for the cloud's answer.

        Raises:
            ExportDeliveryError: the cloud did not answer within the timeout, or the link refused the publish.
        """
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting[batch.client_token] = future
        try:
            await self._subscribe()
            await self._link.wait_connected()
            await self._link.publish(
                telemetry.batch_topic(self._thing),
                telemetry.build_batch(batch),
                qos=1,
                properties=MessageProperties(message_expiry_interval=max(1, int(self._timeout))),
            )
            self._published.add(batch.client_token)
            async with asyncio.timeout(self._timeout):
                return await future
        except TimeoutError:
            msg = f"The cloud did not answer export batch {batch.client_token} within {self._timeout:.0f} s"
            raise ExportDeliveryError(msg) from None
        except CloudLinkError as error:
            msg = f"The cloud link did not take export batch {batch.client_token}: {error}"
            raise ExportDeliveryError(msg) from error
        finally:
            self._waiting.pop(batch.client_token, None)
            self._published.discard(batch.client_token)

    def close(self) -> None:
        """Stop listening for answers; batches still waiting get ExportDeliveryError."""
        for subscription in self._subscriptions:
            subscription.unsubscribe()
        self._subscriptions.clear()
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ExportDeliveryError("The export channel to the cloud was closed"))

    async def _subscribe(self) -> None:
        async with self._subscribing:
            if self._subscriptions:
                return
            self._remove_listener = self._link.add_status_listener(self._connection_changed)
            for outcome in (telemetry.ACCEPTED, telemetry.REJECTED):
                topic = telemetry.reply_topic(self._thing, outcome)
                self._subscriptions.append(await self._link.subscribe(topic, self._received, qos=1))

    def _connection_changed(self, connected: bool) -> None:
        if not connected:
            return
        for token in sorted(self._published):
            future = self._waiting.get(token)
            if future is not None and not future.done():
                future.set_exception(
                    ExportDeliveryError(
                        f"The cloud link reconnected before export batch {token} was answered"
                    )
                )

    def _received(self, message: CloudMessage) -> None:
        answer = telemetry.read_reply(message.topic, message.payload)
        if answer is None:
            logger.warning("Ignoring an export batch answer on %r that cannot be read", message.topic)
            return
        future = None if answer.client_token is None else self._waiting.get(answer.client_token)
        if future is not None and not future.done():
            future.set_result(answer)


class UnavailableChannel:
    """The channel of a runtime without a cloud section: every batch waits, and the export status says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def send(self, batch: telemetry.ExportBatch) -> Answer:
        raise ExportDeliveryError(self.reason)

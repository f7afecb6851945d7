"""The MQTT connection a cloud worker keeps to the broker (the managed broker's worker listener, or an external one).

A worker (fleet status, provisioning, jobs...) subscribes to device topics and answers or records what arrives.
paho's network thread hands each message to the event loop, where ``on_message`` runs as a task; the task set
is tracked so that :meth:`WorkerLink.close` can abandon what is still running.

Sizes are bounded both ways. A worker takes device payloads of at most ``max_payload`` bytes (AWS IoT Core's
128 KiB per message by default): it tells the broker so in its CONNECT (Maximum Packet Size), so an MQTT 5
broker drops larger messages instead of sending them, and drops any that still arrive before parsing them. It
never sends a packet larger than the Maximum Packet Size the broker announced in its CONNACK: the broker would
disconnect it, and paho would send the same message again on reconnecting, forever.

When the cloud runs as several processes, a link given a :class:`~edgewise.cloud.partition.Partition` keeps only
the messages of the things its process owns (``key`` names a message's thing; a message without one belongs to
process 0). The others are dropped in paho's thread, before they cost the event loop anything. Every process's
links subscribe to the same filters, so process ``i > 0`` appends ``-i`` to the client id: the broker would
otherwise disconnect one of two clients with the same id.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edgewise.cloud.broker import BrokerConnection
from edgewise.cloud.partition import Partition, thing_of_topic
from edgewise.errors import EdgewiseError

logger = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], Awaitable[None]]
#: The thing a message's topic is about, or None.
TopicKey = Callable[[str], str | None]
#: The largest payload a worker takes from a device: AWS IoT Core's limit per message.
DEVICE_PAYLOAD_MAX_BYTES = 128 * 1024
#: What a PUBLISH packet holds besides its payload, at most: fixed header, topic (65,535 bytes at most in MQTT),
#: packet identifier and properties.
PACKET_OVERHEAD_MAX_BYTES = 5 + 2 + 65_535 + 2 + 1024
_CONNECT_TIMEOUT = 10.0
_KEEPALIVE = 30


class PacketTooLargeError(EdgewiseError):
    """A message larger than the broker's Maximum Packet Size; sending it would get the worker disconnected."""

    def __init__(self, topic: str, size: int, limit: int) -> None:
        super().__init__(
            f"A {size}-byte message on {topic!r} is larger than the {limit}-byte packets the broker accepts"
        )
        self.topic = topic
        self.size = size
        self.limit = limit


def publish_packet_size(topic: str, payload: bytes) -> int:
    """The size of a QoS 1 PUBLISH packet without properties carrying ``payload`` on ``topic``."""
    remaining = 2 + len(topic.encode()) + 2 + 1 + len(payload)
    length_bytes = 1 + (remaining >= 128) + (remaining >= 16_384) + (remaining >= 2_097_152)
    return 1 + length_bytes + remaining


class WorkerLink:
    """One worker's subscription to ``filters``; every message runs ``on_message(topic, payload)`` on the loop."""

    def __init__(
        self,
        connection: BrokerConnection,
        *,
        client_id: str,
        filters: Sequence[str],
        on_message: MessageHandler,
        max_payload: int = DEVICE_PAYLOAD_MAX_BYTES,
        partition: Partition | None = None,
        key: TopicKey = thing_of_topic,
    ) -> None:
        if partition is not None and partition.index > 0:
            client_id = f"{client_id}-{partition.index}"
        self._connection = connection
        self._client_id = client_id
        self._partition = partition
        self._key = key
        self._filters = list(filters)
        self._on_message = on_message
        self._max_payload = max_payload
        #: The broker's Maximum Packet Size from its CONNACK; None when it announced none.
        self._max_packet: int | None = None
        self._ready = threading.Event()
        self._failure: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Task[None]] = set()
        #: Futures of :meth:`publish_acknowledged` by message id, resolved on the loop by the broker's PUBACK.
        self._acknowledgements: dict[int, asyncio.Future[None]] = {}
        self._client = connection.new_client(client_id)
        self._client.on_connect = self._thread_connected
        self._client.on_subscribe = self._thread_subscribed
        self._client.on_message = self._thread_message
        self._client.on_publish = self._thread_published

    async def start(self) -> None:
        """Connect and subscribe.

        Raises:
            OSError: the broker cannot be reached or its TLS certificate does not verify.
            ConnectionError: the broker refused the connection or a subscription, or did not answer in 10 s.
        """
        self._loop = asyncio.get_running_loop()
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.MaximumPacketSize = self._max_payload + PACKET_OVERHEAD_MAX_BYTES
        await asyncio.to_thread(
            self._client.connect,
            self._connection.host,
            self._connection.port,
            _KEEPALIVE,
            properties=properties,
        )
        self._client.loop_start()
        if not await asyncio.to_thread(self._ready.wait, _CONNECT_TIMEOUT) or self._failure is not None:
            self._client.loop_stop()
            raise ConnectionError(
                f"{self._client_id} could not subscribe on {self._connection.url}: "
                f"{self._failure or f'no answer within {_CONNECT_TIMEOUT:.0f} s'}"
            )
        logger.info("worker-started client=%s broker=%s", self._client_id, self._connection.url)

    async def close(self) -> None:
        """Disconnect; messages still being handled are abandoned."""
        pending = list(self._pending)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1, retain: bool = False) -> None:
        """Queue a publish (paho sends it from its thread; safe to call from the loop).

        Raises:
            PacketTooLargeError: the packet would be larger than the broker's Maximum Packet Size.
        """
        self._send(topic, payload, qos=qos, retain=retain)

    async def publish_acknowledged(
        self, topic: str, payload: bytes, *, retain: bool = False, timeout: float = 10.0
    ) -> None:
        """Publish at QoS 1 and return once the broker has acknowledged the message (its PUBACK). Must be called
        from the loop.

        Raises:
            PacketTooLargeError: the packet would be larger than the broker's Maximum Packet Size.
            TimeoutError: no PUBACK within ``timeout`` seconds; paho keeps the message and sends it again when it
                reconnects, so the broker may still get it.
            ConnectionError: the broker refused the message (a PUBACK with a failure reason code).
        """
        acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        mid = self._send(topic, payload, qos=1, retain=retain)
        # Registered before the next await: the PUBACK reaches the loop through call_soon_threadsafe, so it
        # cannot be handled before this line however fast the broker answers.
        self._acknowledgements[mid] = acknowledged
        try:
            async with asyncio.timeout(timeout):
                await acknowledged
        finally:
            self._acknowledgements.pop(mid, None)

    def _send(self, topic: str, payload: bytes | str, *, qos: int, retain: bool) -> int:
        data = payload.encode() if isinstance(payload, str) else payload
        size = publish_packet_size(topic, data)
        if self._max_packet is not None and size > self._max_packet:
            raise PacketTooLargeError(topic, size, self._max_packet)
        return self._client.publish(topic, data, qos=qos, retain=retain).mid

    def _thread_connected(
        self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            self._failure = f"the broker refused the connection: {reason}"
            self._ready.set()
            return
        self._max_packet = getattr(props, "MaximumPacketSize", None)
        if not self._filters:
            # A link that only publishes has nothing to subscribe to.
            self._ready.set()
            return
        # No-local: a worker never receives what it publishes itself, so no reply reaches a request handler.
        client.subscribe(
            [(topic_filter, SubscribeOptions(qos=1, noLocal=True)) for topic_filter in self._filters]
        )

    def _thread_subscribed(
        self, _client: paho.Client, _userdata: Any, _mid: int, reasons: Any, _props: Any
    ) -> None:
        failed = [reason for reason in reasons if reason.is_failure]
        if failed:
            self._failure = f"the broker refused a subscription: {failed[0]}"
        self._ready.set()

    def _thread_published(
        self, _client: paho.Client, _userdata: Any, mid: int, reason: Any, _props: Any
    ) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._acknowledge, mid, reason)

    def _acknowledge(self, mid: int, reason: Any) -> None:
        acknowledged = self._acknowledgements.get(mid)
        if acknowledged is None or acknowledged.done():
            return
        if getattr(reason, "is_failure", False):
            acknowledged.set_exception(ConnectionError(f"the broker refused the message: {reason}"))
        else:
            acknowledged.set_result(None)

    def _thread_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        assert self._loop is not None
        if self._partition is not None and not self._owns(message.topic):
            return
        if len(message.payload) > self._max_payload:
            logger.warning(
                "worker-message-too-large client=%s topic=%s size=%d limit=%d: dropped",
                self._client_id,
                message.topic,
                len(message.payload),
                self._max_payload,
            )
            return
        self._loop.call_soon_threadsafe(self._dispatch, message.topic, bytes(message.payload))

    def _owns(self, topic: str) -> bool:
        assert self._partition is not None
        thing = self._key(topic)
        return self._partition.index == 0 if thing is None else self._partition.owns(thing)

    def _dispatch(self, topic: str, payload: bytes) -> None:
        task = asyncio.get_running_loop().create_task(self._handle(topic, payload))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _handle(self, topic: str, payload: bytes) -> None:
        logger.debug("worker-message client=%s topic=%s", self._client_id, topic)
        try:
            await self._on_message(topic, payload)
        except Exception:
            logger.exception("worker-message-failed client=%s topic=%s", self._client_id, topic)

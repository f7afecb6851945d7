"""The cloud link: one MQTT 5 connection over mutual TLS, kept up, with a disk spool for publishes.

Built on paho-mqtt the way aiomqtt does it: paho callbacks resolve asyncio futures. Each connection
attempt gets a fresh paho client whose network loop runs in paho's own thread (``loop_start``): paho then
owns the socket, TLS and keep-alive entirely, and the event loop never touches the socket, so a TLS read
can never race a TLS write. Calls into paho from the event loop (publish, subscribe) only queue a packet and
wake that thread; paho's callbacks hop back with ``call_soon_threadsafe``. The blocking TCP connect and TLS
handshake run in a worker thread. Reconnecting is ours, not paho's: a lost connection ends its client,
and the link waits an exponential, jittered delay before the next one.

Every QoS 1 publish is committed to the spool first and removed only after its PUBACK, so a message is
never lost to a disconnect or a restart (it may arrive twice: at least once). Unacknowledged messages are
resent in order on the next connection. Local subscribers share one broker subscription per filter.

A link may announce itself (:class:`ConnectionMessages`): each connection gets a fresh last will and a message
published right after CONNACK, before the spool; presence ("online" retained, "offline" as the will) is built
this way.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edgewise.runtime.cloudlink._message import CloudMessage, ConnectionMessages, MessageProperties
from edgewise.runtime.cloudlink._paho import (
    connect_properties,
    no_delay,
    property_of,
    publish_properties,
    received_message,
    subscribe_properties,
)
from edgewise.runtime.cloudlink._settings import CloudLinkSettings
from edgewise.runtime.cloudlink._spool import Spool
from edgewise.runtime.cloudlink.errors import (
    CloudLinkClosedError,
    CloudLinkError,
    NotConnectedError,
    SubscriptionError,
)
from edgewise.topics import filter_matches, has_wildcards, validate_filter, validate_topic

logger = logging.getLogger(__name__)

StatusListener = Callable[[bool], None]
MessageCallback = Callable[[CloudMessage], None]
#: Called before each connection attempt for the messages that connection announces itself with.
ConnectionMessagesFactory = Callable[[], ConnectionMessages]

_MAX_INFLIGHT = 100  # QoS 1 publishes awaiting PUBACK: AWS IoT Core's limit, or the broker's Receive Maximum
_OPERATION_TIMEOUT_S = 30.0
_CONNECT_TIMEOUT_S = 10.0
_CLOSE_TIMEOUT_S = 5.0
_SESSION_EXPIRY_S = 3600  # the broker keeps our subscriptions and queued QoS 1 messages across a short outage
_STABLE_CONNECTION_S = 30.0  # a connection that lasted this long resets the back-off
_MAX_FILTERS = 10_000
_DISCONNECT_WITH_WILL = 4  # MQTT 5 DISCONNECT reason: the broker publishes the will anyway


@dataclass(frozen=True, slots=True)
class CloudLinkStatistics:
    """A snapshot of the link's counters (since the link started)."""

    connected: bool
    connects: int  #: successful connections
    published: int  #: QoS 1 messages the broker acknowledged, QoS 0 messages written
    spooled: int  #: messages waiting in the spool now (unsent or unacknowledged)
    spooled_bytes: int
    dropped: int  #: messages discarded: spool full (oldest first), QoS 0 while offline, expired
    rejected: int  #: QoS 1 messages the broker refused in its PUBACK
    delivered: int  #: messages received from the broker and handed to local subscribers
    subscriptions: int  #: distinct topic filters subscribed
    last_error: str | None  #: why the last connection attempt failed or the last connection ended


class CloudSubscription:
    """One local subscriber's share of a broker subscription; :meth:`unsubscribe` releases it."""

    def __init__(self, link: CloudLink, entry: _Filter, key: int) -> None:
        self._link = link
        self._entry = entry
        self._key = key

    @property
    def topic_filter(self) -> str:
        return self._entry.topic_filter

    def unsubscribe(self) -> None:
        """Stop receiving; the broker subscription goes when its last subscriber does. Idempotent."""
        self._link._release(self._entry, self._key)


@dataclass(eq=False)
class _Filter:
    """A broker subscription and the local subscribers sharing it."""

    topic_filter: str
    identifier: int
    subscribers: dict[int, tuple[int, MessageCallback]] = dataclasses.field(default_factory=dict)
    qos: int = -1  # the QoS last asked of the broker
    granted: bool = False
    pending: asyncio.Future[ReasonCode | None] | None = None

    def wanted_qos(self) -> int:
        return max((qos for qos, _ in self.subscribers.values()), default=0)


class _Connection:
    """One paho client and its in-flight state; paho's callbacks hop to the event loop and land here."""

    def __init__(self, link: CloudLink, client: paho.Client, messages: ConnectionMessages) -> None:
        loop = asyncio.get_running_loop()
        self.link = link
        self.client = client
        self.messages = messages
        self.loop = loop
        self.connack: asyncio.Future[tuple[ReasonCode, Properties | None]] = loop.create_future()
        self.closed: asyncio.Future[str] = loop.create_future()
        self.subacks: dict[int, asyncio.Future[ReasonCode | None]] = {}
        self.inflight: dict[int, int] = {}  # paho mid -> spool id
        self.window = _MAX_INFLIGHT
        self.use_identifiers = True
        self.error: str | None = None  # paho's last error log line (TLS alerts end up there)
        client.on_connect = self._thread_connect
        client.on_disconnect = self._thread_disconnect
        client.on_publish = self._thread_publish
        client.on_subscribe = self._thread_subscribe
        client.on_message = self._thread_message
        client.on_log = self._thread_log

    # paho's thread

    def _hop(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the event loop is closed: the runtime is exiting
            self.loop.call_soon_threadsafe(callback, *args)

    def _thread_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        self._hop(_resolve, self.connack, (reason, props))

    def _thread_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        self._hop(_resolve, self.closed, f"{reason}: {self.error}" if self.error else str(reason))

    def _thread_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        self._hop(self.link._acknowledged, self, mid, reason)

    def _thread_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, reasons: list[ReasonCode], props: Any
    ) -> None:
        self._hop(self._subscribed, mid, reasons[0] if reasons else None)

    def _thread_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._hop(self.link._deliver, message)

    def _thread_log(self, client: paho.Client, userdata: Any, level: int, text: str) -> None:
        if level == paho.MQTT_LOG_ERR:
            self.error = text

    # event loop

    def _subscribed(self, mid: int, reason: ReasonCode | None) -> None:
        future = self.subacks.pop(mid, None)
        if future is not None:
            _resolve(future, reason)

    def subscribe(self, entry: _Filter) -> asyncio.Future[ReasonCode | None]:
        """Send SUBSCRIBE for ``entry``; the future gets the SUBACK reason, or None if the connection ends."""
        future: asyncio.Future[ReasonCode | None] = self.loop.create_future()
        identifier = entry.identifier if self.use_identifiers else None
        result, mid = self.client.subscribe(
            entry.topic_filter,
            options=SubscribeOptions(qos=entry.qos),
            properties=subscribe_properties(identifier),
        )
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            future.set_result(None)
        else:
            self.subacks[mid] = future
        return future

    def ended(self) -> list[int]:
        """The connection is gone: settle its pending futures, return its unacknowledged spool ids."""
        for future in self.subacks.values():
            _resolve(future, None)
        self.subacks.clear()
        unacknowledged = sorted(self.inflight.values())
        self.inflight.clear()
        return unacknowledged


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


class CloudLink:
    """The runtime's connection to the cloud. Create, :meth:`start`, use from the event loop, :meth:`close`.

    Also an async context manager.
    """

    def __init__(
        self,
        settings: CloudLinkSettings,
        *,
        client_id: str,
        spool_dir: Path,
        connection_messages: ConnectionMessagesFactory | None = None,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self._connection_messages = connection_messages
        self._spool = Spool(spool_dir / "spool.db", max_bytes=settings.spool.max_bytes)
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._connection: _Connection | None = None
        self._connected = asyncio.Event()
        self._listeners: dict[int, StatusListener] = {}
        self._keys = itertools.count(1)
        self._unsent: collections.deque[int] = collections.deque()  # spool ids, oldest first
        self._filters: dict[str, _Filter] = {}
        self._by_identifier: dict[int, _Filter] = {}
        self._wildcard_filters: dict[str, _Filter] = {}
        self._identifiers = itertools.count(1)
        self._tls: ssl.SSLContext | None = None
        self._connects = self._published = self._dropped = self._rejected = self._delivered = 0
        self._last_error: str | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the spool and start connecting in the background; returns without waiting for the broker."""
        if self._task is not None or self._closed:
            msg = "CloudLink.start() may be called once, before close()"
            raise RuntimeError(msg)
        try:
            self._tls = await asyncio.to_thread(self.settings.tls_context)
        except (ssl.SSLError, OSError) as exc:
            settings = self.settings
            msg = (
                f"Cannot load the cloud link's TLS files ({settings.certificate}, {settings.private_key}, "
                f"{settings.root_ca}): {exc}"
            )
            raise CloudLinkError(msg) from exc
        await self._spool.open()
        self._unsent.extend(entry.id for entry in self._spool)
        self._task = asyncio.get_running_loop().create_task(self._maintain(), name="edgewise-cloudlink")
        logger.info(
            "Cloud link to %s:%d as %r started (%d message(s) spooled)",
            self.settings.endpoint,
            self.settings.port,
            self.client_id,
            len(self._spool),
        )

    async def close(self) -> None:
        """Disconnect and stop; spooled messages stay on disk for the next run. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._spool.close()
        logger.info("Cloud link closed")

    async def __aenter__(self) -> CloudLink:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed or self._task is None:
            msg = "The cloud link is closed" if self._closed else "The cloud link is not started"
            raise CloudLinkClosedError(msg)

    # -- status -----------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connection is not None

    async def wait_connected(self) -> None:
        """Return once connected (immediately if connected now)."""
        await self._connected.wait()

    def add_status_listener(self, listener: StatusListener) -> Callable[[], None]:
        """Call ``listener(connected)`` on every connect and disconnect; returns a function that removes it."""
        key = next(self._keys)
        self._listeners[key] = listener

        def remove() -> None:
            self._listeners.pop(key, None)

        return remove

    def _set_status(self, connection: _Connection | None) -> None:
        self._connection = connection
        if connection is None:
            self._connected.clear()
        else:
            self._connected.set()
        for listener in list(self._listeners.values()):
            try:
                listener(connection is not None)
            except Exception:
                logger.exception("A cloud connection status listener failed")

    def statistics(self) -> CloudLinkStatistics:
        return CloudLinkStatistics(
            connected=self.connected,
            connects=self._connects,
            published=self._published,
            spooled=len(self._spool),
            spooled_bytes=self._spool.size_bytes,
            dropped=self._dropped + self._spool.dropped,
            rejected=self._rejected,
            delivered=self._delivered,
            subscriptions=len(self._filters),
            last_error=self._last_error,
        )

    # -- connecting ---------------------------------------------------------------------------------------

    def _delay(self, failures: int) -> float:
        """Exponential back-off with "equal jitter": half fixed, half random, capped at maxDelay."""
        reconnect = self.settings.reconnect
        ceiling = min(reconnect.max_delay, reconnect.min_delay * 2.0 ** min(failures, 32))
        return max(reconnect.min_delay, ceiling / 2 + random.uniform(0, ceiling / 2))

    async def _maintain(self) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        first = True
        while True:
            started = loop.time()
            try:
                connected = await self._connect_once(clean_start=first)
            except Exception as exc:
                connected = False
                self._last_error = str(exc) or type(exc).__name__
            first = first and not connected
            if connected and loop.time() - started >= _STABLE_CONNECTION_S:
                failures = 0
            delay = self._delay(failures)
            failures += 1
            logger.warning(
                "Cloud connection to %s:%d %s: %s; next attempt in %.1f s",
                self.settings.endpoint,
                self.settings.port,
                "lost" if connected else "failed",
                self._last_error,
                delay,
            )
            await asyncio.sleep(delay)

    def _new_client(self, messages: ConnectionMessages) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            reconnect_on_failure=False,
        )
        client.on_socket_open = no_delay
        client.tls_set_context(self._tls)
        client.connect_timeout = _CONNECT_TIMEOUT_S
        client.max_inflight_messages_set(_MAX_INFLIGHT)
        will = messages.will
        if will is not None:
            client.will_set(
                will.topic,
                will.payload,
                will.qos,
                will.retain,
                publish_properties(will.properties, PacketTypes.WILLMESSAGE),
            )
        return client

    def _open_blocking(self, client: paho.Client, clean_start: bool) -> None:
        """TCP connect, TLS handshake, CONNECT, then start paho's network thread. Blocks."""
        settings = self.settings
        client.connect(
            settings.endpoint,
            settings.port,
            keepalive=settings.keep_alive,
            clean_start=clean_start,
            properties=connect_properties(_SESSION_EXPIRY_S),
        )
        client.loop_start()

    async def _connect_once(self, *, clean_start: bool) -> bool:
        """One connection, from attempt to end; True when it got as far as a successful CONNACK."""
        messages = self._connection_messages() if self._connection_messages else ConnectionMessages()
        client = self._new_client(messages)
        connection = _Connection(self, client, messages)
        opening = asyncio.ensure_future(asyncio.to_thread(self._open_blocking, client, clean_start))
        try:
            try:
                await asyncio.shield(opening)
            except OSError as exc:
                self._last_error = f"cannot connect: {exc}"
                return False
            await asyncio.wait(
                (connection.connack, connection.closed),
                timeout=_OPERATION_TIMEOUT_S,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not connection.connack.done():
                ended = connection.closed.result() if connection.closed.done() else "no CONNACK in time"
                self._last_error = f"connection refused: {ended}"
                return False
            reason, properties = connection.connack.result()
            if reason.is_failure:
                self._last_error = f"the broker refused the connection: {reason}"
                return False
            self._connected_with(connection, properties)
            self._last_error = await asyncio.shield(connection.closed)
            return True
        finally:
            await self._end(connection, opening)

    def _connected_with(self, connection: _Connection, properties: Properties | None) -> None:
        connection.window = min(_MAX_INFLIGHT, int(property_of(properties, "ReceiveMaximum", _MAX_INFLIGHT)))
        connection.use_identifiers = bool(property_of(properties, "SubscriptionIdentifierAvailable", 1))
        self._connects += 1
        logger.info(
            "Connected to the cloud at %s:%d as %r (%d message(s) spooled, %d subscription(s) to restore)",
            self.settings.endpoint,
            self.settings.port,
            self.client_id,
            len(self._spool),
            len(self._filters),
        )
        if connection.messages.on_connect is not None:
            self._send(connection, connection.messages.on_connect)
        for entry in self._filters.values():
            entry.qos = entry.wanted_qos()
            entry.pending = connection.subscribe(entry)
            entry.pending.add_done_callback(self._restored(entry))
        self._set_status(connection)
        self._pump()

    def _restored(self, entry: _Filter) -> Callable[[asyncio.Future[ReasonCode | None]], None]:
        def check(future: asyncio.Future[ReasonCode | None]) -> None:
            reason = future.result()
            if reason is not None:
                entry.granted = not reason.is_failure
                if reason.is_failure:
                    logger.error("The broker refused the subscription to %r: %s", entry.topic_filter, reason)

        return check

    async def _end(self, connection: _Connection, opening: asyncio.Future[None]) -> None:
        """Tear a connection down, whatever state it reached; safe to run while being cancelled."""
        if self._connection is connection:
            unacknowledged = connection.ended()
            self._unsent.extendleft(reversed(unacknowledged))
            self._set_status(None)
        else:
            connection.ended()
        with contextlib.suppress(Exception):
            await opening  # a connect in progress finishes within its timeout
        if opening.exception() is not None:
            return
        client = connection.client
        if not connection.closed.done():
            if self._closed and connection.messages.will_on_close and connection.messages.will is not None:
                client.disconnect(
                    reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=_DISCONNECT_WITH_WILL)
                )
            else:
                client.disconnect()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(connection.closed), _CLOSE_TIMEOUT_S)
        try:
            await asyncio.wait_for(asyncio.to_thread(client.loop_stop), _CLOSE_TIMEOUT_S)
        except TimeoutError:
            logger.warning("paho's network thread did not stop within %.0f s; leaving it", _CLOSE_TIMEOUT_S)

    # -- publishing ---------------------------------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        *,
        retain: bool = False,
        properties: MessageProperties | None = None,
    ) -> None:
        """Publish a message. QoS 1: returns once it is committed to the spool; it is delivered at least
        once, across disconnects and restarts (unless the spool overflows). QoS 0: sent now if connected;
        offline it is spooled only with ``keepQos0WhenOffline``.

        Raises:
            TopicError: ``topic`` is not a valid topic name.
            NotConnectedError: a QoS 0 message while offline, not kept.
            MessageTooLargeError: the message alone exceeds the spool's size.
            CloudLinkClosedError: the link is closed.
        """
        self._check_open()
        validate_topic(topic)
        if qos not in (0, 1):
            msg = f"qos must be 0 or 1, got {qos!r}"
            raise ValueError(msg)
        message = CloudMessage(topic, bytes(payload), qos, retain, properties or MessageProperties())
        if qos == 0:
            connection = self._connection
            if connection is not None and self._send(connection, message) is not None:
                return
            if not self.settings.spool.keep_qos0_when_offline:
                self._dropped += 1
                raise NotConnectedError(topic)
        entry = await self._spool.add(message)
        self._unsent.append(entry.id)
        self._pump()

    def _send(self, connection: _Connection, message: CloudMessage) -> int | None:
        """Hand ``message`` to paho; its mid, or None when the connection is going away."""
        try:
            info = connection.client.publish(
                message.topic,
                message.payload,
                message.qos,
                message.retain,
                publish_properties(message.properties),
            )
        except ValueError as exc:  # paho refuses what the broker could never take
            logger.error("Dropping the message to %r: %s", message.topic, exc)
            self._dropped += 1
            return -1
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        if message.qos == 0:
            self._published += 1
        return info.mid

    def _pump(self) -> None:
        """Send spooled messages, oldest first, while the in-flight window has room."""
        connection = self._connection
        if connection is None:
            return
        spool = self._spool
        while self._unsent and len(connection.inflight) < connection.window:
            message_id = self._unsent.popleft()
            entry = spool.get(message_id)
            if entry is None:  # dropped to make room
                continue
            message = entry.message
            expiry = message.properties.message_expiry_interval
            if expiry is not None:
                remaining = expiry - int(time.time() - entry.created)
                if remaining <= 0:
                    logger.info("Dropping the spooled message to %r: it expired", message.topic)
                    spool.remove(message_id)
                    self._dropped += 1
                    continue
                message = dataclasses.replace(
                    message,
                    properties=dataclasses.replace(message.properties, message_expiry_interval=remaining),
                )
            mid = self._send(connection, message)
            if mid is None:
                self._unsent.appendleft(message_id)
                return
            if message.qos == 0 or mid < 0:
                spool.remove(message_id)
            else:
                connection.inflight[mid] = message_id

    def _acknowledged(self, connection: _Connection, mid: int, reason: ReasonCode) -> None:
        message_id = connection.inflight.pop(mid, None)
        if message_id is None:  # a QoS 0 publish was written, or an old connection
            return
        entry = self._spool.get(message_id)
        self._spool.remove(message_id)
        if reason.is_failure:
            self._rejected += 1
            topic = entry.message.topic if entry is not None else "?"
            logger.warning("The broker refused the message to %r: %s", topic, reason)
        else:
            self._published += 1
        self._pump()

    # -- subscribing --------------------------------------------------------------------------------------

    async def subscribe(
        self, topic_filter: str, callback: MessageCallback, *, qos: int = 0
    ) -> CloudSubscription:
        """Call ``callback(message)`` (in the event loop) for each message matching ``topic_filter``.

        Subscribers of the same filter share one broker subscription, at the highest QoS any asked for.
        Connected, this waits for the broker's SUBACK; offline it returns at once and the subscription is
        made on connecting. Subscriptions are restored after every reconnect.

        Raises:
            TopicError: ``topic_filter`` is not a valid filter.
            SubscriptionError: the broker refused it, or the link has too many filters.
            CloudLinkClosedError: the link is closed.
        """
        self._check_open()
        validate_filter(topic_filter)
        if qos not in (0, 1):
            msg = f"qos must be 0 or 1, got {qos!r}"
            raise ValueError(msg)
        entry = self._filters.get(topic_filter)
        if entry is None:
            if len(self._filters) >= _MAX_FILTERS:
                raise SubscriptionError(topic_filter, f"the cloud link already has {_MAX_FILTERS} filters")
            entry = _Filter(topic_filter, next(self._identifiers))
            self._filters[topic_filter] = entry
            self._by_identifier[entry.identifier] = entry
            if has_wildcards(topic_filter):
                self._wildcard_filters[topic_filter] = entry
        key = next(self._keys)
        entry.subscribers[key] = (qos, callback)
        subscription = CloudSubscription(self, entry, key)
        connection = self._connection
        if connection is not None:
            wanted = entry.wanted_qos()
            in_flight = entry.pending is not None and not entry.pending.done()
            if wanted > entry.qos or (not entry.granted and not in_flight):
                entry.qos = wanted
                entry.pending = connection.subscribe(entry)
        pending = entry.pending
        if pending is not None and not pending.done():
            try:
                async with asyncio.timeout(_OPERATION_TIMEOUT_S):
                    reason = await asyncio.shield(pending)
            except TimeoutError:
                subscription.unsubscribe()
                raise SubscriptionError(
                    topic_filter, f"no SUBACK within {_OPERATION_TIMEOUT_S:.0f} s"
                ) from None
            except BaseException:
                subscription.unsubscribe()
                raise
            if reason is not None:
                entry.granted = not reason.is_failure
                if reason.is_failure:
                    subscription.unsubscribe()
                    raise SubscriptionError(topic_filter, f"the broker refused it ({reason})")
        return subscription

    def _release(self, entry: _Filter, key: int) -> None:
        if entry.subscribers.pop(key, None) is None or entry.subscribers:
            return
        if self._filters.get(entry.topic_filter) is not entry:
            return
        del self._filters[entry.topic_filter]
        del self._by_identifier[entry.identifier]
        self._wildcard_filters.pop(entry.topic_filter, None)
        if self._connection is not None:
            self._connection.client.unsubscribe(entry.topic_filter)

    def _deliver(self, paho_message: paho.MQTTMessage) -> None:
        try:
            message, identifiers = received_message(paho_message)
        except UnicodeDecodeError:
            logger.warning("Ignoring a message from the broker whose topic is not UTF-8")
            return
        if identifiers:
            entries = [self._by_identifier[i] for i in identifiers if i in self._by_identifier]
        else:
            exact = self._filters.get(message.topic)  # a topic has no wildcards: only an exact filter
            entries = [exact] if exact is not None else []
            entries += [
                e for e in self._wildcard_filters.values() if filter_matches(e.topic_filter, message.topic)
            ]
        if not entries:
            return
        self._delivered += 1
        for entry in entries:
            for _, callback in list(entry.subscribers.values()):
                try:
                    callback(message)
                except Exception:
                    logger.exception(
                        "A subscriber of %r failed on a message to %r", entry.topic_filter, message.topic
                    )

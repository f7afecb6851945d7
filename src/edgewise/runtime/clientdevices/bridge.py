"""The MQTT bridge (``aws.greengrass.clientdevices.mqtt.Bridge``): relays messages between the local MQTT broker
that client devices use, the runtime's local pub/sub bus and the cloud, as its ``mqttTopicMapping`` says.

Each side is reached the way the rest of the runtime reaches it:

- ``LocalMqtt``: a paho-mqtt MQTT 5 client on the managed broker's privileged loopback listener
  (:class:`~edgewise.runtime.clientdevices.broker.LocalBrokerAccess`). paho runs its network loop, and its own
  reconnecting with back-off, in its thread; its callbacks hop to the event loop with ``call_soon_threadsafe``.
  One broker subscription per distinct filter, each with its own MQTT 5 subscription identifier so that a message
  is routed to the mappings of the subscriptions it matched.
- ``Pubsub``: :class:`~edgewise.runtime.pubsub.bus.PubSubBus`, publishing as the bridge's component name.
- ``IotCore``: the runtime's :class:`~edgewise.runtime.cloudlink.CloudLink`, at QoS 1 both ways as Greengrass's
  bridge does; while offline the link spools what the bridge publishes.

Loop-free: a message the bridge delivered to a side is never taken from that side again. On the local broker
the bridge subscribes with MQTT 5 No Local, so the broker never sends the bridge what it published. On the bus
it ignores messages whose source is the bridge. The cloud connection is shared with other runtime parts, so No
Local cannot be used there: instead the bridge remembers, for :data:`ECHO_WINDOW` seconds, the topic and payload
digest of each message it publishes to the cloud on a topic one of its ``IotCore`` filters matches, and drops
the first such message coming back on that filter (its echo). A cloud message identical to one the bridge sent
moments before on the same topic is therefore taken for the echo, once per message sent.

QoS 1 from client devices is kept: the bridge acknowledges a message from the local broker only once every
target has it (for the cloud, once the cloud link committed it to its spool), and asks the broker (MQTT 5 Receive
Maximum, at most ``queue_size``) for no more unacknowledged messages than that, so that a burst waits in the
broker's queue for the bridge instead of being dropped by the bridge after the device was told it was delivered.

Bounded: messages for the cloud from the bus wait in a queue of ``queue_size`` (those from the local broker are
bounded by the Receive Maximum); paho keeps at most ``queue_size`` messages for the local broker; at most
``queue_size`` QoS 0 messages from the local broker wait for the event loop. A message that finds no room is
dropped and counted (:meth:`Bridge.statistics`), and logged at most once per
:data:`_DROP_LOG_INTERVAL`. A message a side refuses (too large for the cloud link's spool, a target topic
that is not valid) is counted and logged too; nothing a message carries can stop the bridge.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edgewise.errors import EdgewiseError
from edgewise.runtime.clientdevices.bridge_settings import BridgeSettings, Side, TopicMapping
from edgewise.runtime.clientdevices.names import BRIDGE
from edgewise.runtime.cloudlink._paho import no_delay
from edgewise.runtime.cloudlink.errors import CloudLinkClosedError, CloudLinkError, MessageTooLargeError
from edgewise.runtime.pubsub import PubSubMessage, ReceiveMode
from edgewise.topics import TopicError, filter_matches, validate_topic

if TYPE_CHECKING:
    from edgewise.runtime.clientdevices.broker import LocalBrokerAccess
    from edgewise.runtime.cloudlink import CloudLink, CloudMessage, CloudSubscription
    from edgewise.runtime.pubsub import PubSubBus, Subscription

logger = logging.getLogger(__name__)

#: Seconds the bridge remembers a message it published to the cloud, to recognise its echo.
ECHO_WINDOW: Final = 30.0
#: Messages remembered at most for echo suppression; beyond, the oldest are forgotten.
_MAX_ECHOES: Final = 10_000
DEFAULT_QUEUE_SIZE: Final = 1000
_DROP_LOG_INTERVAL: Final = 10.0
_KEEP_ALIVE_S: Final = 30
_DRAIN_S: Final = 2.0  # on close, how long queued messages may still go to the cloud link
_STOP_S: Final = 5.0
_QOS: Final = 1
#: A PUBLISH's bytes besides topic and payload, at most: fixed header 5, topic length 2, packet id 2, properties 1.
_PUBLISH_OVERHEAD: Final = 10
#: (the ``IotCore`` filter that will hear it, topic, SHA-256 of the payload)
_EchoKey = tuple[str, str, bytes]
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class BridgeStartupError(EdgewiseError):
    """The bridge's subscriptions were not all in place within ``startupTimeoutSeconds``."""

    def __init__(self, timeout: float, waiting_for: str) -> None:
        super().__init__(
            f"{BRIDGE} did not start within {timeout:g} s (startupTimeoutSeconds): still waiting for {waiting_for}"
        )
        self.timeout = timeout
        self.waiting_for = waiting_for


@dataclass(frozen=True, slots=True)
class BridgeStatistics:
    """A snapshot of the bridge's counters since it started."""

    forwarded: int  #: messages handed to a target side (one message to two mappings counts two)
    dropped: int  #: messages that found no room in a bounded queue
    failed: int  #: messages a target refused: too large, an invalid target topic, the link closed
    echoes: int  #: messages from the cloud recognised as the echo of the bridge's own and not forwarded
    local_connected: bool  #: connected to the local broker now, every subscription acknowledged


@dataclass(frozen=True, slots=True)
class _Route:
    """The mappings reading one filter at one source."""

    source: Side
    topic_filter: str
    mappings: tuple[TopicMapping, ...]
    identifier: int  #: the MQTT 5 subscription identifier on the local broker (1-based)

    @property
    def retain_as_published(self) -> bool:
        return any(mapping.retain_as_published for mapping in self.mappings)


class _Echoes:
    """What the bridge published to the cloud recently, per ``IotCore`` filter that will hear it back."""

    def __init__(self, window: float) -> None:
        self._window = window
        self._expiry: collections.deque[tuple[float, _EchoKey]] = collections.deque()
        self._counts: dict[_EchoKey, int] = {}  # echoes expected and not yet seen

    def expect(self, topic_filter: str, topic: str, payload: bytes) -> None:
        now = time.monotonic()
        self._forget(now)
        if len(self._expiry) >= _MAX_ECHOES:
            self._drop_oldest()
        key = (topic_filter, topic, hashlib.sha256(payload).digest())
        self._expiry.append((now + self._window, key))
        self._counts[key] = self._counts.get(key, 0) + 1

    def take(self, topic_filter: str, topic: str, payload: bytes) -> bool:
        """True (and forgotten) when this message is the echo of one the bridge published."""
        self._forget(time.monotonic())
        if not self._counts:
            return False
        key = (topic_filter, topic, hashlib.sha256(payload).digest())
        count = self._counts.get(key, 0)
        if count <= 0:
            return False
        if count == 1:
            del self._counts[key]
        else:
            self._counts[key] = count - 1
        return True

    def _forget(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        # Of several identical messages, the echoes seen are counted against the oldest: the rest expire early.
        _, key = self._expiry.popleft()
        remaining = self._counts.get(key, 0) - 1
        if remaining > 0:
            self._counts[key] = remaining
        else:
            self._counts.pop(key, None)


class _DropLog:
    """Counts messages lost for lack of room; logs at most one line per interval."""

    def __init__(self) -> None:
        self.total = 0
        self._unlogged = 0
        self._last = -_DROP_LOG_INTERVAL

    def add(self, where: str, count: int = 1) -> None:
        self.total += count
        self._unlogged += count
        now = time.monotonic()
        if now - self._last >= _DROP_LOG_INTERVAL:
            logger.warning(
                "%s: %s had no room; %d message(s) dropped (%d in all)",
                BRIDGE,
                where,
                self._unlogged,
                self.total,
            )
            self._unlogged = 0
            self._last = now


class _Acknowledgement:
    """Acknowledges a message from the local broker once every target that takes time has it: each
    :meth:`hold` returns what to call when one target has it, :meth:`release` ends the routing. Used from the
    event loop thread (paho's ``ack`` may be called from any thread)."""

    def __init__(self, client: paho.Client, mid: int, qos: int) -> None:
        self._client = client
        self._mid = mid
        self._qos = qos
        self._holds = 1  # the routing itself, until release()

    def hold(self) -> Callable[[], None]:
        self._holds += 1
        return self.release

    def release(self) -> None:
        self._holds -= 1
        if self._holds == 0 and self._qos > 0:
            self._client.ack(self._mid, self._qos)


class Bridge:
    """Relays messages between the local broker, the local bus and the cloud. Create, :meth:`start`, :meth:`close`;
    use from the event loop thread."""

    def __init__(
        self,
        settings: BridgeSettings,
        *,
        local: LocalBrokerAccess | None,
        bus: PubSubBus,
        cloud: CloudLink | None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        echo_window: float = ECHO_WINDOW,
    ) -> None:
        if queue_size < 1:
            msg = f"queue_size must be at least 1, got {queue_size}"
            raise ValueError(msg)
        self.settings = settings
        self._local = local
        self._bus = bus
        self._cloud = cloud
        self._queue_size = queue_size
        self._echoes = _Echoes(echo_window)
        mappings = self._usable(settings.mappings)
        self._routes = _routes(mappings)
        #: The ``IotCore`` filters, to know which cloud publishes will come back to the bridge.
        self._cloud_filters = tuple(
            route.topic_filter for route in self._routes if route.source is Side.IOT_CORE
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: paho.Client | None = None
        self._local_connected = False
        self._local_max_packet: int | None = None  # the broker's Maximum Packet Size, from its CONNACK
        self._granted: set[int] = set()
        self._local_ready: asyncio.Event | None = None
        self._pending_lock = threading.Lock()
        self._pending = 0  # messages from the local broker not yet handled by the event loop
        self._pending_dropped = 0  # counted in paho's thread, logged from the loop
        #: topic, payload, retain, and what to call once the cloud link has it (acknowledging a local message).
        self._to_cloud: asyncio.Queue[tuple[str, bytes, bool, Callable[[], None] | None]] = asyncio.Queue()
        self._cloud_task: asyncio.Task[None] | None = None
        self._bus_subscriptions: list[Subscription] = []
        self._cloud_subscriptions: list[CloudSubscription] = []
        self._started = self._closed = False
        self._forwarded = self._failed = self._echo_count = 0
        self._drops = _DropLog()

    def _usable(self, mappings: Iterable[TopicMapping]) -> list[TopicMapping]:
        """The mappings whose sides this runtime has; the others are logged once and skipped."""
        missing = {Side.LOCAL_MQTT: self._local is None, Side.IOT_CORE: self._cloud is None}
        usable = []
        for mapping in mappings:
            absent = [side for side in (mapping.source, mapping.target) if missing.get(side)]
            if absent:
                why = (
                    "no local broker is deployed"
                    if Side.LOCAL_MQTT in absent
                    else "the runtime has no cloud link"
                )
                logger.error(
                    "%s: mapping %r (%s -> %s) is skipped: %s",
                    BRIDGE,
                    mapping.name,
                    mapping.source,
                    mapping.target,
                    why,
                )
                continue
            usable.append(mapping)
        return usable

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe on every source and connect to the local broker; returns once every subscription is in
        place (the cloud's are made on connecting when the link is offline).

        Raises:
            BridgeStartupError: not ready within ``startupTimeoutSeconds`` (the bridge is closed again).
        """
        if self._started:
            msg = "Bridge.start() may be called once"
            raise RuntimeError(msg)
        self._started = True
        self._loop = asyncio.get_running_loop()
        self._local_ready = asyncio.Event()
        waiting_for = "the cloud link's subscriptions"
        try:
            async with asyncio.timeout(self.settings.startup_timeout):
                # Targets first, so that the first message from a source already has somewhere to go.
                if self._local is not None and self._uses_local():
                    self._connect_local(self._local)
                if self._cloud is not None and self._writes_to(Side.IOT_CORE):
                    self._cloud_task = self._loop.create_task(
                        self._send_to_cloud(), name="edgewise-bridge-cloud"
                    )
                for route in self._routes:
                    if route.source is Side.PUBSUB:
                        self._bus_subscriptions.append(
                            self._bus.subscribe(
                                route.topic_filter,
                                self._from_bus_handler(route),
                                receive_mode=ReceiveMode.RECEIVE_MESSAGES_FROM_OTHERS,
                                subscriber=BRIDGE,
                            )
                        )
                await self._subscribe_cloud()
                if self._local is not None and self._client is not None:
                    waiting_for = f"the local broker at {self._local.host}:{self._local.port}"
                    await self._local_ready.wait()
        except TimeoutError:
            await self.close()
            raise BridgeStartupError(self.settings.startup_timeout, waiting_for) from None
        except BaseException:
            await self.close()
            raise
        logger.info(
            "%s started: %d mapping(s) over %d subscription(s)",
            BRIDGE,
            sum(len(route.mappings) for route in self._routes),
            len(self._routes),
        )

    async def close(self) -> None:
        """Stop relaying; messages still queued for the cloud get a moment to reach its spool. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for subscription in self._bus_subscriptions:
            subscription.unsubscribe()
        for cloud_subscription in self._cloud_subscriptions:
            cloud_subscription.unsubscribe()
        self._bus_subscriptions.clear()
        self._cloud_subscriptions.clear()
        if self._cloud_task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._to_cloud.join(), _DRAIN_S)
            self._cloud_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._cloud_task
            if not self._to_cloud.empty():
                self._drops.add("the queue to the cloud (closing)", self._to_cloud.qsize())
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            try:
                await asyncio.wait_for(asyncio.to_thread(client.loop_stop), _STOP_S)
            except TimeoutError:
                logger.warning("%s: paho's network thread did not stop within %.0f s", BRIDGE, _STOP_S)
        self._local_connected = False
        logger.info("%s stopped", BRIDGE)

    def statistics(self) -> BridgeStatistics:
        """The current counters."""
        self._log_pending_drops()
        return BridgeStatistics(
            forwarded=self._forwarded,
            dropped=self._drops.total,
            failed=self._failed,
            echoes=self._echo_count,
            local_connected=self._local_connected,
        )

    def _uses_local(self) -> bool:
        return self._writes_to(Side.LOCAL_MQTT) or any(
            route.source is Side.LOCAL_MQTT for route in self._routes
        )

    def _writes_to(self, side: Side) -> bool:
        return any(mapping.target is side for route in self._routes for mapping in route.mappings)

    # -- the cloud ------------------------------------------------------------------------------------

    async def _subscribe_cloud(self) -> None:
        cloud = self._cloud
        if cloud is None:
            return
        for route in self._routes:
            if route.source is not Side.IOT_CORE:
                continue
            try:
                subscription = await cloud.subscribe(
                    route.topic_filter, self._from_cloud_handler(route), qos=_QOS
                )
            except CloudLinkError as exc:
                names = ", ".join(repr(mapping.name) for mapping in route.mappings)
                logger.error("%s: mapping(s) %s cannot receive from the cloud: %s", BRIDGE, names, exc)
                continue
            self._cloud_subscriptions.append(subscription)

    def _from_cloud_handler(self, route: _Route) -> Callable[[CloudMessage], None]:
        def deliver(message: CloudMessage) -> None:
            if self._closed:
                return
            if self._echoes.take(route.topic_filter, message.topic, message.payload):
                self._echo_count += 1
                return
            self._forward(route, message.topic, message.payload, retain=False)

        return deliver

    def _queue_for_cloud(
        self, topic: str, payload: bytes, retain: bool, done: Callable[[], None] | None
    ) -> bool:
        # A local message (``done`` set) always finds room: the broker's Receive Maximum bounds how many wait.
        if done is None and self._to_cloud.qsize() >= self._queue_size:
            self._drops.add("the queue to the cloud")
            return False
        self._to_cloud.put_nowait((topic, payload, retain, done))
        for topic_filter in self._cloud_filters:
            if filter_matches(topic_filter, topic):
                self._echoes.expect(topic_filter, topic, payload)
        return True

    async def _send_to_cloud(self) -> None:
        cloud = self._cloud
        assert cloud is not None
        while True:
            topic, payload, retain, done = await self._to_cloud.get()
            # A message the cloud link can never take is acknowledged (dropped, counted); one it could not take
            # because it is closing is not, so the local broker sends it again to the bridge's next session.
            taken = True
            try:
                await cloud.publish(topic, payload, _QOS, retain=retain)
                self._forwarded += 1
            except MessageTooLargeError as exc:
                self._failed += 1
                logger.error("%s: dropped a message for the cloud: %s", BRIDGE, exc)
            except CloudLinkClosedError:
                taken = False
                self._failed += 1
                logger.warning("%s: the cloud link is closed; dropped the message to %r", BRIDGE, topic)
            except (CloudLinkError, TopicError, ValueError) as exc:
                self._failed += 1
                logger.error("%s: the cloud link refused the message to %r: %s", BRIDGE, topic, exc)
            finally:
                self._to_cloud.task_done()
            if done is not None and taken:
                done()

    # -- the local bus --------------------------------------------------------------------------------

    def _from_bus_handler(self, route: _Route) -> Callable[[PubSubMessage], bool | None]:
        def deliver(message: PubSubMessage) -> bool | None:
            if self._closed or message.source == BRIDGE:
                return None
            payload = message.payload
            if not isinstance(payload, bytes):
                payload = _encode_json(payload).encode()
            return self._forward(route, message.topic, payload, retain=False)

        return deliver

    def _publish_to_bus(self, topic: str, payload: bytes) -> bool:
        try:
            self._bus.publish(topic, payload, source=BRIDGE)
        except TopicError as exc:
            self._failed += 1
            logger.error("%s: cannot publish on the local bus: %s", BRIDGE, exc)
            return False
        self._forwarded += 1
        return True

    # -- the local broker -----------------------------------------------------------------------------

    def _connect_local(self, access: LocalBrokerAccess) -> None:
        broker_client = self.settings.broker_client
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.settings.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        client.on_socket_open = no_delay
        client.username_pw_set(access.username, access.password)
        client.reconnect_delay_set(1, 30)
        client.max_queued_messages_set(self._queue_size)
        client.manual_ack_set(True)
        client.on_connect = self._thread_connect
        client.on_disconnect = self._thread_disconnect
        client.on_subscribe = self._thread_subscribe
        client.on_message = self._thread_message
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.ReceiveMaximum = min(broker_client.receive_maximum, self._queue_size)
        properties.SessionExpiryInterval = broker_client.session_expiry_interval
        if broker_client.maximum_packet_size is not None:
            properties.MaximumPacketSize = broker_client.maximum_packet_size
        # connect_async only records where to connect: paho's thread connects, and reconnects with back-off.
        client.connect_async(access.host, access.port, keepalive=_KEEP_ALIVE_S, properties=properties)
        self._client = client
        client.loop_start()

    def _hop(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the event loop is closed: the runtime is exiting
                loop.call_soon_threadsafe(callback, *args)

    def _thread_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            self._hop(self._local_refused, str(reason))
            return
        # A broker that announces a Maximum Packet Size disconnects a client that sends more: one message too
        # large would then be sent again on every reconnect.
        self._local_max_packet = getattr(props, "MaximumPacketSize", None)
        # Subscribing from paho's thread, before any PUBLISH can be sent, keeps each connection's subscriptions
        # in place whether or not the broker kept the session.
        for route in self._routes:
            if route.source is not Side.LOCAL_MQTT:
                continue
            properties = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
            properties.SubscriptionIdentifier = route.identifier
            # Retained messages only for a new subscription: a resumed session does not relay them again.
            options = SubscribeOptions(
                qos=_QOS,
                noLocal=True,
                retainAsPublished=route.retain_as_published,
                retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB,
            )
            client.subscribe(route.topic_filter, options=options, properties=properties)
        self._hop(self._local_up)

    def _thread_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        self._hop(self._local_down, str(reason))

    def _thread_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, reasons: list[ReasonCode], props: Any
    ) -> None:
        self._hop(self._local_subscribed, mid, [reason.is_failure for reason in reasons])

    def _thread_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        with self._pending_lock:
            # QoS 1 messages are bounded by the Receive Maximum and must not be dropped once acknowledged to
            # their sender; QoS 0 ones may be.
            if message.qos == 0 and self._pending >= self._queue_size:
                self._pending_dropped += 1
                return
            self._pending += 1
        identifiers = getattr(message.properties, "SubscriptionIdentifier", None) or []
        self._hop(
            self._from_local,
            message.topic,
            bytes(message.payload),
            bool(message.retain),
            list(identifiers),
            _Acknowledgement(client, message.mid, message.qos),
        )

    def _local_up(self) -> None:
        self._granted.clear()
        logger.info("%s: connected to the local broker", BRIDGE)
        if not any(route.source is Side.LOCAL_MQTT for route in self._routes):
            self._local_relaying()

    def _local_down(self, reason: str) -> None:
        if self._local_connected and not self._closed:
            logger.warning("%s: lost the local broker (%s); reconnecting", BRIDGE, reason)
        self._local_connected = False

    def _local_refused(self, reason: str) -> None:
        logger.error("%s: the local broker refused the connection: %s; trying again", BRIDGE, reason)

    def _local_subscribed(self, mid: int, failures: list[bool]) -> None:
        # One SUBACK per route reading the local broker; each connection subscribes them all again.
        if any(failures):
            logger.error("%s: the local broker refused a subscription (SUBACK mid %d)", BRIDGE, mid)
        self._granted.add(mid)
        if len(self._granted) >= sum(route.source is Side.LOCAL_MQTT for route in self._routes):
            self._local_relaying()

    def _local_relaying(self) -> None:
        """Connected, with every subscription of this connection acknowledged."""
        self._local_connected = True
        if self._local_ready is not None:
            self._local_ready.set()

    def _from_local(
        self,
        topic: str,
        payload: bytes,
        retain: bool,
        identifiers: list[int],
        acknowledgement: _Acknowledgement,
    ) -> None:
        with self._pending_lock:
            self._pending -= 1
        self._log_pending_drops()
        if self._closed:
            return  # not acknowledged: the broker sends it again to the bridge's next session
        for route in self._routes:
            if route.source is not Side.LOCAL_MQTT:
                continue
            matched = (
                route.identifier in identifiers if identifiers else filter_matches(route.topic_filter, topic)
            )
            if matched:
                self._forward(route, topic, payload, retain=retain, acknowledgement=acknowledgement)
        acknowledgement.release()

    def _publish_to_local(self, topic: str, payload: bytes, retain: bool) -> bool:
        client = self._client
        if client is None:  # closed
            self._drops.add("the local broker (the bridge is closed)")
            return False
        limit = self._local_max_packet
        if limit is not None and len(payload) + len(topic.encode()) + _PUBLISH_OVERHEAD > limit:
            self._failed += 1
            logger.error(
                "%s: a message of %d bytes to %r is larger than the local broker takes (%d bytes a packet)",
                BRIDGE,
                len(payload),
                topic,
                limit,
            )
            return False
        try:
            info = client.publish(topic, payload, _QOS, retain)
        except ValueError as exc:  # paho refuses what no broker could take (a topic or payload too long)
            self._failed += 1
            logger.error("%s: cannot publish to the local broker on %r: %s", BRIDGE, topic, exc)
            return False
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            self._drops.add("the queue to the local broker")
            return False
        # MQTT_ERR_NO_CONN: paho keeps a QoS 1 message and sends it on reconnecting.
        self._forwarded += 1
        return True

    def _log_pending_drops(self) -> None:
        with self._pending_lock:
            dropped, self._pending_dropped = self._pending_dropped, 0
        if dropped:
            self._drops.add("the queue from the local broker", dropped)

    # -- routing --------------------------------------------------------------------------------------

    def _forward(
        self,
        route: _Route,
        topic: str,
        payload: bytes,
        *,
        retain: bool,
        acknowledgement: _Acknowledgement | None = None,
    ) -> bool:
        """Hand a message from ``route``'s source to each of its mappings' targets; False if one had no room.
        With ``acknowledgement`` (a message from the local broker), it waits for each message for the cloud."""
        delivered = True
        for mapping in route.mappings:
            target_topic = mapping.target_topic(topic)
            try:
                validate_topic(target_topic)
            except TopicError as exc:
                self._failed += 1
                logger.error("%s: mapping %r cannot forward %r: %s", BRIDGE, mapping.name, topic, exc)
                continue
            keep_retain = retain and mapping.retain_as_published
            if mapping.target is Side.IOT_CORE:
                done = acknowledgement.hold() if acknowledgement is not None else None
                delivered = self._queue_for_cloud(target_topic, payload, keep_retain, done) and delivered
            elif mapping.target is Side.LOCAL_MQTT:
                delivered = self._publish_to_local(target_topic, payload, keep_retain) and delivered
            else:
                self._publish_to_bus(target_topic, payload)
        return delivered


def _routes(mappings: Iterable[TopicMapping]) -> tuple[_Route, ...]:
    """Group the mappings by (source, filter): one subscription each."""
    grouped: dict[tuple[Side, str], list[TopicMapping]] = {}
    for mapping in mappings:
        grouped.setdefault((mapping.source, mapping.topic), []).append(mapping)
    return tuple(
        _Route(source, topic_filter, tuple(group), index)
        for index, ((source, topic_filter), group) in enumerate(grouped.items(), start=1)
    )

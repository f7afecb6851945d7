"""The local publish/subscribe bus shared by components (over IPC) and the runtime's own services.

Usage, from the event loop thread (the bus is not thread-safe)::

    subscription = bus.subscribe("sensors/+/temperature", on_message, subscriber="com.example.Logger")
    bus.publish("sensors/kitchen/temperature", {"celsius": 21.5}, source="com.example.Sensor")
    subscription.unsubscribe()

``publish`` hands the message to every matching subscriber before it returns, in subscription order, so
the messages of one publisher reach each subscriber in the order they were published. A subscriber's
``deliver`` callback must not block: an IPC subscriber puts the message in its stream's bounded queue and
answers False when that queue is full. The bus then counts the message as dropped for that subscription
alone and logs it (at most one line per subscriber and ``drop_log_interval``, plus one when a subscription
of a subscriber with unreported drops ends); the other subscribers are not held up.

Nothing is stored: as in Greengrass, local messages are not persisted and have no QoS.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgewise.runtime.pubsub._index import FilterIndex
from edgewise.runtime.pubsub._message import PubSubMessage, ReceiveMode
from edgewise.topics import validate_filter, validate_topic

logger = logging.getLogger(__name__)

Deliver = Callable[[PubSubMessage], bool | None]
"""Takes one message; returns False when the subscriber had no room for it (the message is dropped)."""


@dataclass(frozen=True, slots=True)
class PubSubStatistics:
    """A snapshot of the bus's counters since it was created."""

    published: int  #: messages published
    delivered: int  #: messages handed to a subscriber (one message to three subscribers counts three)
    dropped: int  #: messages a subscriber had no room for, or whose delivery failed
    subscriptions: int  #: subscriptions open now


class Subscription:
    """One subscriber's interest in a topic filter, from :meth:`PubSubBus.subscribe` until unsubscribed.

    Calling the subscription is the same as :meth:`unsubscribe`, so it can be kept as a plain callback.
    """

    __slots__ = (
        "_bus",
        "_deliver",
        "active",
        "delivered",
        "dropped",
        "receive_mode",
        "subscriber",
        "topic_filter",
    )

    def __init__(
        self,
        bus: PubSubBus,
        topic_filter: str,
        deliver: Deliver,
        receive_mode: ReceiveMode,
        subscriber: str | None,
    ) -> None:
        self._bus = bus
        self._deliver = deliver
        self.topic_filter = topic_filter
        self.receive_mode = receive_mode
        #: The subscribing component (or runtime service), for ``RECEIVE_MESSAGES_FROM_OTHERS`` and logs.
        self.subscriber = subscriber
        self.active = True
        self.delivered = 0
        self.dropped = 0

    def unsubscribe(self) -> None:
        """Stop receiving; a message being fanned out right now is not delivered either. Idempotent."""
        if not self.active:
            return
        self.active = False
        self._bus._remove(self)

    def __call__(self) -> None:
        self.unsubscribe()

    def __repr__(self) -> str:
        state = "active" if self.active else "ended"
        return f"Subscription({self.topic_filter!r}, subscriber={self.subscriber!r}, {state})"


class _DropReport:
    """Drops of one subscriber not yet logged; one log line per subscriber and interval, however many
    subscriptions it has."""

    __slots__ = ("last_logged", "total", "unlogged")

    def __init__(self) -> None:
        self.last_logged = -math.inf
        self.total = 0
        self.unlogged = 0


class PubSubBus:
    """Routes messages published on local topics to the subscribers whose filters match."""

    def __init__(self, *, drop_log_interval: float = 10.0) -> None:
        if drop_log_interval < 0:
            msg = f"drop_log_interval must not be negative, got {drop_log_interval}"
            raise ValueError(msg)
        self._drop_log_interval = drop_log_interval
        self._drop_reports: dict[str | None, _DropReport] = {}
        self._index: FilterIndex[Subscription] = FilterIndex()
        self._published = 0
        self._delivered = 0
        self._dropped = 0

    def subscribe(
        self,
        topic_filter: str,
        deliver: Deliver,
        *,
        receive_mode: ReceiveMode | None = None,
        subscriber: str | None = None,
    ) -> Subscription:
        """Call ``deliver`` with every message published on a topic ``topic_filter`` matches.

        ``receive_mode`` defaults as in Greengrass (:meth:`ReceiveMode.default_for`); with
        ``RECEIVE_MESSAGES_FROM_OTHERS``, messages whose ``source`` is ``subscriber`` are skipped.

        Raises:
            TopicError: ``topic_filter`` is not a valid MQTT filter.
        """
        validate_filter(topic_filter)
        mode = ReceiveMode.default_for(topic_filter) if receive_mode is None else receive_mode
        subscription = Subscription(self, topic_filter, deliver, mode, subscriber)
        self._index.add(topic_filter, subscription)
        return subscription

    def publish(self, topic: str, payload: object, *, source: str | None = None) -> int:
        """Deliver ``payload`` (bytes for a binary message, else a JSON value) to every matching subscriber.

        ``source`` is the publishing component, None for the runtime itself. Returns how many subscribers
        took the message.

        Raises:
            TopicError: ``topic`` is not a valid topic to publish to (e.g. it holds a wildcard).
            TypeError: ``payload`` is neither bytes nor JSON-serializable (nothing is delivered).
        """
        return self.publish_message(PubSubMessage(topic, payload, source))

    def publish_message(self, message: PubSubMessage) -> int:
        """Like :meth:`publish`, for a message already built (e.g. with :meth:`PubSubMessage.from_base64`).

        Raises:
            TopicError: the message's topic is not valid to publish to.
            TypeError: its payload is neither bytes nor JSON-serializable (nothing is delivered).
        """
        validate_topic(message.topic)
        matches = self._index.match(message.topic)
        if matches:
            message.event_json()  # fails before any delivery when the payload cannot be sent
        self._published += 1
        delivered = 0
        source = message.source
        for subscription in matches:
            if not subscription.active:
                continue  # unsubscribed by an earlier delivery of this same message
            if (
                source is not None
                and source == subscription.subscriber
                and not subscription.receive_mode.hears_itself
            ):
                continue
            if self._offer(subscription, message):
                delivered += 1
        return delivered

    def _offer(self, subscription: Subscription, message: PubSubMessage) -> bool:
        try:
            accepted = subscription._deliver(message) is not False
        except Exception:
            logger.exception(
                "Local pub/sub: delivering a message on %r to %s failed",
                message.topic,
                subscription.subscriber or "(runtime)",
            )
            accepted = False
        if accepted:
            subscription.delivered += 1
            self._delivered += 1
        elif subscription.active:
            subscription.dropped += 1
            self._dropped += 1
            self._count_drop(subscription.subscriber)
        return accepted

    def _count_drop(self, subscriber: str | None) -> None:
        report = self._drop_reports.get(subscriber)
        if report is None:
            report = self._drop_reports[subscriber] = _DropReport()
        report.total += 1
        report.unlogged += 1
        if time.monotonic() - report.last_logged >= self._drop_log_interval:
            self._log_drops(subscriber, report)

    def _log_drops(self, subscriber: str | None, report: _DropReport) -> None:
        logger.warning(
            "Local pub/sub: subscriber %s could not keep up and lost %d message(s) (%d in all)",
            subscriber or "(runtime)",
            report.unlogged,
            report.total,
        )
        report.unlogged = 0
        report.last_logged = time.monotonic()

    def _remove(self, subscription: Subscription) -> None:
        self._index.remove(subscription.topic_filter, subscription)
        report = self._drop_reports.get(subscription.subscriber)
        if report is not None and report.unlogged:
            self._log_drops(subscription.subscriber, report)

    def statistics(self) -> PubSubStatistics:
        """The current counters."""
        return PubSubStatistics(
            published=self._published,
            delivered=self._delivered,
            dropped=self._dropped,
            subscriptions=len(self._index),
        )

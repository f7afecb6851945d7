"""The local pub/sub bus: fan-out, order, receive modes, drops, cleanup and many subscriptions."""

from __future__ import annotations

import base64
import json
import logging
import time

import pytest

from edgewise.runtime.pubsub import PubSubBus, PubSubMessage, PubSubStatistics, ReceiveMode
from edgewise.topics import TopicError

ALL = ReceiveMode.RECEIVE_ALL_MESSAGES
OTHERS = ReceiveMode.RECEIVE_MESSAGES_FROM_OTHERS


class Inbox:
    """A subscriber that records what it receives and has room for ``capacity`` messages."""

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity
        self.messages: list[PubSubMessage] = []

    def __call__(self, message: PubSubMessage) -> bool:
        if self.capacity is not None and len(self.messages) >= self.capacity:
            return False
        self.messages.append(message)
        return True

    @property
    def payloads(self) -> list[object]:
        return [message.payload for message in self.messages]

    @property
    def topics(self) -> list[str]:
        return [message.topic for message in self.messages]


def test_a_message_reaches_every_matching_subscriber_once() -> None:
    bus = PubSubBus()
    exact, one_level, rest, everything, unrelated = Inbox(), Inbox(), Inbox(), Inbox(), Inbox()
    bus.subscribe("home/kitchen/temp", exact)
    bus.subscribe("home/+/temp", one_level)
    bus.subscribe("home/#", rest)
    bus.subscribe("#", everything)
    bus.subscribe("home/kitchen/humidity", unrelated)

    assert bus.publish("home/kitchen/temp", {"celsius": 21}) == 4

    for inbox in (exact, one_level, rest, everything):
        assert inbox.payloads == [{"celsius": 21}]
        assert inbox.topics == ["home/kitchen/temp"]
    assert unrelated.messages == []


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("a/#", "a", True),  # '#' also matches the parent level
        ("a/#", "ab", False),
        ("a/+", "a", False),
        ("a/+", "a/", True),  # '+' matches an empty level
        ("+/+", "/x", True),
        ("a/+/c", "a/b/c/d", False),
        ("#", "$aws/things/t/shadow", False),  # wildcards first never match '$' topics
        ("+/things/#", "$aws/things/t", False),
        ("$aws/#", "$aws/things/t", True),
        ("$aws/+/t", "$aws/things/t", True),
    ],
)
def test_wildcards_follow_mqtt(topic_filter: str, topic: str, matches: bool) -> None:
    bus = PubSubBus()
    inbox = Inbox()
    bus.subscribe(topic_filter, inbox)
    bus.publish(topic, 1)
    assert bool(inbox.messages) is matches


def test_each_subscriber_gets_one_publishers_messages_in_order() -> None:
    bus = PubSubBus()
    inboxes = [Inbox() for _ in range(3)]
    for inbox, topic_filter in zip(inboxes, ("seq/a", "seq/+", "#"), strict=True):
        bus.subscribe(topic_filter, inbox)
    for n in range(500):
        bus.publish("seq/a", {"n": n}, source="com.example.Counter")
    for inbox in inboxes:
        assert inbox.payloads == [{"n": n} for n in range(500)]


def test_binary_stays_binary_and_json_stays_json() -> None:
    bus = PubSubBus()
    inbox = Inbox()
    bus.subscribe("data", inbox)
    bus.publish("data", b"\x00\xff raw")
    bus.publish("data", bytearray(b"more"))
    bus.publish("data", ["a", 1, None])

    binary, more, structured = inbox.messages
    assert binary.is_binary
    assert binary.payload == b"\x00\xff raw"
    assert more.payload == b"more"
    assert not structured.is_binary
    assert json.loads(binary.event_json()) == {
        "binaryMessage": {"message": base64.b64encode(b"\x00\xff raw").decode(), "context": {"topic": "data"}}
    }
    assert json.loads(structured.event_json()) == {
        "jsonMessage": {"message": ["a", 1, None], "context": {"topic": "data"}}
    }


def test_a_base64_message_reaches_ipc_subscribers_as_the_same_text_and_others_as_bytes() -> None:
    bus = PubSubBus()
    inbox = Inbox()
    bus.subscribe("data", inbox)
    encoded = base64.b64encode(b"\x00\x01 binary").decode()
    assert bus.publish_message(PubSubMessage.from_base64("data", encoded, "c.Pub")) == 1
    (message,) = inbox.messages
    assert message.is_binary
    assert json.loads(message.event_json())["binaryMessage"]["message"] == encoded
    assert message.payload == b"\x00\x01 binary"
    assert message.source == "c.Pub"


@pytest.mark.parametrize("encoded", ["", "AA==", "AAA=", "AAAA", "+/+/", "ab+/cd=="])
def test_valid_base64_is_accepted(encoded: str) -> None:
    assert PubSubMessage.from_base64("t", encoded, None).payload == base64.b64decode(encoded, validate=True)


@pytest.mark.parametrize(
    "encoded", ["A", "AAA", "A===", "====", "AA=A", "AA AA", "AA\nA", "AAé=", "AA-_", "AA==AA=="]
)
def test_invalid_base64_is_refused(encoded: str) -> None:
    with pytest.raises(ValueError, match="Message published on 't' is not valid base64"):
        PubSubMessage.from_base64("t", encoded, None)


def test_all_receivers_of_one_publish_share_one_encoded_event() -> None:
    bus = PubSubBus()
    inboxes = [Inbox() for _ in range(5)]
    for inbox in inboxes:
        bus.subscribe("shared/+", inbox)
    bus.publish("shared/x", {"big": "x" * 1000})
    events = {id(inbox.messages[0].event_json()) for inbox in inboxes}
    assert len(events) == 1


def test_receive_mode_decides_whether_a_component_hears_itself() -> None:
    bus = PubSubBus()
    hears_all, hears_others = Inbox(), Inbox()
    bus.subscribe("chat", hears_all, receive_mode=ALL, subscriber="com.example.Me")
    bus.subscribe("chat", hears_others, receive_mode=OTHERS, subscriber="com.example.Me")

    bus.publish("chat", "mine", source="com.example.Me")
    bus.publish("chat", "theirs", source="com.example.You")
    bus.publish("chat", "runtime's", source=None)

    assert hears_all.payloads == ["mine", "theirs", "runtime's"]
    assert hears_others.payloads == ["theirs", "runtime's"]


@pytest.mark.parametrize(
    ("topic_filter", "mode"),
    [("plain/topic", ALL), ("with/+", OTHERS), ("with/#", OTHERS), ("#", OTHERS)],
)
def test_default_receive_mode_depends_on_wildcards(topic_filter: str, mode: ReceiveMode) -> None:
    bus = PubSubBus()
    assert bus.subscribe(topic_filter, Inbox(), subscriber="c").receive_mode is mode


def drop_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "could not keep up" in r.getMessage()]


def test_a_full_subscriber_loses_only_its_own_messages_and_they_are_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = PubSubBus(drop_log_interval=3600)
    slow, fast = Inbox(capacity=2), Inbox()
    slow_subscription = bus.subscribe("load", slow, subscriber="com.example.Slow")
    bus.subscribe("load", fast, subscriber="com.example.Fast")

    with caplog.at_level(logging.WARNING, logger="edgewise.runtime.pubsub"):
        for n in range(10):
            bus.publish("load", n)

    assert fast.payloads == list(range(10))
    assert slow.payloads == [0, 1]
    assert slow_subscription.dropped == 8
    assert slow_subscription.delivered == 2
    assert bus.statistics() == PubSubStatistics(published=10, delivered=12, dropped=8, subscriptions=2)
    # Rate-limited: the first drop is logged, the other seven wait for the interval.
    assert drop_lines(caplog) == [
        "Local pub/sub: subscriber com.example.Slow could not keep up and lost 1 message(s) (1 in all)"
    ]


def test_one_subscriber_with_many_full_subscriptions_logs_one_line(caplog: pytest.LogCaptureFixture) -> None:
    bus = PubSubBus(drop_log_interval=3600)
    subscriptions = [bus.subscribe("load/#", Inbox(capacity=0), subscriber="c.Hostile") for _ in range(500)]
    with caplog.at_level(logging.WARNING, logger="edgewise.runtime.pubsub"):
        for n in range(10):
            bus.publish("load/x", n)
        for subscription in subscriptions:
            subscription.unsubscribe()
    # The first drop, then what was not yet reported when the first subscription ended.
    assert drop_lines(caplog) == [
        "Local pub/sub: subscriber c.Hostile could not keep up and lost 1 message(s) (1 in all)",
        "Local pub/sub: subscriber c.Hostile could not keep up and lost 4999 message(s) (5000 in all)",
    ]
    assert bus.statistics().dropped == 5000


def test_drops_are_logged_again_once_the_interval_has_passed(caplog: pytest.LogCaptureFixture) -> None:
    bus = PubSubBus(drop_log_interval=0.05)
    bus.subscribe("load", Inbox(capacity=0), subscriber="com.example.Slow")
    with caplog.at_level(logging.WARNING, logger="edgewise.runtime.pubsub"):
        bus.publish("load", 0)
        deadline = time.monotonic() + 10
        # Publishing itself is what is rate-limited, so keep publishing until a second line appears.
        while len(drop_lines(caplog)) < 2:
            assert time.monotonic() < deadline, "the second drop line never came"
            bus.publish("load", 1)
    assert bus.statistics().dropped >= 2


def test_a_failing_subscriber_counts_as_a_drop_and_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = PubSubBus()

    def broken(message: PubSubMessage) -> bool:
        raise RuntimeError("subscriber bug")

    inbox = Inbox()
    bus.subscribe("t", broken, subscriber="com.example.Broken")
    bus.subscribe("t", inbox)
    with caplog.at_level(logging.ERROR, logger="edgewise.runtime.pubsub"):
        assert bus.publish("t", 1) == 1
    assert inbox.payloads == [1]
    assert bus.statistics().dropped == 1
    assert "com.example.Broken" in caplog.text


def test_a_callback_returning_none_counts_as_delivered() -> None:
    bus = PubSubBus()
    seen: list[object] = []
    bus.subscribe("t", lambda message: seen.append(message.payload))
    assert bus.publish("t", "x") == 1
    assert bus.statistics().delivered == 1


def test_unsubscribed_subscribers_receive_nothing_and_are_forgotten() -> None:
    bus = PubSubBus()
    inbox = Inbox()
    subscriptions = [bus.subscribe(f, inbox) for f in ("a/b", "a/+", "a/#", "#", "+/b")]
    assert bus.statistics().subscriptions == 5
    for subscription in subscriptions:
        subscription.unsubscribe()
        subscription.unsubscribe()  # idempotent
    assert bus.publish("a/b", 1) == 0
    assert inbox.messages == []
    assert bus.statistics().subscriptions == 0
    assert not subscriptions[0].active


def test_a_subscription_is_its_own_unsubscribe_callback() -> None:
    bus = PubSubBus()
    inbox = Inbox()
    unsubscribe = bus.subscribe("t", inbox)
    unsubscribe()
    bus.publish("t", 1)
    assert inbox.messages == []


def test_unsubscribing_during_delivery_stops_later_deliveries_of_that_message() -> None:
    bus = PubSubBus()
    received: list[str] = []
    later = None

    def first(message: PubSubMessage) -> bool:
        received.append("first")
        assert later is not None
        later.unsubscribe()
        return True

    bus.subscribe("t", first)
    later = bus.subscribe("t", lambda message: received.append("later") is None)
    assert bus.publish("t", 1) == 1
    assert received == ["first"]


def test_subscribing_during_delivery_takes_effect_from_the_next_message() -> None:
    bus = PubSubBus()
    late = Inbox()

    def first(message: PubSubMessage) -> bool:
        if message.payload == 1:
            bus.subscribe("t", late)
        return True

    bus.subscribe("t", first)
    bus.publish("t", 1)
    bus.publish("t", 2)
    assert late.payloads == [2]


@pytest.mark.parametrize("topic", ["", "a/+", "a/#", "#", "+", "nul\0"])
def test_publishing_to_an_invalid_topic_is_refused(topic: str) -> None:
    bus = PubSubBus()
    bus.subscribe("#", Inbox())
    with pytest.raises(TopicError, match="topic"):
        bus.publish(topic, 1)
    assert bus.statistics().published == 0


@pytest.mark.parametrize("topic_filter", ["", "a/#/b", "a#", "a/b+", "#/a", "nul\0"])
def test_subscribing_to_an_invalid_filter_is_refused(topic_filter: str) -> None:
    bus = PubSubBus()
    with pytest.raises(TopicError, match="topic filter"):
        bus.subscribe(topic_filter, Inbox())
    assert bus.statistics().subscriptions == 0


def test_a_payload_that_is_not_json_is_refused_before_any_delivery() -> None:
    bus = PubSubBus()
    inbox = Inbox()
    bus.subscribe("t", inbox)
    with pytest.raises(TypeError, match="'t' is neither bytes nor a JSON value"):
        bus.publish("t", {"when": object()})
    assert inbox.messages == []
    assert bus.statistics().published == 0


def test_negative_drop_log_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="drop_log_interval must not be negative, got -1"):
        PubSubBus(drop_log_interval=-1)


def test_thousands_of_unrelated_subscriptions_do_not_slow_a_publish() -> None:
    bus = PubSubBus()
    inbox = Inbox()
    bus.subscribe("target/topic", inbox)
    bus.subscribe("target/+", inbox)

    def publish_cost() -> float:
        start = time.perf_counter()
        for _ in range(2000):
            bus.publish("target/topic", 1)
        return time.perf_counter() - start

    alone = min(publish_cost() for _ in range(3))
    subscriptions = []
    for n in range(5000):
        subscriptions.append(bus.subscribe(f"other/{n}", Inbox()))
        subscriptions.append(bus.subscribe(f"other/{n}/+/x", Inbox()))
        subscriptions.append(bus.subscribe(f"target/topic/{n}/#", Inbox()))
    crowded = min(publish_cost() for _ in range(3))
    # A linear scan of 15,000 filters would be hundreds of times slower; allow noise on a busy machine.
    assert crowded < alone * 5
    assert len(inbox.messages) == 2 * 6 * 2000

    for subscription in subscriptions:
        subscription.unsubscribe()
    assert bus.statistics().subscriptions == 2
    assert bus._index._root.children.keys() == {"target"}  # empty trie branches were pruned

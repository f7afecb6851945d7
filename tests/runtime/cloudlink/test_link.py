"""The cloud link against a real Mosquitto 2 with mutual TLS, observed by a paho client on the broker."""

from __future__ import annotations

import asyncio
import gc
import socket
from pathlib import Path

import pytest
from tests.support.cloudlink_settings import SettingsFactory
from tests.support.mosquitto import Mosquitto
from tests.support.pki import CertificateAuthority
from tests.support.waiting import eventually

from edgewise.runtime.cloudlink import (
    CloudLink,
    CloudLinkClosedError,
    CloudMessage,
    MessageProperties,
    MessageTooLargeError,
    NotConnectedError,
    SpoolSettings,
)
from edgewise.topics import TopicError


def _link(settings_for: SettingsFactory, tmp_path: Path, **changes: object) -> CloudLink:
    return CloudLink(settings_for(**changes), client_id="dev-1", spool_dir=tmp_path / "spool")


async def test_connects_with_mutual_tls_and_reports_status_changes(
    settings_for: SettingsFactory, tmp_path: Path, broker: Mosquitto
) -> None:
    link = _link(settings_for, tmp_path)
    changes: list[bool] = []
    link.add_status_listener(changes.append)
    async with link:
        await asyncio.wait_for(link.wait_connected(), 10)
        assert link.connected
        assert link.statistics().connects == 1
        assert "dev-1" in broker.log_text()  # use_identity_as_username: the CN is who connected
        # Nagle off: a small publish is not held back until the broker acknowledges the previous packet.
        connection = link._connection
        assert connection is not None
        sock = connection.client.socket()
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    assert changes == [True, False]
    assert not link.statistics().connected


#: paho-mqtt does not close its TLS socket when the handshake fails (``Client._ssl_wrap_socket``): the garbage
#: collector does, with a ResourceWarning. The tests of failed handshakes collect it themselves, under this mark,
#: so that it is neither hidden elsewhere nor blamed on a later test.
paho_leaks_failed_handshakes = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <ssl.SSLSocket:pytest.PytestUnraisableExceptionWarning"
)


@paho_leaks_failed_handshakes
async def test_broker_refuses_a_client_certificate_from_another_ca(
    settings_for: SettingsFactory, tmp_path: Path
) -> None:
    stranger = CertificateAuthority(tmp_path / "other-pki", name="Other CA").issue("dev-1")
    link = _link(settings_for, tmp_path, certificate=stranger.certificate, private_key=stranger.private_key)
    async with link:
        stats = await eventually(
            lambda: (s := link.statistics()).last_error is not None and s, what="a failed attempt"
        )
        assert not stats.connected
        assert stats.connects == 0
    gc.collect()


@paho_leaks_failed_handshakes
async def test_link_refuses_a_server_it_cannot_verify(settings_for: SettingsFactory, tmp_path: Path) -> None:
    stranger = CertificateAuthority(tmp_path / "other-pki", name="Other CA")
    async with _link(settings_for, tmp_path, root_ca=stranger.certificate) as link:
        error = await eventually(lambda: link.statistics().last_error, what="a failed attempt")
        assert "certificate verify failed" in error
        assert not link.connected
    gc.collect()


async def test_publishes_reach_a_subscriber_on_the_broker_with_their_properties(
    settings_for: SettingsFactory, tmp_path: Path, broker: Mosquitto
) -> None:
    properties = MessageProperties(
        user_properties=(("unit", "C"), ("unit", "K")),
        message_expiry_interval=300,
        correlation_data=b"\x00\x01",
        response_topic="replies/dev-1",
        payload_format=1,
        content_type="application/json",
    )
    with broker.client("observer") as observer:
        observer.subscribe("telemetry/#", qos=1)
        async with _link(settings_for, tmp_path) as link:
            await asyncio.wait_for(link.wait_connected(), 10)
            await link.publish("telemetry/a", b"zero", qos=0)
            await link.publish("telemetry/b", b'{"t": 21}', qos=1, properties=properties)
            await eventually(lambda: len(observer.received()) == 2, what="both messages")
            assert await eventually(
                lambda: link.statistics().published == 2 and link.statistics().spooled == 0
            )
        by_topic = {message.topic: message for message in observer.received()}
        assert bytes(by_topic["telemetry/a"].payload) == b"zero"
        received = by_topic["telemetry/b"]
        assert (bytes(received.payload), received.qos) == (b'{"t": 21}', 1)
        assert received.properties is not None
        assert received.properties.UserProperty == [("unit", "C"), ("unit", "K")]
        assert received.properties.CorrelationData == b"\x00\x01"
        assert received.properties.ResponseTopic == "replies/dev-1"
        assert received.properties.ContentType == "application/json"
        assert received.properties.PayloadFormatIndicator == 1
        assert 0 < received.properties.MessageExpiryInterval <= 300


async def test_broker_messages_reach_every_matching_local_subscriber_once(
    settings_for: SettingsFactory, tmp_path: Path, broker: Mosquitto
) -> None:
    exact: list[CloudMessage] = []
    wildcard: list[CloudMessage] = []
    shared: list[CloudMessage] = []
    with broker.client("commander") as commander:
        async with _link(settings_for, tmp_path) as link:
            await asyncio.wait_for(link.wait_connected(), 10)
            await link.subscribe("cmd/dev-1/reboot", exact.append, qos=1)
            await link.subscribe("cmd/dev-1/#", wildcard.append, qos=0)
            await link.subscribe("cmd/dev-1/#", shared.append, qos=1)
            assert link.statistics().subscriptions == 2  # two local subscribers share the '#' filter
            await asyncio.to_thread(commander.publish, "cmd/dev-1/reboot", b"now", 1)
            await asyncio.to_thread(commander.publish, "cmd/dev-1/led", b"on", 1)
            await eventually(lambda: len(wildcard) == 2 and len(shared) == 2 and exact, what="deliveries")
            await asyncio.to_thread(commander.publish, "cmd/dev-1/zzz-last", b"", 1)
            await eventually(lambda: len(shared) == 3, what="the last message")
        assert [m.payload for m in exact] == [b"now"]
        assert sorted(m.topic for m in wildcard) == [
            "cmd/dev-1/led",
            "cmd/dev-1/reboot",
            "cmd/dev-1/zzz-last",
        ]
        assert exact[0].qos == 1


async def test_the_broker_subscription_goes_with_its_last_subscriber(
    settings_for: SettingsFactory, tmp_path: Path, broker: Mosquitto
) -> None:
    first: list[CloudMessage] = []
    second: list[CloudMessage] = []
    marker: list[CloudMessage] = []
    with broker.client("commander") as commander:
        async with _link(settings_for, tmp_path) as link:
            await asyncio.wait_for(link.wait_connected(), 10)
            one = await link.subscribe("cmd/+", first.append, qos=1)
            two = await link.subscribe("cmd/+", second.append, qos=1)
            await link.subscribe("marker", marker.append, qos=1)
            one.unsubscribe()
            one.unsubscribe()
            await asyncio.to_thread(commander.publish, "cmd/a", b"1", 1)
            await eventually(lambda: second, what="the remaining subscriber's message")
            two.unsubscribe()
            assert link.statistics().subscriptions == 1
            await asyncio.to_thread(commander.publish, "cmd/b", b"2", 1)
            await asyncio.to_thread(commander.publish, "marker", b"after", 1)
            await eventually(lambda: marker, what="the marker")
            assert (
                link.statistics().delivered == 2
            )  # 'cmd/b' never reached the link: unsubscribed at the broker
        assert [m.payload for m in first] == []
        assert [m.payload for m in second] == [b"1"]


async def test_a_stream_of_qos1_publishes_survives_a_broker_restart_with_nothing_lost(
    settings_for: SettingsFactory, tmp_path: Path, broker: Mosquitto
) -> None:
    total = 400
    with broker.client("observer", clean_start=False) as observer:
        observer.subscribe("stream/#", qos=1)
        async with _link(settings_for, tmp_path) as link:
            await asyncio.wait_for(link.wait_connected(), 10)
            broker_down = asyncio.Event()

            async def produce() -> None:
                for index in range(total):
                    if index == total // 2:
                        await broker_down.wait()
                    await link.publish(f"stream/{index}", str(index).encode(), qos=1)

            producer = asyncio.create_task(produce())
            # Stop the broker while the first half is still being sent and acknowledged.
            await eventually(
                lambda: link.statistics().published >= total // 8, what="the first acknowledgements"
            )
            await asyncio.to_thread(broker.stop)
            broker_down.set()
            await producer
            assert not link.connected
            assert link.statistics().spooled >= total // 2
            await asyncio.to_thread(broker.start)
            await eventually(lambda: link.statistics().connects == 2, what="the link to reconnect")
            await eventually(lambda: link.statistics().spooled == 0, timeout=30, what="the spool to drain")
        await asyncio.to_thread(observer.wait_connected)
        expected = {str(index).encode() for index in range(total)}
        await eventually(
            lambda: set(observer.payloads("stream/")) >= expected, timeout=30, what="every message"
        )
        assert set(observer.payloads("stream/")) == expected
        assert link.statistics().dropped == 0


async def test_subscriptions_are_restored_after_the_broker_restarts(
    settings_for: SettingsFactory, tmp_path: Path, broker: Mosquitto
) -> None:
    received: list[CloudMessage] = []
    async with _link(settings_for, tmp_path) as link:
        await asyncio.wait_for(link.wait_connected(), 10)
        await link.subscribe("jobs/dev-1/notify", received.append, qos=1)
        broker.stop()
        # Without persistence of our session: restart with an empty store.
        for leftover in (broker.directory / "data").iterdir():
            leftover.unlink()
        await eventually(lambda: not link.connected, what="the link to notice")
        broker.start()
        await eventually(lambda: link.statistics().connects == 2, what="the reconnect")
        with broker.client("commander") as commander:
            await eventually(lambda: link.statistics().subscriptions == 1)

            async def publish_until_received() -> None:
                while not received:
                    await asyncio.to_thread(commander.publish, "jobs/dev-1/notify", b"job", 1)
                    await asyncio.sleep(0.1)

            # The SUBACK of the restored subscription may still be on its way: publish until one arrives.
            publishing = asyncio.create_task(publish_until_received())
            try:
                await eventually(lambda: received, timeout=20, what="a message after the reconnect")
            finally:
                if not received:
                    publishing.cancel()
                await asyncio.gather(publishing, return_exceptions=True)
        assert received[0].payload == b"job"


async def test_spool_survives_a_restart_while_the_broker_is_down_then_drains_in_order(
    settings_for: SettingsFactory, tmp_path: Path, broker: Mosquitto
) -> None:
    broker.stop()
    async with _link(settings_for, tmp_path) as offline:
        for index in range(25):
            await offline.publish("spooled/x", f"{index:02d}".encode(), qos=1)
        assert offline.statistics().spooled == 25
        assert not offline.connected
    broker.start()
    with broker.client("observer") as observer:
        observer.subscribe("spooled/#", qos=1)
        async with _link(settings_for, tmp_path) as restarted:
            assert restarted.statistics().spooled == 25
            await eventually(lambda: len(observer.received()) >= 25, what="the spool to drain")
            await eventually(lambda: restarted.statistics().spooled == 0, what="the acknowledgements")
        assert observer.payloads() == [f"{index:02d}".encode() for index in range(25)]


async def test_oldest_messages_are_dropped_when_the_spool_is_full(
    settings_for: SettingsFactory, tmp_path: Path, broker: Mosquitto
) -> None:
    broker.stop()
    payload = b"p" * 90  # 100 bytes with the 10-byte topic
    async with _link(settings_for, tmp_path, spool=SpoolSettings(max_bytes=1000)) as link:
        for index in range(25):
            await link.publish(f"full/{index:05d}", payload, qos=1)
        stats = link.statistics()
        assert (stats.spooled, stats.spooled_bytes, stats.dropped) == (10, 1000, 15)
        with pytest.raises(MessageTooLargeError, match="1001 bytes"):
            await link.publish("full/x", b"x" * 995, qos=1)
        await asyncio.to_thread(broker.start)
        with broker.client("observer") as observer:
            observer.subscribe("full/#", qos=1)
            await link.wait_connected()
            await eventually(lambda: len(observer.received()) >= 10, what="the newest ten")
            await eventually(lambda: link.statistics().spooled == 0)
            assert [m.topic for m in observer.received()] == [f"full/{index:05d}" for index in range(15, 25)]


async def test_qos0_while_offline_is_dropped_unless_kept(
    settings_for: SettingsFactory, tmp_path: Path, broker: Mosquitto
) -> None:
    broker.stop()
    async with _link(settings_for, tmp_path) as link:
        with pytest.raises(NotConnectedError, match="keepQos0WhenOffline"):
            await link.publish("telemetry/a", b"lost", qos=0)
        assert link.statistics().dropped == 1
    keep = SpoolSettings(keep_qos0_when_offline=True)
    async with CloudLink(settings_for(spool=keep), client_id="dev-1", spool_dir=tmp_path / "keep") as keeping:
        await keeping.publish("telemetry/a", b"kept", qos=0)
        assert keeping.statistics().spooled == 1
        await asyncio.to_thread(broker.start)
        with broker.client("observer") as observer:
            observer.subscribe("telemetry/#", qos=1)
            await keeping.wait_connected()
            await eventually(lambda: observer.payloads() == [b"kept"], what="the kept message")
        assert keeping.statistics().spooled == 0


async def test_invalid_topics_and_use_after_close_are_refused(
    settings_for: SettingsFactory, tmp_path: Path
) -> None:
    link = _link(settings_for, tmp_path)
    async with link:
        with pytest.raises(TopicError, match="wildcard"):
            await link.publish("telemetry/+", b"", qos=1)
        with pytest.raises(TopicError, match="'#'"):
            await link.subscribe("a/#/b", lambda message: None)
    with pytest.raises(CloudLinkClosedError):
        await link.publish("telemetry/a", b"", qos=1)

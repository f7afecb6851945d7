"""Presence through the cloud link: online (retained) on every connection, the will when the link goes away."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.support.cloudlink_settings import SettingsFactory
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import wait_until

from edgewise.protocol.health import presence_topic
from edgewise.runtime.cloudlink import CloudLink, CloudMessage, ConnectionMessages
from edgewise.runtime.fleet import presence_messages

TOPIC = presence_topic("dev-1")


def states(payloads: list[bytes]) -> list[str]:
    return [json.loads(payload)["state"] for payload in payloads]


async def test_a_connection_announces_itself_online_and_its_close_offline(
    settings_for: SettingsFactory, tmp_path: Path, broker: Mosquitto
) -> None:
    times = iter([1000.0, 2000.0])
    link = CloudLink(
        settings_for(),
        client_id="dev-1",
        spool_dir=tmp_path / "spool",
        connection_messages=presence_messages("dev-1", clock=lambda: next(times)),
    )
    with broker.client("observer") as observer:
        observer.subscribe(TOPIC)
        async with link:
            await asyncio.wait_for(link.wait_connected(), 10)
            await asyncio.to_thread(wait_until, lambda: observer.payloads(TOPIC), what="online")
        await asyncio.to_thread(wait_until, lambda: len(observer.payloads(TOPIC)) == 2, what="the will")

        assert [json.loads(payload) for payload in observer.payloads(TOPIC)] == [
            {"state": "online", "timestamp": 1_000_000},
            {"state": "offline", "timestamp": 1_000_000},
        ]
    with broker.client("late") as late:
        late.subscribe(TOPIC)
        retained = await asyncio.to_thread(
            wait_until, lambda: late.received(TOPIC), what="the retained state"
        )
        assert retained[0].retain
        assert states([retained[0].payload]) == ["offline"]


async def test_every_reconnection_announces_itself_again(
    settings_for: SettingsFactory, tmp_path: Path, broker: Mosquitto
) -> None:
    link = CloudLink(
        settings_for(),
        client_id="dev-1",
        spool_dir=tmp_path / "spool",
        connection_messages=presence_messages("dev-1"),
    )
    with broker.client("observer", clean_start=False) as observer:
        observer.subscribe(TOPIC)
        async with link:
            await asyncio.to_thread(wait_until, lambda: observer.payloads(TOPIC), what="online")
            await asyncio.to_thread(broker.restart)
            observer.wait_connected()
            await asyncio.to_thread(
                wait_until, lambda: states(observer.payloads(TOPIC)).count("online") >= 2, what="online again"
            )
        timestamps = [json.loads(payload)["timestamp"] for payload in observer.payloads(TOPIC)]
        assert timestamps == sorted(timestamps)


async def test_a_link_without_will_on_close_leaves_quietly(
    settings_for: SettingsFactory, tmp_path: Path, broker: Mosquitto
) -> None:
    will = CloudMessage("status/dev-1", b"gone", qos=1)
    hello = CloudMessage("status/dev-1", b"hello", qos=1)
    link = CloudLink(
        settings_for(),
        client_id="dev-1",
        spool_dir=tmp_path / "spool",
        connection_messages=lambda: ConnectionMessages(will=will, on_connect=hello),
    )
    with broker.client("observer") as observer:
        observer.subscribe("status/dev-1")
        async with link:
            await asyncio.to_thread(wait_until, lambda: observer.payloads("status/"), what="hello")
            await link.publish("status/dev-1", b"last", qos=1)
            await asyncio.to_thread(wait_until, lambda: len(observer.payloads("status/")) == 2, what="last")
        with broker.client("marker") as marker:
            marker.publish("status/dev-1", b"marker")  # arrives after anything the close could have caused
        await asyncio.to_thread(wait_until, lambda: len(observer.payloads("status/")) == 3, what="the marker")
        assert observer.payloads("status/") == [b"hello", b"last", b"marker"]

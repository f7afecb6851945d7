"""Packet and payload limits between devices, the managed Mosquitto and a worker's link (real Mosquitto with its
default settings, real paho clients): an oversized publish disconnects the device, an oversized payload never
reaches a worker's handler, and a worker never sends what the broker would disconnect it for."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from edgewise.cloud.broker import DEFAULT_MAX_PACKET_SIZE, BrokerConnection, MosquittoBroker
from edgewise.cloud.components import service as components
from edgewise.cloud.components.store import LocalArtifactStore
from edgewise.cloud.components.worker import ResolveWorker
from edgewise.cloud.dataplane.signing import UrlSigner
from edgewise.cloud.db import create_database_engine, create_session_factory, upgrade_database
from edgewise.cloud.workerlink import DEVICE_PAYLOAD_MAX_BYTES, PacketTooLargeError, WorkerLink
from tests.cloud.broker.clients import TestClient
from tests.cloud.broker.conftest import (  # noqa: F401
    authority,
    broker,
    device,
    identities,
    settings,
)
from tests.cloud.components.conftest import recipe
from tests.support.waiting import eventually

HEALTH = "$aws/things/{}/edgewise/health"


@pytest.fixture
async def handled(broker: MosquittoBroker) -> AsyncIterator[tuple[WorkerLink, list[tuple[str, int]]]]:  # noqa: F811
    """A link subscribed to every thing's health topic, and the (topic, size) of each message it handled."""
    seen: list[tuple[str, int]] = []

    async def record(topic: str, payload: bytes) -> None:
        seen.append((topic, len(payload)))

    assert broker.settings.workers is not None
    link = WorkerLink(
        BrokerConnection.for_listener(broker.settings.workers),
        client_id="edgewise-test-health",
        filters=[HEALTH.format("+")],
        on_message=record,
    )
    await link.start()
    yield link, seen
    await link.close()


async def test_a_device_sending_more_than_the_packet_limit_is_disconnected_and_the_worker_keeps_working(
    device: Callable[..., TestClient],  # noqa: F811
    broker: MosquittoBroker,  # noqa: F811
    handled: tuple[WorkerLink, list[tuple[str, int]]],
) -> None:
    _link, seen = handled
    flooder = await asyncio.to_thread(device, "A")
    flooder.paho.publish(HEALTH.format("A"), b"x" * (DEFAULT_MAX_PACKET_SIZE + 1), qos=1)
    await eventually(lambda: flooder.disconnects, what="the broker disconnecting device A")
    # The reason code may be lost when the broker hangs up while paho is still writing; its log says why.
    await eventually(
        lambda: "Client A disconnected due to oversize packet." in broker.settings.log_file.read_text(),
        what="the broker's log of why",
    )

    sender = await asyncio.to_thread(device, "B")
    # Within the broker's limit but past what a worker takes: once beyond what the link announced in its
    # CONNECT (the broker does not send it), once within that but past the payload bound (the link drops it).
    for size in (DEVICE_PAYLOAD_MAX_BYTES * 4, DEVICE_PAYLOAD_MAX_BYTES + 1, 10):
        reason = await asyncio.to_thread(sender.publish, HEALTH.format("B"), b"y" * size)
        assert not reason.is_failure
    await eventually(lambda: seen, what="the small message handled")
    assert seen == [(HEALTH.format("B"), 10)]
    statistics = broker.statistics()
    assert (statistics.state.is_running, statistics.starts, statistics.crashes) == (True, 1, 0)


async def test_a_worker_refuses_to_send_more_than_the_broker_takes(
    device: Callable[..., TestClient],  # noqa: F811
    handled: tuple[WorkerLink, list[tuple[str, int]]],
) -> None:
    link, _seen = handled
    listener = await asyncio.to_thread(device, "A")
    await asyncio.to_thread(listener.subscribe, "$aws/things/A/#")
    with pytest.raises(
        PacketTooLargeError, match=f"than the {DEFAULT_MAX_PACKET_SIZE}-byte packets"
    ) as caught:
        link.publish("$aws/things/A/big", b"z" * DEFAULT_MAX_PACKET_SIZE)
    assert (caught.value.topic, caught.value.limit) == ("$aws/things/A/big", DEFAULT_MAX_PACKET_SIZE)
    link.publish("$aws/things/A/small", b"fits")
    await asyncio.to_thread(listener.wait_for, "$aws/things/A/small")
    assert listener.topics() == ["$aws/things/A/small"]


async def test_a_resolve_answer_larger_than_the_broker_takes_is_a_rejection_naming_the_limit(
    broker: MosquittoBroker,  # noqa: F811
    device: Callable[..., TestClient],  # noqa: F811
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'edgewise.db'}"
    upgrade_database(url)
    engine = create_database_engine(url)
    sessions = create_session_factory(engine)
    store = LocalArtifactStore(tmp_path / "artifacts")
    # 20 versions of a recipe of about 220 KB: an answer of about 4.4 MB, more than the broker's 4 MiB.
    bulky = {"DefaultConfiguration": {"blob": "b" * 220_000}}
    with sessions() as session:
        for minor in range(20):
            components.publish_component(
                session,
                store,
                recipe=recipe(version=f"1.{minor}.0", uris=(), ComponentConfiguration=bulky),
                artifacts={},
                published_by="test",
            )
    assert broker.settings.workers is not None
    worker = ResolveWorker(
        sessions,
        UrlSigner(b"s" * 32, "https://cloud:8443"),
        BrokerConnection.for_listener(broker.settings.workers),
    )
    await worker.start()
    try:
        asker = await asyncio.to_thread(device, "A")
        topic = "$aws/things/A/edgewise/components/resolve"
        await asyncio.to_thread(asker.subscribe, f"{topic}/accepted", f"{topic}/rejected")
        request = {"clientToken": "big", "components": {"com.example.Hello": "*"}}
        await asyncio.to_thread(asker.publish, topic, json.dumps(request).encode())
        await asyncio.to_thread(asker.wait_for, f"{topic}/rejected")
        answer = json.loads(asker.messages[0].payload)
        assert (answer["clientToken"], answer["code"]) == ("big", "InvalidRequest")
        assert f"than the {DEFAULT_MAX_PACKET_SIZE}-byte packets the broker accepts" in answer["message"]
        assert answer["message"].endswith("ask for fewer components at a time")
        assert asker.topics() == [f"{topic}/rejected"]
    finally:
        await worker.close()
        engine.dispose()

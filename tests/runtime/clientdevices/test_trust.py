"""The client-device trust list: cached privately for offline use, valid for the trust duration, and fetched
from the cloud side of the protocol (a fake cloud link answering the ``get`` conversation)."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.waiting import eventually

from edgewise.protocol import client_devices as protocol
from edgewise.protocol.client_devices import ClientCertificate, ClientDevice, ClientDeviceList
from edgewise.runtime.clientdevices.trust import TrustListFetcher, TrustStore

SHA = "ab" * 32
LIST = ClientDeviceList(
    client_devices=(ClientDevice("sensor-1", (ClientCertificate("cd" * 32, SHA),)),),
    ca_certificates=("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",),
    crl=None,
    timestamp=5,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_list_is_cached_privately_and_trusted_for_the_trust_duration(tmp_path: Path) -> None:
    clock = Clock()
    store = TrustStore(tmp_path / "trust.json", clock=clock)
    heard: list[int] = []

    async def listener() -> None:
        heard.append(1)

    store.add_listener(listener)
    assert store.current(3600) is None

    await store.accept(LIST)

    assert heard == [1]
    assert stat.S_IMODE((tmp_path / "trust.json").stat().st_mode) == 0o600
    restarted = TrustStore(tmp_path / "trust.json", clock=clock)
    restarted.load()
    trusted = restarted.current(3600)
    assert trusted is not None
    assert trusted.devices == LIST
    assert trusted.thing_of(SHA) == "sensor-1"
    assert trusted.thing_of("ef" * 32) is None
    clock.now += 3601
    assert restarted.current(3600) is None


def test_a_damaged_cache_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "trust.json").write_text(json.dumps({"fetchedAt": 1, "payload": "{}"}))
    store = TrustStore(tmp_path / "trust.json")
    store.load()
    assert store.current(10**9) is None


class FakeCloud:
    """The part of CloudLink the fetcher uses, answering like the cloud's worker."""

    def __init__(self, core: str, answer: Callable[[str], tuple[str, bytes]]) -> None:
        self.core = core
        self.answer = answer
        self.callbacks: dict[str, Callable[[Any], None]] = {}
        self.requests = 0

    async def wait_connected(self) -> None:
        return None

    async def subscribe(self, topic: str, callback: Callable[[Any], None], *, qos: int = 0) -> Any:
        self.callbacks[topic] = callback

        class Subscription:
            def unsubscribe(self) -> None:
                return None

        return Subscription()

    async def publish(self, topic: str, payload: bytes, qos: int = 0, **_: Any) -> None:
        assert topic == protocol.get_topic(self.core)
        self.requests += 1
        reply_topic, reply = self.answer(protocol.parse_get_request(payload))
        asyncio.get_running_loop().call_soon(self.deliver, reply_topic, reply)

    def deliver(self, topic: str, payload: bytes) -> None:
        from edgewise.runtime.cloudlink import CloudMessage

        self.callbacks[topic](CloudMessage(topic, payload))


async def test_the_fetcher_asks_at_start_and_again_when_the_cloud_says_changed(tmp_path: Path) -> None:
    core = "core-1"
    lists = [LIST, ClientDeviceList((), LIST.ca_certificates, None, 6)]

    def answer(token: str) -> tuple[str, bytes]:
        chosen = lists[min(cloud.requests - 1, 1)]
        return protocol.get_reply_topic(core, "accepted"), protocol.build_client_device_list(token, chosen)

    cloud = FakeCloud(core, answer)
    store = TrustStore(tmp_path / "trust.json")
    fetcher = TrustListFetcher(cloud, core, store, refresh_interval=3600)  # type: ignore[arg-type]
    running = asyncio.create_task(fetcher.run())
    try:
        await eventually(lambda: store.current(60) is not None, what="the first list")
        first = store.current(60)
        assert first is not None
        assert first.devices == LIST
        cloud.deliver(protocol.changed_topic(core), protocol.build_changed(7))
        await eventually(lambda: cloud.requests == 2, what="the second request")
        await eventually(lambda: (store.current(60) or first).devices.timestamp == 6, what="the second list")
    finally:
        running.cancel()


async def test_a_rejection_keeps_the_list_and_is_asked_again(tmp_path: Path) -> None:
    core = "core-2"

    def answer(token: str) -> tuple[str, bytes]:
        rejection = protocol.ClientDeviceRejection(token, "InternalError", "database down")
        return protocol.get_reply_topic(core, "rejected"), protocol.build_rejection(rejection)

    cloud = FakeCloud(core, answer)
    store = TrustStore(tmp_path / "trust.json")
    fetcher = TrustListFetcher(cloud, core, store, retry_interval=0.01)  # type: ignore[arg-type]
    running = asyncio.create_task(fetcher.run())
    try:
        await eventually(lambda: cloud.requests >= 2, what="a second request after the rejection")
        assert store.current(60) is None
    finally:
        running.cancel()

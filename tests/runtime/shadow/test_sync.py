"""The shadow sync against a real ``edgewise cloud up``: the runtime's own parts in this process (a real cloud link
over mutual TLS, the local shadow service on SQLite, :class:`ShadowSync`), the cloud's shadows changed and read
through its REST API, or behind the device's back in its database to force a version conflict.

One cloud and one enrolled device serve the module; each test syncs shadows of its own names, so that tests do not
see each other's shadows. A *barrier* (a change of another synced shadow, waited for in the cloud) shows that the
sync worked through everything queued before it: the queue is first in, first out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker
from tests.support.cloud_process import CloudProcess
from tests.support.telemetry_cloud import enroll_device

from edgewise.cloud.db import create_database_engine
from edgewise.cloud.shadows import service as cloud_shadows
from edgewise.runtime.cloudlink import CloudLink, CloudLinkSettings, ReconnectSettings
from edgewise.runtime.config_file import load_config_file
from edgewise.runtime.shadow import ShadowService
from edgewise.runtime.shadow.settings import ShadowKey, parse_shadow_settings
from edgewise.runtime.shadow.sync import ShadowSync

pytestmark = pytest.mark.integration
THING = "sync-unit-device"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("shadow-sync") / "data") as process:
        yield process.wait_ready()


@pytest.fixture(scope="module")
def link_settings(cloud: CloudProcess, tmp_path_factory: pytest.TempPathFactory) -> CloudLinkSettings:
    config = enroll_device(cloud, THING, tmp_path_factory.mktemp("identity"))
    settings = load_config_file(config).cloud
    assert settings is not None
    return CloudLinkSettings(
        endpoint=settings.endpoint,
        port=settings.port,
        certificate=settings.certificate,
        private_key=settings.private_key,
        root_ca=settings.root_ca,
        reconnect=ReconnectSettings(min_delay=0.1, max_delay=0.5),
    )


class Device:
    """The runtime's shadow parts; ``published`` holds what the local bus was told (topic, document)."""

    def __init__(self, shadows: ShadowService, sync: ShadowSync, published: list[tuple[str, Any]]) -> None:
        self.shadows = shadows
        self.sync = sync
        self.published = published

    async def update(self, shadow: str, state: dict[str, Any]) -> int:
        accepted = await self.shadows.update_shadow(THING, shadow, json.dumps({"state": state}).encode())
        return int(accepted["version"])

    async def document(self, shadow: str) -> dict[str, Any] | None:
        try:
            document = await self.shadows.get_shadow(THING, shadow)
        except Exception:
            return None
        return document


@contextlib.asynccontextmanager
async def device(
    link_settings: CloudLinkSettings,
    directory: Path,
    synchronize: dict[str, Any],
    *,
    timeout: float = 10.0,
    **configuration: Any,
) -> AsyncIterator[Device]:
    published: list[tuple[str, Any]] = []
    shadows = ShadowService(
        directory / "shadows.db",
        publish=lambda topic, payload: published.append((topic, json.loads(payload))),
    )
    await shadows.open()
    async with CloudLink(link_settings, client_id=THING, spool_dir=directory) as link:
        await link.wait_connected()
        settings = parse_shadow_settings({"synchronize": synchronize, **configuration})
        sync = ShadowSync(settings, shadows=shadows, cloud=link, core_thing=THING, timeout=timeout)
        await sync.start()
        try:
            yield Device(shadows, sync, published)
        finally:
            await sync.close()
            await shadows.close()


def cloud_document(cloud: CloudProcess, shadow: str) -> dict[str, Any] | None:
    with cloud.api(cloud.admin_token) as api:
        answer = api.get(f"/things/{THING}/shadow", params={"name": shadow} if shadow else {})
    if answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


def cloud_update(cloud: CloudProcess, shadow: str, state: dict[str, Any]) -> None:
    with cloud.api(cloud.admin_token) as api:
        answer = api.post(f"/things/{THING}/shadow", params={"name": shadow}, json={"state": state})
    assert answer.status_code == 200, answer.text


def state_of(document: dict[str, Any] | None) -> dict[str, Any] | None:
    if document is None:
        return None
    return {key: document["state"][key] for key in ("desired", "reported") if key in document["state"]}


async def until(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 30) -> None:
    """Poll an asynchronous condition until it holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def in_cloud(cloud: CloudProcess, shadow: str, state: dict[str, Any] | None) -> None:
    async def held() -> bool:
        return state_of(await asyncio.to_thread(cloud_document, cloud, shadow)) == state

    await until(held, f"{shadow} to hold {state} in the cloud")


async def on_device(dev: Device, shadow: str, state: dict[str, Any] | None) -> None:
    async def held() -> bool:
        return state_of(await dev.document(shadow)) == state

    await until(held, f"{shadow} to hold {state} on the device")


async def barrier(cloud: CloudProcess, dev: Device, shadow: str, value: int) -> None:
    await dev.update(shadow, {"reported": {"barrier": value}})
    await in_cloud(cloud, shadow, {"reported": {"barrier": value}})


async def test_changes_cross_both_ways_once_and_the_echo_of_the_syncs_own_writes_is_ignored(
    cloud: CloudProcess, link_settings: CloudLinkSettings, tmp_path: Path
) -> None:
    synchronize = {"coreThing": {"classic": False, "namedShadows": ["echo", "echo-barrier"]}}
    async with device(link_settings, tmp_path, synchronize) as dev:
        await dev.update("echo", {"reported": {"temperature": 20}})
        await in_cloud(cloud, "echo", {"reported": {"temperature": 20}})

        await asyncio.to_thread(cloud_update, cloud, "echo", {"desired": {"temperature": 22}})
        await on_device(dev, "echo", {"desired": {"temperature": 22}, "reported": {"temperature": 20}})
        await barrier(cloud, dev, "echo-barrier", 1)

        deltas = [document for topic, document in dev.published if topic.endswith("/name/echo/update/delta")]
        assert [delta["state"] for delta in deltas] == [{"temperature": 22}]
        local, remote = await dev.document("echo"), cloud_document(cloud, "echo")
        assert local is not None
        assert remote is not None
        assert (local["version"], remote["version"]) == (2, 2)
        statistics = dev.sync.statistics()
        assert (statistics.pushed, statistics.pulled, statistics.conflicts) == (2, 1, 0)


async def test_a_version_conflict_is_fetched_and_merged_by_the_rule(
    cloud: CloudProcess, link_settings: CloudLinkSettings, tmp_path: Path
) -> None:
    synchronize = {"coreThing": {"classic": False, "namedShadows": ["conflict"]}}
    base = {"desired": {"mode": "auto"}, "reported": {"mode": "auto"}}
    async with device(link_settings, tmp_path, synchronize) as dev:
        await dev.update("conflict", base)
        await in_cloud(cloud, "conflict", base)
        # The cloud changes without telling the device (no MQTT message): the device's next push names a version
        # the cloud has left behind.
        engine = create_database_engine(f"sqlite:///{cloud.data_dir / 'edgewise.db'}")
        try:
            with sessionmaker(engine)() as session:
                payload = json.dumps(
                    {"state": {"desired": {"mode": "eco"}, "reported": {"mode": "off"}}}
                ).encode()
                cloud_shadows.update_shadow(session, THING, "conflict", payload, now=1)
        finally:
            engine.dispose()
        await dev.update("conflict", {"reported": {"mode": "manual"}})

        merged = {"desired": {"mode": "eco"}, "reported": {"mode": "manual"}}
        await in_cloud(cloud, "conflict", merged)
        await on_device(dev, "conflict", merged)
        assert dev.sync.statistics().conflicts == 1


async def test_deletes_propagate_both_ways(
    cloud: CloudProcess, link_settings: CloudLinkSettings, tmp_path: Path
) -> None:
    synchronize = {"coreThing": {"classic": False, "namedShadows": ["gone-up", "gone-down"]}}
    async with device(link_settings, tmp_path, synchronize) as dev:
        for shadow in ("gone-up", "gone-down"):
            await dev.update(shadow, {"reported": {"on": True}})
            await in_cloud(cloud, shadow, {"reported": {"on": True}})

        await dev.shadows.delete_shadow(THING, "gone-up")
        await in_cloud(cloud, "gone-up", None)
        with cloud.api(cloud.admin_token) as api:
            assert api.delete(f"/things/{THING}/shadow", params={"name": "gone-down"}).status_code == 200
        await on_device(dev, "gone-down", None)

        deleted = [topic for topic, _ in dev.published if topic.endswith("/delete/accepted")]
        assert deleted == [
            f"$aws/things/{THING}/shadow/name/gone-up/delete/accepted",
            f"$aws/things/{THING}/shadow/name/gone-down/delete/accepted",
        ]


async def test_device_to_cloud_ignores_cloud_changes_and_overwrites_the_cloud(
    cloud: CloudProcess, link_settings: CloudLinkSettings, tmp_path: Path
) -> None:
    synchronize = {
        "coreThing": {"classic": False, "namedShadows": ["up", "up-barrier"]},
        "direction": "deviceToCloud",
    }
    async with device(link_settings, tmp_path, synchronize) as dev:
        await dev.update("up", {"reported": {"level": 1}})
        await in_cloud(cloud, "up", {"reported": {"level": 1}})
        await asyncio.to_thread(cloud_update, cloud, "up", {"desired": {"level": 5}})
        await barrier(cloud, dev, "up-barrier", 1)
        assert state_of(await dev.document("up")) == {"reported": {"level": 1}}

        await dev.update("up", {"reported": {"level": 2}})
        await in_cloud(cloud, "up", {"reported": {"level": 2}})


async def test_cloud_to_device_keeps_local_changes_local_and_overwrites_the_device(
    cloud: CloudProcess, link_settings: CloudLinkSettings, tmp_path: Path
) -> None:
    synchronize = {"coreThing": {"classic": False, "namedShadows": ["down"]}, "direction": "cloudToDevice"}
    strategy = {"type": "periodic", "delay": "0.05"}
    async with device(link_settings, tmp_path, synchronize, strategy=strategy) as dev:
        await asyncio.to_thread(cloud_update, cloud, "down", {"desired": {"level": 3}})
        await on_device(dev, "down", {"desired": {"level": 3}})
        await dev.update("down", {"reported": {"level": 3}})
        await asyncio.to_thread(cloud_update, cloud, "down", {"desired": {"level": 4}})

        await on_device(dev, "down", {"desired": {"level": 4}})
        assert state_of(cloud_document(cloud, "down")) == {"desired": {"level": 4}}


async def test_a_shadow_the_cloud_never_answers_for_does_not_hold_up_the_others(
    cloud: CloudProcess, link_settings: CloudLinkSettings, tmp_path: Path
) -> None:
    # The device's policy does not cover another thing's shadow: the broker drops its requests, no answer comes.
    # The full sync at start still reaches the shadow after it.
    await asyncio.to_thread(cloud_update, cloud, "allowed", {"desired": {"ok": True}})
    synchronize = {
        "coreThing": {"classic": False, "namedShadows": ["allowed"]},
        "shadowDocumentsMap": {"another-thing": {"classic": True}},
    }
    async with device(link_settings, tmp_path, synchronize, timeout=0.5) as dev:
        assert dev.sync.keys == (ShadowKey("another-thing", ""), ShadowKey(THING, "allowed"))
        await on_device(dev, "allowed", {"desired": {"ok": True}})
        # The unanswered shadow is asked again later, without waiting for a change or a reconnection (a
        # reconnection, as when the broker reloads its ACL on a loaded machine, asks again by itself: the watch
        # starts anew after one).
        connects = dev.sync.statistics().full_syncs
        misses = dev.sync.statistics().unanswered

        async def asked_again() -> bool:
            nonlocal connects, misses
            statistics = dev.sync.statistics()
            if statistics.full_syncs != connects:
                connects, misses = statistics.full_syncs, statistics.unanswered
                return False
            return statistics.unanswered > misses

        await until(asked_again, "another-thing's shadow to be asked again")

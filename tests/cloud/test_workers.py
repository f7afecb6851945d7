"""The cloud's workers start in order and close in reverse, in :func:`start_workers` and in ``serve``."""

from __future__ import annotations

import asyncio
import socket
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from edgewise.cloud import server
from edgewise.cloud.errors import CloudStartError
from edgewise.cloud.preparation import PreparedCloud, ServerOptions, prepare
from edgewise.cloud.server import serve
from edgewise.cloud.workers import CloudWorker, start_workers
from tests.support.ports import free_port


class StartFailed(Exception):
    """What a fake worker raises from its start."""


class FakeWorker:
    """Records its start and close in ``events``; its start raises ``failure`` when given."""

    def __init__(self, name: str, events: list[str], failure: BaseException | None = None) -> None:
        self.name = name
        self._events = events
        self._failure = failure

    async def start(self) -> None:
        self._events.append(f"start {self.name}")
        if self._failure is not None:
            raise self._failure

    async def close(self) -> None:
        self._events.append(f"close {self.name}")


def _fakes(events: list[str], *names: str, failing: str = "") -> list[CloudWorker]:
    return [FakeWorker(name, events, StartFailed(name) if name == failing else None) for name in names]


async def test_workers_close_in_reverse_order_of_their_start() -> None:
    events: list[str] = []
    async with AsyncExitStack() as stack:
        await start_workers(stack, _fakes(events, "broker", "jobs", "api"))
        events.append("running")
    assert events == [
        "start broker",
        "start jobs",
        "start api",
        "running",
        "close api",
        "close jobs",
        "close broker",
    ]


async def test_a_worker_failing_at_start_closes_itself_and_the_started_ones_in_reverse_order() -> None:
    events: list[str] = []
    workers = _fakes(events, "broker", "jobs", "data-plane", "api", failing="data-plane")

    async def run() -> None:
        async with AsyncExitStack() as stack:
            await start_workers(stack, workers)
            events.append("running")

    with pytest.raises(StartFailed, match="data-plane"):
        await run()
    assert events == [
        "start broker",
        "start jobs",
        "start data-plane",
        "close data-plane",
        "close jobs",
        "close broker",
    ]


# serve() with its workers replaced by fakes, against an external broker, so that no Mosquitto runs.


def _prepared(tmp_path: Path) -> PreparedCloud:
    return prepare(
        ServerOptions(
            data_dir=tmp_path / "data",
            api_port=free_port(),
            data_plane_host="127.0.0.1",
            data_plane_port=free_port(),
            https_publish_port=0,
            broker="external",
            broker_url=f"mqtt://127.0.0.1:{free_port()}",
        )
    )


def _fake_worker_class(name: str, events: list[str], *, fails: bool = False) -> type[FakeWorker]:
    class Fake(FakeWorker):
        signer = None

        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(name, events, StartFailed(name) if fails else None)

        async def stop(self) -> None:
            await self.close()

        def wake(self) -> None:
            """The jobs engine's wake after an API write: nothing to do here."""

    return Fake


def _fake_serve_workers(monkeypatch: pytest.MonkeyPatch, events: list[str], *, failing: str = "") -> None:
    for attribute, name in (
        ("ProvisioningWorker", "provisioning"),
        ("FleetStatusWorker", "fleet-status"),
        ("TelemetryWorker", "telemetry"),
        ("LogsWorker", "logs"),
        ("LogsRetentionWorker", "logs-retention"),
        ("DataPlaneServer", "data-plane"),
        ("ResolveWorker", "resolve"),
        ("RetentionWorker", "retention"),
        ("RulesWorker", "rules"),
        ("ShadowWorker", "shadows"),
        ("ClientDevicesWorker", "client-devices"),
        ("JobsWorker", "jobs"),
        ("JobEngine", "jobs-engine"),
    ):
        monkeypatch.setattr(server, attribute, _fake_worker_class(name, events, fails=name == failing))


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def test_serve_stops_the_api_then_the_workers_in_reverse_order_of_their_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud = _prepared(tmp_path)
    events: list[str] = []
    _fake_serve_workers(monkeypatch, events)
    stop = asyncio.Event()

    def ready(_cloud: PreparedCloud) -> None:
        events.append("ready")
        stop.set()

    await asyncio.wait_for(serve(cloud, on_ready=ready, stop=stop), 60)

    assert events == [
        "start provisioning",
        "start fleet-status",
        "start telemetry",
        "start logs",
        "start logs-retention",
        "start data-plane",
        "start resolve",
        "start retention",
        "start rules",
        "start shadows",
        "start client-devices",
        "start jobs",
        "start jobs-engine",
        "ready",
        "close jobs-engine",
        "close jobs",
        "close client-devices",
        "close shadows",
        "close rules",
        "close retention",
        "close resolve",
        "close data-plane",
        "close logs-retention",
        "close logs",
        "close telemetry",
        "close fleet-status",
        "close provisioning",
    ]
    assert _port_is_free(cloud.settings.api_port)


async def test_serve_closes_what_started_when_a_worker_fails_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud = _prepared(tmp_path)
    events: list[str] = []
    _fake_serve_workers(monkeypatch, events, failing="jobs")

    with pytest.raises(StartFailed, match="jobs"):
        await asyncio.wait_for(serve(cloud, on_ready=lambda _cloud: events.append("ready")), 60)

    assert events == [
        "start provisioning",
        "start fleet-status",
        "start telemetry",
        "start logs",
        "start logs-retention",
        "start data-plane",
        "start resolve",
        "start retention",
        "start rules",
        "start shadows",
        "start client-devices",
        "start jobs",
        "close jobs",
        "close client-devices",
        "close shadows",
        "close rules",
        "close retention",
        "close resolve",
        "close data-plane",
        "close logs-retention",
        "close logs",
        "close telemetry",
        "close fleet-status",
        "close provisioning",
    ]
    assert _port_is_free(cloud.settings.api_port)


async def test_serve_names_the_broker_a_worker_cannot_reach(tmp_path: Path) -> None:
    cloud = _prepared(tmp_path)

    with pytest.raises(CloudStartError) as raised:
        await asyncio.wait_for(serve(cloud), 60)

    assert str(raised.value).startswith(
        f"A worker cannot connect to the broker at {cloud.worker_connection.url}: "
    )
    assert _port_is_free(cloud.settings.api_port)

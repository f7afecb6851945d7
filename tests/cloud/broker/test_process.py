"""The managed Mosquitto process: start, stop, reload without dropping clients, revocation, restart."""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.cloud.broker.clients import TestClient, try_connect
from tests.cloud.broker.conftest import default_permissions
from tests.cloud.broker.pki import Identity, TestAuthority
from tests.waiting import eventually

from edgewise.cloud.broker import (
    BrokerConfigError,
    BrokerNotRunningError,
    BrokerReloadError,
    BrokerSettings,
    BrokerStartError,
    BrokerState,
    MosquittoBroker,
    RestartPolicy,
    write_acl,
)

DeviceFactory = Callable[..., TestClient]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_start_listens_and_stop_reaps_the_process(settings: BrokerSettings) -> None:
    broker = MosquittoBroker(settings)
    async with broker:
        running = broker.statistics()
        assert running.state is BrokerState.RUNNING
        assert running.pid is not None
        assert _alive(running.pid)
    assert broker.statistics().state is BrokerState.STOPPED
    assert not _alive(running.pid)
    assert broker.statistics().pid is None


async def test_start_when_mosquitto_exits_raises_with_its_log(settings: BrokerSettings) -> None:
    broken = dataclasses.replace(
        settings, devices=dataclasses.replace(settings.devices, keyfile=settings.data_dir / "missing.key")
    )
    broker = MosquittoBroker(broken)
    with pytest.raises(BrokerStartError) as raised:
        await broker.start()
    assert raised.value.exit_code not in (None, 0)
    assert "missing.key" in raised.value.log_tail


async def test_start_when_the_executable_is_missing_raises(settings: BrokerSettings, tmp_path: Path) -> None:
    with pytest.raises(BrokerStartError, match="Cannot run"):
        await MosquittoBroker(settings, executable=tmp_path / "no-mosquitto").start()


async def test_reload_applies_a_new_acl_without_dropping_the_connection(
    broker: MosquittoBroker, device: DeviceFactory, observer: TestClient
) -> None:
    a = device("A")
    a.subscribe("cmd/A/#", "dt/A/#")
    observer.publish("cmd/A/before")
    observer.publish("dt/A/marker")
    a.wait_for("dt/A/marker")
    assert "cmd/A/before" not in a.topics()

    write_acl(broker.settings.acl_file, [default_permissions("A", "cmd/A/#"), default_permissions("B")])
    pid = broker.statistics().pid
    await broker.reload()

    observer.publish("cmd/A/after")
    a.wait_for("cmd/A/after")
    assert broker.statistics().pid == pid
    assert len(a.connacks) == 1
    assert a.disconnects == []


async def test_reload_when_the_acl_is_invalid_raises(broker: MosquittoBroker) -> None:
    broker.settings.acl_file.write_text("user A\ntopic sometimes dt/A/#\n")
    with pytest.raises(BrokerReloadError, match="acl"):
        await broker.reload()


async def test_revoked_device_is_disconnected_and_cannot_reconnect(
    broker: MosquittoBroker,
    device: DeviceFactory,
    authority: TestAuthority,
    identities: dict[str, Identity],
) -> None:
    a = device("A")
    b = device("B")
    authority.revoke(identities["A"])
    write_acl(broker.settings.acl_file, [default_permissions("B")])
    await broker.reload()
    # Reloading the CRL refuses new handshakes but leaves the established connection up.
    assert a.connected
    await broker.disconnect("A")
    await eventually(lambda: a.disconnects, timeout=5, what="A to be disconnected")
    assert not try_connect(broker.settings.devices.port, "A", identities["A"])
    b.subscribe("dt/B/#")
    b.publish("dt/B/still-here")
    b.wait_for("dt/B/still-here")
    assert len(b.connacks) == 1


async def test_crashed_broker_is_restarted_after_back_off(broker: MosquittoBroker) -> None:
    first = broker.statistics()
    assert first.pid is not None
    os.kill(first.pid, signal.SIGKILL)

    def restarted() -> bool:
        now = broker.statistics()
        return now.state.is_running and now.pid not in (None, first.pid)

    await eventually(restarted, what="the broker to be restarted")
    assert broker.statistics().crashes == 1
    assert broker.statistics().starts == first.starts + 1


async def test_broker_crashing_too_often_is_given_up(settings: BrokerSettings) -> None:
    async with MosquittoBroker(settings, restart_policy=RestartPolicy(max_crashes=0)) as broker:
        pid = broker.statistics().pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await eventually(lambda: broker.statistics().state is BrokerState.FAILED, what="FAILED")
        with pytest.raises(BrokerNotRunningError):
            await broker.reload()


async def test_disconnect_refuses_a_client_id_that_is_not_a_thing_name(broker: MosquittoBroker) -> None:
    for client_id in ("A/B", "+", "#", ""):
        with pytest.raises(BrokerConfigError) as raised:
            await broker.disconnect(client_id)
        assert raised.value.field == "client_id"


async def test_disconnect_when_stopped_raises(settings: BrokerSettings) -> None:
    with pytest.raises(BrokerNotRunningError):
        await MosquittoBroker(settings).disconnect("A")

"""The managed Mosquitto process: start, stop, reload without dropping clients, revocation, restart, and what
an earlier run left (a broker, its pid file) or another process holds (a port)."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.cloud.broker.clients import TestClient, try_connect
from tests.cloud.broker.conftest import default_permissions
from tests.cloud.broker.leftovers import accepts, kill_if_it_runs, orphan_mosquitto, running, write_pid_file
from tests.support.mosquitto import MOSQUITTO
from tests.support.pki import CertificateAuthority, Credentials
from tests.support.waiting import eventually

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
    write_config,
)

DeviceFactory = Callable[..., TestClient]
#: Where the broker records its pid and its owner's, next to its configuration.
PID_FILE = "mosquitto.pid"


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
    authority: CertificateAuthority,
    identities: dict[str, Credentials],
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


async def test_start_stops_a_broker_an_earlier_run_left_and_takes_its_ports(settings: BrokerSettings) -> None:
    assert settings.workers is not None
    write_config(settings)
    broker = MosquittoBroker(settings)
    pid_file = settings.data_dir / PID_FILE
    with orphan_mosquitto(settings.config_file, settings.devices.port, settings.workers.port) as (
        orphan,
        owner,
    ):
        write_pid_file(pid_file, pid=orphan, owner=owner)
        async with broker:
            assert not running(orphan)
            pid = broker.statistics().pid
            assert pid is not None
            assert pid != orphan
            assert json.loads(pid_file.read_text())["pid"] == pid
            # The new broker, not the orphan, answers: a reload is logged by the process we started.
            await broker.reload()
        assert not running(pid)
        assert not pid_file.exists()


async def test_start_leaves_a_pid_file_naming_an_unrelated_process_alone(settings: BrokerSettings) -> None:
    settings.data_dir.mkdir(parents=True)
    broker = MosquittoBroker(settings)
    pid_file = settings.data_dir / PID_FILE
    with subprocess.Popen(["sleep", "600"]) as unrelated:
        try:
            write_pid_file(pid_file, pid=unrelated.pid, owner=1)
            async with broker:
                assert unrelated.poll() is None
                assert json.loads(pid_file.read_text())["pid"] == broker.statistics().pid
        finally:
            unrelated.kill()


async def test_start_refuses_the_data_directory_of_a_broker_whose_owner_still_runs(
    settings: BrokerSettings,
) -> None:
    write_config(settings)
    broker = MosquittoBroker(settings)
    pid_file = settings.data_dir / PID_FILE
    with subprocess.Popen(
        [str(MOSQUITTO), "-c", str(settings.config_file)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as other:
        try:
            # Listening, it has its ports: a Mosquitto that lost one to another test would exit, and its pid
            # file would rightly read as stale.
            await eventually(lambda: accepts(settings.devices.port), what="the other Mosquitto to listen")
            write_pid_file(pid_file, pid=other.pid, owner=os.getpid())
            with pytest.raises(BrokerStartError, match=rf"Another process \(pid {os.getpid()}\) is running"):
                await broker.start()
            assert other.poll() is None
        finally:
            other.kill()


async def test_start_when_another_process_holds_the_devices_port_names_it(settings: BrokerSettings) -> None:
    port = settings.devices.port
    with socket.create_server(("127.0.0.1", port)), pytest.raises(BrokerStartError) as raised:
        await MosquittoBroker(settings).start()
    assert str(raised.value).startswith(f"Port {port} (the devices' MQTT port) is held by another process")


async def test_start_names_a_broker_without_pid_file_holding_the_port_and_leaves_it_running(
    settings: BrokerSettings,
) -> None:
    """Without a record of who started it, that broker is not provably a leftover: it is only named."""
    port = settings.devices.port
    write_config(settings)
    with orphan_mosquitto(settings.config_file, port) as (orphan, _owner):
        with pytest.raises(BrokerStartError) as raised:
            await MosquittoBroker(settings).start()
        assert running(orphan)
    message = str(raised.value)
    assert message.startswith(f"Port {port} (the devices' MQTT port) is held by another process")
    assert f"Mosquitto (pid {orphan}) is running this data directory's configuration" in message


async def test_broker_dies_with_the_process_that_started_it(settings: BrokerSettings, tmp_path: Path) -> None:
    """A starter killed with SIGKILL cannot stop its broker; the parent-death signal does."""
    settings_file = tmp_path / "settings.pickle"
    settings_file.write_bytes(pickle.dumps(settings))
    with subprocess.Popen(
        [sys.executable, "-c", _START_AND_WAIT, str(settings_file)], stdout=subprocess.PIPE, text=True
    ) as starter:
        try:
            assert starter.stdout is not None
            pid = int(starter.stdout.readline())
            assert running(pid)
        finally:
            starter.kill()
            starter.wait()
    try:
        await eventually(
            lambda: not running(pid), what=f"Mosquitto (pid {pid}) to exit after its starter died"
        )
    finally:
        kill_if_it_runs(pid, settings.config_file)


_START_AND_WAIT = """\
import asyncio, pickle, sys
from pathlib import Path
from edgewise.cloud.broker import MosquittoBroker

async def main():
    broker = MosquittoBroker(pickle.loads(Path(sys.argv[1]).read_bytes()))
    await broker.start()
    print(broker.statistics().pid, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

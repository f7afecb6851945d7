"""The managed Mosquitto: found or refused naming its package, loopback only, private files, a login per device
(thing names with ':' included) with its ACL lines, applied by a reload without a restart."""

from __future__ import annotations

import asyncio
import stat
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgewise.runtime.clientdevices.broker import LocalBroker, LocalBrokerError, find_mosquitto


def test_without_mosquitto_the_error_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(LocalBrokerError, match="install the 'mosquitto' package"):
        find_mosquitto(str(tmp_path))
    assert find_mosquitto().endswith("mosquitto")


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[LocalBroker]:
    running = LocalBroker(tmp_path / "mosquitto", max_packet_size=65536, orphan_environment={"MARK": "x"})
    await running.start()
    try:
        yield running
    finally:
        await running.close()


def _session(
    broker: LocalBroker, login: tuple[str, str] | None, filters: list[str], topic: str
) -> dict[str, Any]:
    """Connect with ``login``, subscribe to ``filters`` and publish ``topic`` at QoS 1, until the message comes
    back or the CONNECT is refused; what was seen. Blocks."""
    seen: dict[str, Any] = {"messages": []}
    done = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="probe", protocol=MQTTProtocolVersion.MQTTv5)
    if login is not None:
        client.username_pw_set(*login)

    def connected(_c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        seen["connack"] = str(reason)
        if reason.is_failure:
            done.set()
        elif filters:
            client.subscribe([(each, 1) for each in filters])
        else:
            client.publish(topic, b"x", qos=1)

    client.on_connect = connected
    client.on_subscribe = lambda *_: client.publish(topic, b"x", qos=1)
    client.on_publish = lambda _c, _u, _m, reason, _p: seen.update(puback=str(reason))
    client.on_message = lambda _c, _u, message: (seen["messages"].append(message.topic), done.set())
    client.connect(broker.access.host, broker.access.port)
    client.loop_start()
    try:
        assert done.wait(10), f"neither a refusal nor a message: {seen}"
        return seen
    finally:
        client.disconnect()
        client.loop_stop()


async def test_devices_get_logins_and_topics_applied_by_a_reload(broker: LocalBroker) -> None:
    access = broker.access
    assert access.host == "127.0.0.1"
    assert broker.login_of("sensor:1") is None

    await broker.set_devices({"sensor:1": ["topic readwrite sensors/#"]})

    login = broker.login_of("sensor:1")
    assert login is not None
    assert login[0] == "sensor.1"
    files = {path.name: path for path in broker.directory.iterdir()}
    assert {"mosquitto.conf", "mosquitto.passwd", "mosquitto.acl"} <= set(files)
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files.values())
    assert login[1] not in files["mosquitto.passwd"].read_text()  # only its PBKDF2 hash
    assert f"listener {access.port} 127.0.0.1" in files["mosquitto.conf"].read_text()
    pid = broker.pid

    own = await asyncio.to_thread(_session, broker, login, ["sensors/#"], "sensors/a")
    assert own["connack"] == "Success"
    assert own["messages"] == ["sensors/a"]
    bridge = await asyncio.to_thread(
        _session, broker, (access.username, access.password), ["$aws/#"], "$aws/x"
    )
    assert bridge["messages"] == ["$aws/x"]
    stranger = await asyncio.to_thread(_session, broker, ("sensor.2", "guess"), [], "sensors/a")
    assert stranger["connack"] == "Not authorized"

    # Dropped from the devices: its login is gone, by a reload of the same process.
    await broker.set_devices({})
    gone = await asyncio.to_thread(_session, broker, login, [], "sensors/a")
    assert gone["connack"] == "Not authorized"
    assert broker.pid == pid

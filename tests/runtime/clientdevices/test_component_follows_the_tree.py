"""The client-device component following the services tree in-process, with a real Mosquitto and a paho client:
new policies apply without restarting the broker and disconnect a device they no longer allow, a bad
configuration leaves what runs running, a Mosquitto that dies is started again, and removing Auth stops it all."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from tests.runtime.clientdevices.test_component import listening
from tests.runtime.clientdevices.test_gate import device_list
from tests.support.pki import CertificateAuthority, Credentials
from tests.support.ports import free_port
from tests.support.waiting import eventually

from edgewise.runtime.clientdevices.component import ClientDevicesComponent
from edgewise.runtime.clientdevices.names import AUTH, MOQUETTE
from edgewise.runtime.clientdevices.trust import CACHE_FILE, TrustStore
from edgewise.runtime.config import ConfigStore
from edgewise.runtime.paths import RootPaths
from edgewise.runtime.pubsub import PubSubBus


def _auth(rule: str) -> dict[str, Any]:
    return {
        "deviceGroups": {
            "definitions": {"Sensors": {"selectionRule": rule, "policyName": "P"}},
            "policies": {"P": {"Connect": {"operations": ["mqtt:connect"], "resources": ["*"]}}},
        }
    }


@dataclass
class Setup:
    store: ConfigStore
    paths: RootPaths
    component: ClientDevicesComponent
    port: int
    sensor: Credentials

    def deploy(self, name: str, configuration: Any) -> None:
        node = {"version": "2.12.0", "configuration": configuration}
        self.store.set(("services", name), node, timestamp=time.time_ns() // 1000)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    ca = CertificateAuthority(tmp_path / "cloud-ca")
    sensor = ca.issue("sensor-1")
    paths = RootPaths.at(tmp_path / "root")
    # A trust list the cloud gave earlier, cached: the core trusts it offline.
    await TrustStore(paths.component_work(AUTH) / CACHE_FILE).accept(device_list(ca, {"sensor-1": sensor}))
    store = ConfigStore.open(tmp_path / "config")
    component = ClientDevicesComponent(store, paths, thing="core-1", bus=PubSubBus())
    setup = Setup(store, paths, component, free_port(), sensor)
    setup.deploy(AUTH, _auth("thingName: sensor*"))
    setup.deploy(MOQUETTE, {"moquette": {"ssl_port": setup.port, "host": "127.0.0.1"}})
    await component.start()
    try:
        yield setup
    finally:
        await component.close()
        store.close()


def _connect(setup: Setup) -> tuple[paho.Client, list[Any], threading.Event]:
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="sensor-1", protocol=MQTTProtocolVersion.MQTTv5
    )
    connack: list[Any] = []
    gone = threading.Event()
    client.on_connect = lambda _c, _u, _f, reason, _p: connack.append(reason)
    client.on_disconnect = lambda *_: gone.set()
    client.tls_set(
        ca_certs=str(setup.paths.component_work(AUTH) / "certificates" / "ca.pem"),
        certfile=str(setup.sensor.certificate),
        keyfile=str(setup.sensor.private_key),
    )
    client.connect("127.0.0.1", setup.port)
    client.loop_start()
    return client, connack, gone


async def test_policies_apply_in_place_and_disconnect_what_they_no_longer_allow(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    broker = setup.component.broker
    assert broker is not None
    assert broker.running
    client, connack, gone = await asyncio.to_thread(_connect, setup)
    try:
        await eventually(lambda: connack, what="the CONNACK")
        assert [str(reason) for reason in connack] == ["Success"]

        # A bad rule is refused naming the field; the broker and the device carry on.
        setup.deploy(AUTH, _auth("thingName: sen*sor"))
        await eventually(
            lambda: "deviceGroups.definitions.Sensors.selectionRule" in caplog.text, what="the error"
        )
        assert setup.component.broker is broker
        assert not gone.is_set()

        # A rule that no longer selects the device: same broker, the device is disconnected.
        setup.deploy(AUTH, _auth("thingName: gateway*"))
        await eventually(gone.is_set, what="the device's disconnection")
        assert setup.component.broker is broker
        assert broker.login_of("sensor-1") is None
    finally:
        client.loop_stop()


async def test_a_mosquitto_that_dies_is_started_again_and_removing_auth_stops_everything(
    setup: Setup,
) -> None:
    broker = setup.component.broker
    assert broker is not None
    assert broker.pid is not None
    os.kill(broker.pid, signal.SIGKILL)

    await eventually(
        lambda: setup.component.gate is not None and setup.component.broker not in (None, broker),
        what="a new Mosquitto and gate",
    )
    assert listening(setup.port)

    restarted = setup.component.broker
    assert restarted is not None
    setup.store.remove(("services", AUTH), timestamp=time.time_ns() // 1000)
    await eventually(lambda: restarted.pid is None, what="Mosquitto to end")
    assert setup.component.broker is None
    assert not listening(setup.port)

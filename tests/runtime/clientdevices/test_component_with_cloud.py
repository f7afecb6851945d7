"""Auth and the local broker in a real runtime whose cloud link reaches a real Mosquitto, where a test client plays
the cloud's side of the protocol: the core fetches its trust list and sends its local CA; a client device that
trusts that CA connects; when the cloud says the list changed and the device is gone from it, the device is
disconnected."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from tests.runtime.clientdevices.test_gate import device_list
from tests.support.device_config import write_device_config
from tests.support.mosquitto import Mosquitto, MqttClient
from tests.support.pki import CertificateAuthority, Credentials
from tests.support.ports import free_port
from tests.support.runtime_process import running
from tests.support.waiting import wait_until

from edgewise.protocol import client_devices as protocol
from edgewise.protocol.client_devices import ClientDeviceList
from edgewise.runtime.clientdevices.names import AUTH, MOQUETTE
from edgewise.runtime.clientdevices.trust import CACHE_FILE

pytestmark = pytest.mark.integration
CORE = "core-1"
AUTH_CONFIGURATION = {
    "deviceGroups": {
        "formatVersion": "2021-03-05",
        "definitions": {"Sensors": {"selectionRule": "thingName: sensor*", "policyName": "Sensors"}},
        "policies": {"Sensors": {"Connect": {"operations": ["mqtt:connect"], "resources": ["*"]}}},
    }
}


class Cloud:
    """Answers the core's trust-list requests with ``devices`` and keeps the CAs it sends."""

    def __init__(self, client: MqttClient, devices: ClientDeviceList) -> None:
        self.devices = devices
        self.cas: list[tuple[str, ...]] = []
        self.requests = 0
        self._lock = threading.Lock()
        self._client = client.paho
        self._client.on_message = self._on_message
        client.subscribe(protocol.get_topic(CORE))
        client.subscribe(protocol.ca_topic(CORE))

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        payload = bytes(message.payload)
        if message.topic == protocol.get_topic(CORE):
            token = protocol.parse_get_request(payload)
            with self._lock:
                self.requests += 1
                reply = protocol.build_client_device_list(token, self.devices)
            client.publish(protocol.get_reply_topic(CORE, "accepted"), reply, qos=1)
        else:
            update = protocol.parse_ca_update(payload)
            with self._lock:
                self.cas.append(update.ca_certificates)
            client.publish(
                protocol.ca_reply_topic(CORE, "accepted"), protocol.build_ca_accepted(update.client_token)
            )

    def change(self, devices: ClientDeviceList) -> None:
        with self._lock:
            self.devices = devices
        self._client.publish(protocol.changed_topic(CORE), protocol.build_changed(devices.timestamp), qos=1)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[CertificateAuthority, Mosquitto]]:
    ca = CertificateAuthority(tmp_path / "pki")
    with Mosquitto(tmp_path / "cloud-broker", ca) as running_broker:
        yield ca, running_broker


def _connect(port: int, core_ca: Path, sensor: Credentials) -> tuple[paho.Client, list[Any], threading.Event]:
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="sensor-1", protocol=MQTTProtocolVersion.MQTTv311
    )
    connack: list[Any] = []
    gone = threading.Event()
    client.on_connect = lambda _c, _u, _f, reason, _p: connack.append(reason)
    client.on_disconnect = lambda *_: gone.set()
    client.tls_set(ca_certs=str(core_ca), certfile=str(sensor.certificate), keyfile=str(sensor.private_key))
    client.connect("localhost", port)
    client.loop_start()
    return client, connack, gone


def test_the_core_fetches_its_trust_list_sends_its_ca_and_follows_changes(
    tmp_path: Path, broker: tuple[CertificateAuthority, Mosquitto]
) -> None:
    ca, cloud_broker = broker
    sensor = ca.issue("sensor-1")
    config = write_device_config(tmp_path / "edgewise.yaml", thing=CORE, ca=ca, port=cloud_broker.port)
    port = free_port()
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    with cloud_broker.client("cloud") as client:
        cloud = Cloud(client, device_list(ca, {"sensor-1": sensor}))
        with running(tmp_path / "root", "--config", str(config)) as runtime:
            deployment = runtime.deploy(
                recipes,
                rootComponentVersionsToAdd={AUTH: "2.5.0", MOQUETTE: "2.3.0"},
                componentToConfiguration={
                    AUTH: {"MERGE": AUTH_CONFIGURATION},
                    MOQUETTE: {"MERGE": {"moquette": {"ssl_port": port}}},
                },
            )
            assert runtime.wait_deployment(deployment)["status"] == "SUCCEEDED"
            sent = wait_until(lambda: list(cloud.cas), what="the core's local CA at the cloud")
            core_ca = tmp_path / "core-ca.pem"
            core_ca.write_text(sent[0][0])
            # Cached once the broker has the devices' logins.
            cache = runtime.paths.component_work(AUTH) / CACHE_FILE
            wait_until(cache.exists, what="the trust list at the core")

            device, connack, gone = _connect(port, core_ca, sensor)
            try:
                wait_until(lambda: connack, what="the CONNACK")
                assert [str(reason) for reason in connack] == ["Success"]

                cloud.change(ClientDeviceList((), (ca.certificate.read_text(),), None, 2))
                wait_until(gone.is_set, what="the device to be disconnected")
                assert cloud.requests >= 2
            finally:
                device.loop_stop()

"""Fleet status in a real ``edgewise cloud up``: a device's health messages, its presence and its last will reach
the API through the gateway."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from tests.cloud.test_authorization_sync import acl_grants, enroll
from tests.cloud.test_cli_registry import ok, run
from tests.support.cloud_process import CloudProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("fleet-status") / "data") as process:
        yield process.wait_ready()


def _presence(state: str, opened: int) -> str:
    return json.dumps({"state": state, "timestamp": opened})


def test_health_presence_and_last_will_reach_the_api(cloud: CloudProcess, tmp_path: Path) -> None:
    with cloud.api(cloud.admin_token) as admin:
        _, identity = enroll(cloud, admin, "gateway-1", tmp_path / "device")
        wait_until(lambda: acl_grants(cloud, "gateway-1"), what="the device's ACL entry")

        presence_topic = "$aws/things/gateway-1/edgewise/presence"
        connected = threading.Event()
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="gateway-1", protocol=MQTTProtocolVersion.MQTTv5
        )
        client.tls_set(str(identity.ca), str(identity.certificate), str(identity.private_key))
        opened = int(time.time() * 1000)
        client.will_set(presence_topic, _presence("offline", opened), qos=1, retain=True)
        client.on_connect = lambda *_: connected.set()
        client.connect("localhost", cloud.mqtt_port, keepalive=5)
        client.loop_start()
        try:
            assert connected.wait(20)
            health = {
                "ggcVersion": "2.12.0",
                "platform": "linux",
                "architecture": "amd64",
                "thing": "gateway-1",
                "overallDeviceStatus": "UNHEALTHY",
                "sequenceNumber": 1,
                "timestamp": int(time.time() * 1000),
                "messageType": "COMPLETE",
                "trigger": "NUCLEUS_LAUNCH",
                "components": [{"componentName": "com.example.A", "version": "1.0.0", "status": "BROKEN"}],
            }

            def reported() -> dict[str, object] | None:
                answer = admin.get("/core-devices/gateway-1")
                if answer.status_code == 200:
                    body: dict[str, object] = answer.json()
                    connectivity = body["connectivity"]
                    assert isinstance(connectivity, dict)
                    if body["status"] == "UNHEALTHY" and connectivity["connected"]:
                        return body
                # Until the broker has reloaded the new device's ACL its publishes are refused: send again.
                # Both messages are idempotent (same timestamps), and a malformed one in between is dropped.
                client.publish(presence_topic, _presence("online", opened), qos=1, retain=True)
                client.publish("$aws/things/gateway-1/greengrassv2/health/json", b"{", qos=1)
                client.publish("$aws/things/gateway-1/greengrassv2/health/json", json.dumps(health), qos=1)
                return None

            device = wait_until(reported, what="the device's status in the API")
            assert device["coreVersion"] == "2.12.0"
            components = admin.get("/core-devices/gateway-1/installed-components").json()[
                "installedComponents"
            ]
            assert [(c["componentName"], c["lifecycleState"]) for c in components] == [
                ("com.example.A", "BROKEN")
            ]

            listed = ok(cloud, "core-device", "list", "--status", "UNHEALTHY", "--online")
            assert [device["coreDeviceThingName"] for device in listed] == ["gateway-1"]
            assert ok(cloud, "core-device", "list", "--offline") == []
            shown = run(cloud, "core-device", "get", "gateway-1")
            assert shown.exit_code == 0, shown.stderr
            assert "UNHEALTHY" in shown.stdout
            assert "online" in shown.stdout
            assert "com.example.A" in shown.stdout
            missing = run(cloud, "core-device", "get", "nobody")
            assert missing.exit_code == 1
            assert "nobody" in missing.stderr
        finally:
            # Drop the connection without DISCONNECT, as a crashed device would: the broker sends the will.
            client.loop_stop()
            sock = client.socket()
            assert sock is not None
            sock.close()

        def offline() -> bool:
            body = admin.get("/core-devices/gateway-1").json()
            return body["connectivity"]["connected"] is False

        wait_until(offline, timeout=30, what="the last will to mark the device offline")

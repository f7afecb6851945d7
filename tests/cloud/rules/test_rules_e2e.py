"""Rules in a real ``edgewise cloud up``: a rule created through the API republishes what a device (paho, mutual
TLS) publishes back to it, and the rule's counters reach the API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from tests.cloud.test_authorization_sync import acl_grants, enroll
from tests.support.cloud_process import CloudProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("rules") / "data") as process:
        yield process.wait_ready()


def test_a_rule_made_through_the_api_republishes_a_device_message(
    cloud: CloudProcess, tmp_path: Path
) -> None:
    with cloud.api(cloud.admin_token) as admin:
        _, identity = enroll(cloud, admin, "sensor-1", tmp_path / "device")
        created = admin.post(
            "/rules",
            json={
                "ruleName": "Hot",
                "topicRulePayload": {
                    "sql": "SELECT temp, topic(2) AS thing FROM 'dt/+/temp' WHERE temp > 30",
                    "actions": [{"republish": {"topic": "dt/${topic(2)}/alerts", "qos": 1}}],
                },
            },
        )
        assert created.status_code == 201, created.text
        wait_until(lambda: acl_grants(cloud, "sensor-1"), what="the device's ACL entry")

        alerts: list[bytes] = []
        connected = threading.Event()
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="sensor-1", protocol=MQTTProtocolVersion.MQTTv5
        )
        client.tls_set(str(identity.ca), str(identity.certificate), str(identity.private_key))
        client.on_connect = lambda *_: connected.set()
        client.on_message = lambda _client, _userdata, message: alerts.append(bytes(message.payload))
        client.connect("localhost", cloud.mqtt_port, keepalive=5)
        client.loop_start()
        try:
            assert connected.wait(20)
            client.subscribe("dt/sensor-1/alerts", qos=1)

            def alerted() -> bool:
                if alerts:
                    return True
                # Until the broker has reloaded the new device's ACL its publishes are refused: send again.
                client.publish("dt/sensor-1/temp", json.dumps({"temp": 42}), qos=1)
                return False

            wait_until(alerted, what="the rule's republished alert", interval=0.5)
        finally:
            client.loop_stop()
            client.disconnect()

        assert json.loads(alerts[0]) == {"temp": 42, "thing": "sensor-1"}
        wait_until(lambda: admin.get("/rules/Hot").json()["matched"] >= 1, what="the rule's counter")

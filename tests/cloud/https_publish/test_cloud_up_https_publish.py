"""In a real ``edgewise cloud up``: a device enrolled through the API publishes over HTTPS with its certificate
and the message reaches the device's own MQTT subscription on the managed broker; ``cloud.json`` and the ready
lines say where HTTPS publish listens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.cloud.broker.clients import TestClient
from tests.cloud.test_authorization_sync import acl_grants, enroll
from tests.support.cloud_process import CloudProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def test_a_device_publishes_over_https_into_the_broker_its_mqtt_subscription_reads(tmp_path: Path) -> None:
    with CloudProcess(tmp_path / "data") as cloud:
        cloud.wait_ready()
        endpoints = json.loads((cloud.data_dir / "cloud.json").read_text())
        assert endpoints["httpsPublishUrl"] == f"https://127.0.0.1:{cloud.https_publish_port}"
        assert any(line.startswith("HTTPS publish:  https://127.0.0.1:") for line in cloud.lines)
        with cloud.api(cloud.admin_token) as admin:
            _, device = enroll(cloud, admin, "A", tmp_path / "A")
        wait_until(lambda: acl_grants(cloud, "A"), what="A in the broker's ACL")
        with TestClient(cloud.mqtt_port, "A", identity=device) as subscriber:
            assert subscriber.start()
            subscriber.subscribe("dt/A/#")
            answer = requests.post(
                f"{endpoints['httpsPublishUrl']}/topics/dt/A/reading?qos=1",
                data=b'{"celsius": 20}',
                cert=(str(device.certificate), str(device.private_key)),
                verify=str(device.ca),
                timeout=20,
            )
            refused = requests.post(
                f"{endpoints['httpsPublishUrl']}/topics/dt/B/reading?qos=1",
                data=b"not A's",
                cert=(str(device.certificate), str(device.private_key)),
                verify=str(device.ca),
                timeout=20,
            )
            subscriber.wait_for("dt/A/reading")

        assert answer.status_code == 200, answer.text
        assert answer.json()["message"] == "OK"
        assert refused.status_code == 403
        assert [bytes(message.payload) for message in subscriber.messages] == [b'{"celsius": 20}']

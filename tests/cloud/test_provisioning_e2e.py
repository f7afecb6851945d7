"""Provisioning by claim end to end: a real ``edgewise cloud up``, a claim certificate, the unmodified
awsiotsdk ``IotIdentityClient`` over mutual TLS, then the new certificate using its own topics."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from awscrt import mqtt  # type: ignore[import-untyped]
from awsiot import iotidentity, mqtt_connection_builder  # type: ignore[import-untyped]
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgewise.cloud.identity import DEFAULT_DEVICE_POLICY_NAME
from tests.support.cloud_process import CloudProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

TEMPLATE = "fleet"


def _allow(actions: list[str], kind: str, topics: list[str]) -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Action": actions,
        "Resource": [f"arn:aws:iot:*:*:{kind}/{topic}" for topic in topics],
    }


CLAIM_TOPICS = ["$aws/certificates/create/*", f"$aws/provisioning-templates/{TEMPLATE}/provision/*"]
CLAIM_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"},
        _allow(["iot:Publish", "iot:Receive"], "topic", CLAIM_TOPICS),
        _allow(["iot:Subscribe"], "topicfilter", CLAIM_TOPICS),
    ],
}
TEMPLATE_BODY = {
    "Parameters": {"SerialNumber": {"Type": "String"}},
    "Resources": {
        "thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": {"ThingName": {"Fn::Join": ["-", ["sensor", {"Ref": "SerialNumber"}]]}},
        },
        "certificate": {
            "Type": "AWS::IoT::Certificate",
            "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
        },
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": DEFAULT_DEVICE_POLICY_NAME}},
    },
}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("provisioning") / "data") as process:
        yield process.wait_ready()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


class Replies:
    """Collects the payloads the awsiotsdk callbacks hand over, by operation and outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received: dict[str, list[Any]] = {}

    def callback(self, name: str) -> Any:
        def record(response: Any) -> None:
            with self._lock:
                self.received.setdefault(name, []).append(response)

        return record

    def first(self, *names: str) -> tuple[str, Any] | None:
        with self._lock:
            for name in names:
                if self.received.get(name):
                    return name, self.received[name][0]
        return None


def _request_until_answered(send: Any, replies: Replies, *names: str) -> tuple[str, Any]:
    """Send until an answer comes: the claim certificate's ACL entry may still be on its way to the broker."""
    answer: list[tuple[str, Any]] = []

    def answered() -> bool:
        found = replies.first(*names)
        if found is not None:
            answer.append(found)
            return True
        send().result(10)
        return False

    wait_until(answered, timeout=30, interval=1.0, what=f"a reply on {names}")
    return answer[0]


def test_device_provisions_itself_by_claim_with_the_awsiotsdk(cloud: CloudProcess, tmp_path: Path) -> None:
    with cloud.api(cloud.admin_token) as api:
        assert api.post(
            "/policies", json={"policyName": "claim", "policyDocument": json.dumps(CLAIM_POLICY)}
        ).is_success
        assert api.post(
            "/provisioning-templates", json={"templateName": TEMPLATE, "templateBody": TEMPLATE_BODY}
        ).is_success
        claim = api.post("/claim-certificates", json={"policyNames": ["claim"]})
        assert claim.status_code == 201, claim.text
    ca_file = cloud.data_dir / "ca" / "ca.pem"
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost",
        port=cloud.mqtt_port,
        cert_filepath=str(_write(tmp_path / "claim.pem", claim.json()["certificatePem"])),
        pri_key_filepath=str(_write(tmp_path / "claim.key", claim.json()["privateKey"])),
        ca_filepath=str(ca_file),
        client_id=claim.json()["commonName"],
        clean_session=True,
        keep_alive_secs=30,
    )
    connection.connect().result(20)
    try:
        identity = iotidentity.IotIdentityClient(connection)
        replies = Replies()
        qos = mqtt.QoS.AT_LEAST_ONCE
        create = iotidentity.CreateKeysAndCertificateSubscriptionRequest()
        identity.subscribe_to_create_keys_and_certificate_accepted(create, qos, replies.callback("created"))[
            0
        ].result(10)
        identity.subscribe_to_create_keys_and_certificate_rejected(create, qos, replies.callback("refused"))[
            0
        ].result(10)
        outcome, created = _request_until_answered(
            lambda: identity.publish_create_keys_and_certificate(
                iotidentity.CreateKeysAndCertificateRequest(), qos
            ),
            replies,
            "created",
            "refused",
        )
        assert outcome == "created", created
        register = iotidentity.RegisterThingSubscriptionRequest(template_name=TEMPLATE)
        identity.subscribe_to_register_thing_accepted(register, qos, replies.callback("registered"))[
            0
        ].result(10)
        identity.subscribe_to_register_thing_rejected(register, qos, replies.callback("rejected"))[0].result(
            10
        )
        identity.publish_register_thing(
            iotidentity.RegisterThingRequest(
                template_name=TEMPLATE,
                certificate_ownership_token=created.certificate_ownership_token,
                parameters={"SerialNumber": "77"},
            ),
            qos,
        ).result(10)
        outcome, registered = wait_until(
            lambda: replies.first("registered", "rejected"), what="RegisterThing reply"
        )
        assert outcome == "registered", registered
        assert registered.thing_name == "sensor-77"
    finally:
        connection.disconnect().result(10)

    device_certificate = _write(tmp_path / "device.pem", created.certificate_pem)
    device_key = _write(tmp_path / "device.key", created.private_key)
    assert wait_until(
        lambda: _echo_on_own_topic(cloud.mqtt_port, ca_file, device_certificate, device_key, "sensor-77"),
        timeout=30,
        interval=0.5,
        what="the provisioned device to use its own topics",
    )


def _echo_on_own_topic(port: int, ca: Path, certificate: Path, key: Path, thing: str) -> bool:
    """Whether the device receives its own message on ``dt/<thing>/echo``."""
    received = threading.Event()
    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=thing, protocol=MQTTProtocolVersion.MQTTv5)
    client.tls_set(str(ca), str(certificate), str(key))
    client.on_connect = lambda c, *_: c.subscribe(f"dt/{thing}/echo", qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda *_: received.set()
    try:
        client.connect("localhost", port, keepalive=30)
    except OSError:
        return False
    client.loop_start()
    try:
        if not subscribed.wait(10):
            return False
        client.publish(f"dt/{thing}/echo", b"hello", qos=1)
        return received.wait(2)
    finally:
        client.disconnect()
        client.loop_stop()

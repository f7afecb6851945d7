"""PublishToIoTCore / SubscribeToIoTCore from components using the real awsiotsdk clients, through a real
runtime started with ``--config`` and a real Mosquitto with mutual TLS standing in for AWS IoT Core."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.device_config import write_device_config
from tests.support.mosquitto import Mosquitto
from tests.support.pki import CertificateAuthority
from tests.support.runtime_process import RuntimeProcess, running, script_component
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
THING = "edge-1"
POLICY = {
    "aws.greengrass.ipc.mqttproxy": {
        "test.Cloud:mqttproxy:1": {
            "operations": ["aws.greengrass#PublishToIoTCore"],
            "resources": [f"telemetry/{THING}/#", "$aws/things/+/shadow/#"],
        },
        "test.Cloud:mqttproxy:2": {
            "operations": ["aws.greengrass#SubscribeToIoTCore"],
            "resources": [f"cmd/{THING}/#"],
        },
    }
}


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path / "pki")


@pytest.fixture
def broker(tmp_path: Path, ca: CertificateAuthority) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker", ca) as running_broker:
        yield running_broker


@pytest.fixture
def config_file(tmp_path: Path, ca: CertificateAuthority, broker: Mosquitto) -> Path:
    """The runtime configuration: thing name and a cloud section pointing at the broker."""
    return write_device_config(tmp_path / "edgewise.yaml", thing=THING, ca=ca, port=broker.port)


def _deploy(runtime: RuntimeProcess, recipes: Path, artifacts: Path, name: str) -> None:
    deployment = runtime.deploy(recipes, artifacts=artifacts, rootComponentVersionsToAdd={name: "1.0.0"})
    assert runtime.wait_deployment(deployment)["status"] == "SUCCEEDED"


def test_a_component_publishes_and_subscribes_to_iot_core_within_its_policy(
    tmp_path: Path,
    ca: CertificateAuthority,
    broker: Mosquitto,
    config_file: Path,
    recipes: Path,
    artifacts: Path,
) -> None:
    out, ready = tmp_path / "results.json", tmp_path / "ready"
    script_component(
        recipes,
        artifacts,
        "test.Cloud",
        "mqttproxy_component.py",
        f"{out} {ready} {THING}",
        configuration={"accessControl": POLICY},
    )
    with (
        broker.client("cloud-observer") as observer,
        running(tmp_path / "root", "--config", str(config_file)) as rt,
    ):
        observer.subscribe("telemetry/#", qos=1)
        observer.subscribe("$aws/things/+/shadow/#", qos=1)
        _deploy(rt, recipes, artifacts, "test.Cloud")
        wait_until(ready.exists, timeout=60, what="the component to subscribe")
        command = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        command.UserProperty = ("origin", "operator")
        command.CorrelationData = b"\x01\x02"
        command.ResponseTopic = f"telemetry/{THING}/reply"
        observer.publish(f"cmd/{THING}/reboot", b'{"delay": 5}', qos=1, properties=command)
        results = json.loads(
            wait_until(lambda: out.exists() and out.read_text(), timeout=60, what="the results")
        )
        wait_until(lambda: observer.received(f"telemetry/{THING}/reply"), what="the echoed command")

    telemetry = observer.received(f"telemetry/{THING}/temperature")
    assert [json.loads(m.payload) for m in telemetry] == [{"index": index} for index in range(5)]
    assert telemetry[0].properties is not None
    assert telemetry[0].properties.UserProperty == [("seq", "0")]
    assert telemetry[0].properties.ContentType == "application/json"
    assert telemetry[0].properties.PayloadFormatIndicator == 1
    assert observer.payloads(f"telemetry/{THING}/reply") == [b'{"delay": 5}']
    assert observer.payloads(f"$aws/things/{THING}/shadow/") == [b"x"]
    assert results["commands"] == [
        {
            "topic": f"cmd/{THING}/reboot",
            "payload": '{"delay": 5}',
            "userProperties": [["origin", "operator"]],
            "correlationData": "AQI=",
            "responseTopic": f"telemetry/{THING}/reply",
            "contentType": None,
            "payloadFormat": None,
        }
    ]
    assert results["statuses"][0] == "CONNECTED"
    assert results["root_ca"] == str(ca.certificate)
    assert results["publish_reserved_deep"] == {"ok": True}
    for name, topic in (("publish_denied", "forbidden/x"), ("subscribe_denied", "cmd/#")):
        assert results[name]["error"] == "UnauthorizedError", results[name]
        assert "test.Cloud" in results[name]["message"]
        assert topic in results[name]["message"]
    assert results["publish_wildcard"]["error"] == "InvalidArgumentsError"
    assert "wildcard" in results["publish_wildcard"]["message"]
    assert results["publish_eight_slashes"]["error"] == "InvalidArgumentsError"
    assert "limit of 7" in results["publish_eight_slashes"]["message"]
    assert results["bad_qos"]["error"] == "InvalidArgumentsError"
    assert "qos" in results["bad_qos"]["message"]


def test_publishes_spooled_while_offline_survive_a_runtime_kill_and_drain_in_order(
    tmp_path: Path, broker: Mosquitto, config_file: Path, recipes: Path, artifacts: Path
) -> None:
    done = tmp_path / "published"
    topic = f"telemetry/{THING}/offline"
    script_component(
        recipes,
        artifacts,
        "test.Cloud",
        "mqttproxy_spooler.py",
        f"{done} {topic} 20",
        configuration={"accessControl": POLICY},
    )
    root = tmp_path / "root"
    broker.stop()
    runtime = RuntimeProcess(root, "--config", str(config_file)).start()
    try:
        _deploy(runtime, recipes, artifacts, "test.Cloud")
        wait_until(done.exists, timeout=60, what="the component to publish while offline")
    finally:
        runtime.kill9()
    broker.start()
    with broker.client("cloud-observer") as observer:
        observer.subscribe("telemetry/#", qos=1)
        with running(root, "--config", str(config_file)):
            wait_until(lambda: len(observer.received()) >= 20, timeout=30, what="the spool to drain")
    assert observer.payloads() == [str(index).encode() for index in range(20)]


def test_without_a_cloud_connection_the_operations_answer_service_error(
    runtime: RuntimeProcess, tmp_path: Path, recipes: Path, artifacts: Path
) -> None:
    out = tmp_path / "results.json"
    script_component(
        recipes,
        artifacts,
        "test.Cloud",
        "mqttproxy_v1_nocloud.py",
        str(out),
        configuration={"accessControl": POLICY},
    )
    _deploy(runtime, recipes, artifacts, "test.Cloud")
    results = json.loads(wait_until(lambda: out.exists() and out.read_text(), timeout=60, what="the results"))
    for operation in ("publish", "subscribe", "status"):
        assert results[operation]["error"] == "ServiceError", results
        assert "no cloud connection is configured" in results[operation]["message"].lower()

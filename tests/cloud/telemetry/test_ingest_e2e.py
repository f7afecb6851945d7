"""Telemetry ingest in a real ``edgewise cloud up --telemetry-topic``: a device with the default policy exports a
batch (answered, stored once) and publishes on its device topics, over the gateway's mutual TLS."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgewise.protocol import telemetry
from edgewise.protocol.telemetry import ExportBatch, ExportRecord
from tests.cloud.test_authorization_sync import acl_grants, enroll
from tests.support.cloud_process import CloudProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    data = tmp_path_factory.mktemp("telemetry") / "data"
    with CloudProcess(data, "--telemetry-topic", "dt/+/#", "--telemetry-topic", "site/+/power") as process:
        yield process.wait_ready()


def rows(cloud: CloudProcess) -> list[tuple[Any, ...]]:
    with sqlite3.connect(cloud.data_dir / "edgewise.db") as connection:
        return connection.execute(
            "SELECT thing_name, stream, topic, sequence_number, payload FROM telemetry_messages ORDER BY id"
        ).fetchall()


def test_a_device_exports_a_batch_and_publishes_on_its_device_topics(
    cloud: CloudProcess, tmp_path: Path
) -> None:
    with cloud.api(cloud.admin_token) as admin:
        _, identity = enroll(cloud, admin, "meter-1", tmp_path / "device")
    wait_until(lambda: acl_grants(cloud, "meter-1"), what="the device's ACL entry")
    replies: list[paho.MQTTMessage] = []
    subscribed = threading.Event()
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="meter-1", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.tls_set(str(identity.ca), str(identity.certificate), str(identity.private_key))
    client.on_connect = lambda c, *_: c.subscribe(f"{telemetry.batch_topic('meter-1')}/+", qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, message: replies.append(message)
    client.connect("localhost", cloud.mqtt_port, keepalive=10)
    client.loop_start()
    try:
        assert subscribed.wait(20)
        records = (
            ExportRecord(7, 1_764_100_000_000, b'{"kwh": 3}'),
            ExportRecord(8, 1_764_100_001_000, b"raw"),
        )
        batch = telemetry.build_batch(ExportBatch("e2e-1", "meters/energy", "Energy", "cloud", records))

        def answered() -> Any:
            # Until the broker has reloaded the new device's ACL its publishes are refused: send again (the
            # cloud stores each record once however often the batch arrives).
            if not replies:
                client.publish(telemetry.batch_topic("meter-1"), batch, qos=1)
            return replies

        wait_until(answered, what="the answer to the batch")
        reply = telemetry.read_reply(replies[0].topic, replies[0].payload)
        assert isinstance(reply, telemetry.BatchAccepted)
        assert (reply.client_token, reply.stored + reply.duplicates, reply.last_sequence_number) == (
            "e2e-1",
            2,
            8,
        )
        client.publish("dt/meter-1/voltage", json.dumps({"volts": 230}), qos=1).wait_for_publish(20)
        wait_until(lambda: len(rows(cloud)) == 3, what="the device-topic message stored")
    finally:
        client.disconnect()
        client.loop_stop()
    assert rows(cloud) == [
        ("meter-1", "meters/energy", None, 7, b'{"kwh": 3}'),
        ("meter-1", "meters/energy", None, 8, b"raw"),
        ("meter-1", "dt/meter-1/voltage", "dt/meter-1/voltage", None, b'{"volts": 230}'),
    ]

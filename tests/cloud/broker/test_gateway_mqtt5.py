"""Devices written with the AWS IoT Device SDK (``awscrt.mqtt5`` via ``mtls_from_path``) against a real
``edgewise cloud up``: the same matrix the paho tests prove (tests/cloud/broker/test_authorization.py,
tests/cloud/test_authorization_sync.py), with the client AWS customers run.

A refused publish or delivery shows as a silence, so each test sends a marker after the forbidden message
(acknowledged first, so the broker handled it before) and checks the marker arrived and the forbidden one did
not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from awscrt import mqtt5
from tests.cloud.broker.mqtt5 import Mqtt5Device
from tests.cloud.test_authorization_sync import acl_grants, enroll
from tests.support.cloud_process import CloudProcess
from tests.support.pki import CertificateAuthority as OtherAuthority
from tests.support.pki import Credentials
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

SUCCESS = mqtt5.PubackReasonCode.SUCCESS


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("gateway-mqtt5") / "data") as process:
        yield process.wait_ready()


@pytest.fixture(scope="module")
def admin(cloud: CloudProcess) -> Iterator[httpx.Client]:
    with cloud.api(cloud.admin_token) as client:
        yield client


@pytest.fixture(scope="module")
def devices(
    cloud: CloudProcess, admin: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Credentials]:
    """Things A and B, each with an ACTIVE certificate carrying the default device policy."""
    directory = tmp_path_factory.mktemp("mqtt5-devices")
    identities = {name: enroll(cloud, admin, name, directory / name)[1] for name in ("A", "B")}
    wait_until(lambda: acl_grants(cloud, "A") and acl_grants(cloud, "B"), what="A and B in the broker's ACL")
    return identities


def connect(cloud: CloudProcess, client_id: str, identity: Credentials) -> Mqtt5Device:
    device = Mqtt5Device(cloud.mqtt_port, client_id, identity)
    assert device.start(), f"{client_id} was refused: {[failure.exception for failure in device.failures]}"
    return device


def test_device_publishes_and_receives_its_own_topics_with_qos1(
    cloud: CloudProcess, devices: dict[str, Credentials]
) -> None:
    with connect(cloud, "A", devices["A"]) as a:
        assert a.subscribe("$aws/things/A/shadow/#", "dt/A/#") == [mqtt5.SubackReasonCode.GRANTED_QOS_1] * 2
        assert a.publish("$aws/things/A/shadow/update", b"{}") == SUCCESS
        assert a.publish("dt/A/telemetry", b"21.5") == SUCCESS
        a.wait_for("$aws/things/A/shadow/update", b"{}")
        a.wait_for("dt/A/telemetry", b"21.5")


def test_another_devices_topics_are_neither_published_to_nor_delivered(
    cloud: CloudProcess, devices: dict[str, Credentials]
) -> None:
    with connect(cloud, "A", devices["A"]) as a, connect(cloud, "B", devices["B"]) as b:
        # Mosquitto grants every SUBSCRIBE and filters each delivery by the device's read rights.
        a.subscribe("dt/B/#", "$aws/things/B/#", "dt/A/#")
        b.subscribe("dt/B/#")
        assert b.publish("dt/B/telemetry", b"from B") == SUCCESS
        assert a.publish("dt/B/telemetry", b"from A") == mqtt5.PubackReasonCode.NOT_AUTHORIZED
        assert a.publish("$aws/things/B/shadow/update", b"{}") == mqtt5.PubackReasonCode.NOT_AUTHORIZED
        assert b.publish("dt/B/marker") == SUCCESS
        assert a.publish("dt/A/marker") == SUCCESS
        b.wait_for("dt/B/marker")
        a.wait_for("dt/A/marker")
        assert b.messages == [("dt/B/telemetry", b"from B"), ("dt/B/marker", b"x")]
        assert a.topics() == ["dt/A/marker"]


def test_a_wrong_client_id_neither_takes_over_nor_gains_the_other_device(
    cloud: CloudProcess, devices: dict[str, Credentials]
) -> None:
    with connect(cloud, "B", devices["B"]) as b, connect(cloud, "B", devices["A"]) as impostor:
        # The broker replaced the impostor's client id with its certificate's name, A: B stays connected.
        b.subscribe("dt/B/#")
        impostor.subscribe("$aws/things/B/#", "dt/B/#", "dt/A/#")
        assert b.publish("$aws/things/B/shadow/update", b"{}") == SUCCESS
        assert b.publish("dt/B/telemetry") == SUCCESS
        assert impostor.publish("dt/A/marker") == SUCCESS
        impostor.wait_for("dt/A/marker")
        assert impostor.topics() == ["dt/A/marker"]
        assert b.disconnections == []
        assert b.publish("dt/B/still-here") == SUCCESS
        b.wait_for("dt/B/still-here")


def test_a_certificate_from_another_ca_is_refused(cloud: CloudProcess, tmp_path: Path) -> None:
    stranger = OtherAuthority(tmp_path / "other").issue("A")
    identity = Credentials(stranger.certificate, stranger.private_key, cloud.data_dir / "ca" / "ca.pem", 0)
    with Mqtt5Device(cloud.mqtt_port, "A", identity) as device:
        assert not device.start()
        assert device.connections == 0
        assert device.failures[0].exception is not None


def test_a_revoked_certificate_is_disconnected_and_then_refused(
    cloud: CloudProcess, admin: httpx.Client, devices: dict[str, Credentials], tmp_path: Path
) -> None:
    certificate_id, identity = enroll(cloud, admin, "R", tmp_path / "R")
    wait_until(lambda: acl_grants(cloud, "R"), what="R in the broker's ACL")
    with connect(cloud, "R", identity) as revoked, connect(cloud, "B", devices["B"]) as b:
        b.subscribe("dt/B/#")
        revoked.subscribe("dt/R/#")
        assert revoked.publish("dt/R/before") == SUCCESS
        revoked.wait_for("dt/R/before")

        assert admin.patch(f"/certificates/{certificate_id}", json={"status": "REVOKED"}).status_code == 200
        revoked.wait_disconnected()
        assert b.disconnections == []
        assert b.publish("dt/B/after") == SUCCESS
        b.wait_for("dt/B/after")
    with Mqtt5Device(cloud.mqtt_port, "R", identity) as again:
        assert not again.start()
        assert again.connections == 0


def test_an_inactive_certificate_is_refused_until_activated_again(
    cloud: CloudProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    certificate_id, identity = enroll(cloud, admin, "I", tmp_path / "I")
    wait_until(lambda: acl_grants(cloud, "I"), what="I in the broker's ACL")
    assert admin.patch(f"/certificates/{certificate_id}", json={"status": "INACTIVE"}).status_code == 200

    def refused() -> bool:
        with Mqtt5Device(cloud.mqtt_port, "I", identity) as device:
            return not device.start()

    wait_until(refused, what="I's inactive certificate to be refused")
    assert admin.patch(f"/certificates/{certificate_id}", json={"status": "ACTIVE"}).status_code == 200
    wait_until(lambda: not refused(), what="I's certificate to be accepted again")

"""The gateway enforces what the store says: policies attached through the API reach the broker, and a
revoked certificate's device is disconnected and kept out, in a real ``edgewise cloud up``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edgewise.cloud.broker.sync import AuthorizationSnapshot
from edgewise.cloud.identity.certificates import CertificateStatus
from edgewise.cloud.identity.policy import DEFAULT_DEVICE_POLICY_NAME
from tests.cloud.broker.clients import TestClient, try_connect
from tests.cloud.broker.pki import Identity
from tests.cloud.test_cloud_up import CloudProcess
from tests.integration.mosquitto import wait_until


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("authorization-sync") / "data") as process:
        yield process.wait_ready()


def enroll(
    cloud: CloudProcess, admin: httpx.Client, thing_name: str, directory: Path
) -> tuple[str, Identity]:
    """Create ``thing_name`` with a generated certificate carrying the default device policy."""
    assert admin.post("/things", json={"thingName": thing_name}).status_code == 201
    created = admin.post("/certificates", json={"generateKeyPair": True, "thingName": thing_name})
    assert created.status_code == 201, created.text
    issued = created.json()
    certificate_id = issued["certificateId"]
    attached = admin.put(f"/policies/{DEFAULT_DEVICE_POLICY_NAME}/targets/certificates/{certificate_id}")
    assert attached.status_code == 204, attached.text
    principal = admin.put(f"/things/{thing_name}/principals/{certificate_id}")
    assert principal.status_code == 204, principal.text
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "device.pem").write_text(issued["certificatePem"])
    (directory / "device.key").write_text(issued["privateKey"])
    identity = Identity(
        certificate=directory / "device.pem",
        private_key=directory / "device.key",
        ca=cloud.data_dir / "ca" / "ca.pem",
        serial=int(issued["serialNumber"], 16),
    )
    return certificate_id, identity


def acl_grants(cloud: CloudProcess, thing_name: str) -> bool:
    return f"user {thing_name}" in (cloud.data_dir / "broker" / "devices.acl").read_text()


def test_devices_get_their_own_topics_and_a_revoked_one_is_cut_off(
    cloud: CloudProcess, tmp_path: Path
) -> None:
    with cloud.api(cloud.admin_token) as admin:
        a_certificate, a_identity = enroll(cloud, admin, "A", tmp_path / "A")
        _, b_identity = enroll(cloud, admin, "B", tmp_path / "B")
        wait_until(
            lambda: acl_grants(cloud, "A") and acl_grants(cloud, "B"), what="A and B in the broker's ACL"
        )
        with (
            TestClient(cloud.mqtt_port, "A", identity=a_identity) as device_a,
            TestClient(cloud.mqtt_port, "B", identity=b_identity) as device_b,
        ):
            assert device_a.start()
            assert device_b.start()
            device_a.subscribe("dt/A/x", "dt/B/x")
            device_b.subscribe("dt/B/x")
            assert not device_a.publish("dt/A/x").is_failure
            device_a.wait_for("dt/A/x")
            assert not device_b.publish("dt/B/x").is_failure
            device_b.wait_for("dt/B/x")
            device_a.publish("dt/B/x", b"from A")
            assert not device_b.publish("dt/B/x", b"marker").is_failure
            wait_until(lambda: [m for m in device_b.messages if m.payload == b"marker"], what="B's marker")
            # A's publish was acknowledged before B's marker, so the broker had already dropped or delivered it.
            assert [m.payload for m in device_b.messages] == [b"x", b"marker"]
            assert "dt/B/x" not in device_a.topics()

            revoked = admin.patch(f"/certificates/{a_certificate}", json={"status": "REVOKED"})
            assert revoked.status_code == 200, revoked.text
            wait_until(lambda: device_a.disconnects, timeout=10, what="A to be disconnected")

            assert device_b.connected
            assert not device_b.publish("dt/B/x", b"after").is_failure
            wait_until(
                lambda: [m for m in device_b.messages if m.payload == b"after"],
                what="B's message after A was revoked",
            )
        assert not try_connect(cloud.mqtt_port, "A", a_identity)
        assert try_connect(cloud.mqtt_port, "B", b_identity)
        assert not acl_grants(cloud, "A")


def test_an_inactive_certificate_is_refused_until_activated_again(
    cloud: CloudProcess, tmp_path: Path
) -> None:
    with cloud.api(cloud.admin_token) as admin:
        certificate_id, identity = enroll(cloud, admin, "C", tmp_path / "C")
        wait_until(lambda: acl_grants(cloud, "C"), what="C in the broker's ACL")
        assert try_connect(cloud.mqtt_port, "C", identity)

        assert admin.patch(f"/certificates/{certificate_id}", json={"status": "INACTIVE"}).status_code == 200
        wait_until(lambda: not try_connect(cloud.mqtt_port, "C", identity), what="C to be refused")

        assert admin.patch(f"/certificates/{certificate_id}", json={"status": "ACTIVE"}).status_code == 200
        wait_until(lambda: try_connect(cloud.mqtt_port, "C", identity), what="C to be accepted again")


def test_detaching_the_policy_disconnects_the_device_and_takes_its_topics_away(
    cloud: CloudProcess, tmp_path: Path
) -> None:
    with cloud.api(cloud.admin_token) as admin:
        certificate_id, identity = enroll(cloud, admin, "D", tmp_path / "D")
        wait_until(lambda: acl_grants(cloud, "D"), what="D in the broker's ACL")
        with TestClient(cloud.mqtt_port, "D", identity=identity) as device:
            assert device.start()
            detached = admin.delete(
                f"/policies/{DEFAULT_DEVICE_POLICY_NAME}/targets/certificates/{certificate_id}"
            )
            assert detached.status_code == 204, detached.text
            wait_until(lambda: device.disconnects, timeout=10, what="D to be disconnected")
        assert not acl_grants(cloud, "D")


def snapshot(
    certificates: dict[str, tuple[str, CertificateStatus]], permitted: set[str]
) -> AuthorizationSnapshot:
    return AuthorizationSnapshot(acl="", crl="", certificates=certificates, permitted=frozenset(permitted))


def test_devices_that_lost_an_active_certificate_or_every_permission_are_dropped() -> None:
    active, revoked, inactive = (
        CertificateStatus.ACTIVE,
        CertificateStatus.REVOKED,
        CertificateStatus.INACTIVE,
    )
    before = snapshot(
        {"1": ("A", active), "2": ("B", active), "3": ("C", inactive), "4": ("unassigned.x", active)},
        {"A", "B", "E"},
    )
    after = snapshot({"1": ("A", revoked), "2": ("B", active), "3": ("C", active)}, {"B", "C"})
    assert after.dropped_since(before) == ["A", "E"]
    assert after.dropped_since(after) == []

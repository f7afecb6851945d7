"""The gateway enforces what the store says: policies attached through the API (to certificates or to thing
groups, inherited down the hierarchy) reach the broker, and a revoked certificate's device is disconnected and
kept out, even once the certificate is deleted, in a real ``edgewise cloud up``. Then
:class:`AuthorizationSync` on its own, with a real Mosquitto: back-off while the store or the broker fails,
the CRL renewed before it expires (injected clock), and a name the store grants twice left out and reported
while every other change still reaches the broker."""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker import (
    AuthorizationSnapshot,
    AuthorizationSync,
    BrokerConfigError,
    MosquittoBroker,
    SyncRetryPolicy,
)
from edgewise.cloud.db import create_database_engine, create_session_factory
from edgewise.cloud.identity import (
    DEFAULT_DEVICE_POLICY_NAME,
    CertificateAuthority,
    CertificateStatus,
    ThingPrincipal,
)
from edgewise.cloud.identity import service as identity
from edgewise.cloud.preparation import PreparedCloud, ServerOptions, prepare
from edgewise.cloud.provisioning import service as provisioning
from edgewise.cloud.registry import Thing
from edgewise.cloud.registry import service as registry
from tests.cloud.broker.clients import TestClient, try_connect
from tests.support.cloud_process import CloudProcess
from tests.support.pki import Credentials
from tests.support.ports import free_port
from tests.support.waiting import eventually, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("authorization-sync") / "data") as process:
        yield process.wait_ready()


def enroll(
    cloud: CloudProcess, admin: httpx.Client, thing_name: str, directory: Path
) -> tuple[str, Credentials]:
    """Create ``thing_name`` with a generated certificate carrying the default device policy."""
    assert admin.post("/things", json={"thingName": thing_name}).status_code == 201
    return issue(cloud, admin, thing_name, directory)


def issue(
    cloud: CloudProcess, admin: httpx.Client, thing_name: str, directory: Path
) -> tuple[str, Credentials]:
    """Give thing ``thing_name`` another generated certificate carrying the default device policy."""
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
    identity = Credentials(
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


def crl_serials(cloud: CloudProcess) -> set[int]:
    crl = x509.load_pem_x509_crl((cloud.data_dir / "broker" / "devices.crl").read_bytes())
    return {entry.serial_number for entry in crl}


@pytest.mark.parametrize("status", ["REVOKED", "INACTIVE"])
def test_a_deleted_certificate_stays_refused_and_the_device_keeps_its_own(
    cloud: CloudProcess, tmp_path: Path, status: str
) -> None:
    thing_name = f"deleted-{status.lower()}"
    with cloud.api(cloud.admin_token) as admin:
        _, device = enroll(cloud, admin, thing_name, tmp_path / "device")
        second_id, second = issue(cloud, admin, thing_name, tmp_path / "second")
        wait_until(lambda: acl_grants(cloud, thing_name), what=f"{thing_name} in the broker's ACL")
        assert try_connect(cloud.mqtt_port, thing_name, second)

        assert admin.patch(f"/certificates/{second_id}", json={"status": status}).status_code == 200
        wait_until(
            lambda: not try_connect(cloud.mqtt_port, thing_name, second), what="the second to be refused"
        )
        for detached in (
            admin.delete(f"/things/{thing_name}/principals/{second_id}"),
            admin.delete(f"/policies/{DEFAULT_DEVICE_POLICY_NAME}/targets/certificates/{second_id}"),
            admin.delete(f"/certificates/{second_id}"),
        ):
            assert detached.status_code == 204, detached.text
        # A later change whose effect shows: once it is refused, the broker has every file rendered since.
        marker_id, marker = enroll(cloud, admin, f"{thing_name}-marker", tmp_path / "marker")
        assert admin.patch(f"/certificates/{marker_id}", json={"status": "INACTIVE"}).status_code == 200
        wait_until(
            lambda: not try_connect(cloud.mqtt_port, f"{thing_name}-marker", marker),
            what="the marker refused",
        )

        assert not try_connect(cloud.mqtt_port, thing_name, second)
        assert try_connect(cloud.mqtt_port, thing_name, device)
        assert second.serial in crl_serials(cloud)


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


def test_the_cloud_s_own_client_ids_are_never_disconnected_for_a_device() -> None:
    active, revoked = CertificateStatus.ACTIVE, CertificateStatus.REVOKED
    before = snapshot({"1": ("edgewise-jobs", active), "2": ("A", active)}, {"edgewise-provisioning", "A"})
    after = snapshot({"1": ("edgewise-jobs", revoked), "2": ("A", revoked)}, set())
    assert after.dropped_since(before) == ["A"]


def fleet_policy(prefix: str) -> str:
    """A policy document letting a device use ``<prefix>/<its thing name>/...``, and nothing else."""
    own = f"{prefix}/${{iot:Connection.Thing.ThingName}}/*"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["iot:Publish", "iot:Receive"],
                    "Resource": f"arn:aws:iot:*:*:topic/{own}",
                },
                {
                    "Effect": "Allow",
                    "Action": "iot:Subscribe",
                    "Resource": f"arn:aws:iot:*:*:topicfilter/{own}",
                },
            ],
        }
    )


def may_publish(device: TestClient, topic: str) -> bool:
    """Whether the broker accepts a QoS 1 publish to ``topic`` (Mosquitto answers 'not authorized' else)."""
    return not device.publish(topic).is_failure


def test_group_membership_and_hierarchy_changes_reach_the_broker(cloud: CloudProcess, tmp_path: Path) -> None:
    with cloud.api(cloud.admin_token) as admin:
        _, identity = enroll(cloud, admin, "G", tmp_path / "G")
        wait_until(lambda: acl_grants(cloud, "G"), what="G in the broker's ACL")
        for name in ("fleet", "zone"):
            created = admin.post("/policies", json={"policyName": name, "policyDocument": fleet_policy(name)})
            assert created.status_code == 201, created.text
        for group, parent in (("plant", None), ("line-a", "plant"), ("annex", None)):
            created = admin.post("/thing-groups", json={"thingGroupName": group, "parentGroupName": parent})
            assert created.status_code == 201, created.text
        assert admin.put("/policies/fleet/targets/thing-groups/plant").status_code == 204

        with TestClient(cloud.mqtt_port, "G", identity=identity) as device:
            assert device.start()
            assert not may_publish(device, "fleet/G/telemetry")

            # Joining a child group of the one the policy is attached to: the policy is inherited.
            assert admin.put("/thing-groups/line-a/things/G").status_code == 204
            wait_until(lambda: may_publish(device, "fleet/G/telemetry"), what="G to inherit 'fleet'")
            device.subscribe("fleet/G/#")
            device.publish("fleet/G/delivered")
            device.wait_for("fleet/G/delivered")

            assert admin.delete("/thing-groups/line-a/things/G").status_code == 204
            wait_until(lambda: not may_publish(device, "fleet/G/telemetry"), what="G to lose 'fleet'")

            # The hierarchy changes: line-a is made again under annex, which has no policy until one is attached.
            assert admin.delete("/thing-groups/line-a").status_code == 204
            moved = admin.post("/thing-groups", json={"thingGroupName": "line-a", "parentGroupName": "annex"})
            assert moved.status_code == 201, moved.text
            assert admin.put("/thing-groups/line-a/things/G").status_code == 204
            assert admin.put("/thing-groups/plant/things/G").status_code == 204
            wait_until(lambda: may_publish(device, "fleet/G/telemetry"), what="G to get 'fleet' from plant")
            assert admin.delete("/thing-groups/plant/things/G").status_code == 204
            wait_until(lambda: not may_publish(device, "fleet/G/telemetry"), what="G to lose plant's 'fleet'")
            assert admin.put("/policies/fleet/targets/thing-groups/annex").status_code == 204
            wait_until(
                lambda: may_publish(device, "fleet/G/telemetry"), what="G to inherit 'fleet' from annex"
            )

            # A dynamic group follows the thing's attributes.
            dynamic = admin.post(
                "/thing-groups", json={"thingGroupName": "blue", "queryString": "attributes.zone:blue"}
            )
            assert dynamic.status_code == 201, dynamic.text
            assert admin.put("/policies/zone/targets/thing-groups/blue").status_code == 204
            assert not may_publish(device, "zone/G/telemetry")
            assert admin.patch("/things/G", json={"attributes": {"zone": "blue"}}).status_code == 200
            wait_until(
                lambda: may_publish(device, "zone/G/telemetry"), what="G to join 'blue' and get 'zone'"
            )

            # Its own topics never changed, so the device was never disconnected.
            assert device.disconnects == []


class Clock:
    """A settable UTC clock for the CA and the sync."""

    def __init__(self) -> None:
        self.now = datetime.datetime.now(datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now


class FlakyStore:
    """A session factory whose database can be made unavailable, as a restarting PostgreSQL would be."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self.down = False

    def __call__(self) -> Session:
        if self.down:
            raise sa.exc.OperationalError(
                "SELECT 1", {}, ConnectionRefusedError("the database is restarting")
            )
        return self._sessions()


@dataclass
class SyncParts:
    """A prepared data directory's store, CA (on ``clock``) and managed broker, not yet started."""

    cloud: PreparedCloud
    store: FlakyStore
    authority: CertificateAuthority
    broker: MosquittoBroker
    clock: Clock

    def sync(self, **options: Any) -> AuthorizationSync:
        return AuthorizationSync(self.store, self.broker, self.authority, clock=self.clock, **options)

    def crl_next_update(self) -> datetime.datetime:
        crl_file = self.broker.settings.devices.crlfile
        assert crl_file is not None
        next_update = x509.load_pem_x509_crl(crl_file.read_bytes()).next_update_utc
        assert next_update is not None
        return next_update


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[SyncParts]:
    cloud = await asyncio.to_thread(prepare, ServerOptions(data_dir=tmp_path / "data", mqtt_port=free_port()))
    assert cloud.broker is not None
    engine = create_database_engine(cloud.settings.database_url)
    clock = Clock()
    ca_dir = cloud.settings.data_dir / "ca"
    authority = CertificateAuthority.load(
        (ca_dir / "ca.pem").read_text(), (ca_dir / "ca.key").read_text(), clock=clock
    )
    broker = MosquittoBroker(cloud.broker)
    try:
        yield SyncParts(cloud, FlakyStore(create_session_factory(engine)), authority, broker, clock)
    finally:
        await broker.stop()
        engine.dispose()


def test_retry_delays_double_up_to_the_cap_with_at_most_ten_percent_jitter() -> None:
    policy = SyncRetryPolicy(base_delay=1.0, max_delay=8.0)
    for failures, base in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (10_000, 8.0)):
        assert base <= policy.delay(failures) <= base * 1.1
    with pytest.raises(BrokerConfigError, match="base_delay"):
        SyncRetryPolicy(base_delay=2.0, max_delay=1.0)


def sync_log(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.getMessage().startswith(event)]


async def test_sync_retries_with_back_off_while_the_database_is_down_and_logs_the_streak_once(
    parts: SyncParts, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="edgewise.cloud.broker.sync")
    policy = SyncRetryPolicy(base_delay=0.01, max_delay=0.04)
    sync = parts.sync(debounce=0.01, retry=policy)
    await sync.start()
    try:
        parts.store.down = True
        sync.notify()
        await eventually(lambda: sync.statistics().failing >= 5, what="five failed syncs in a row")
        parts.store.down = False
        await eventually(lambda: sync.statistics().failing == 0, what="the sync to recover")
    finally:
        await sync.close()
    statistics = sync.statistics()
    assert statistics.syncs == 2
    assert statistics.failures >= 5
    failed = sync_log(caplog, "authorization-sync-failed")
    assert [record.levelno for record in failed if record.levelno > logging.DEBUG] == [logging.ERROR]
    assert failed[0].exc_info is not None
    assert "the database is restarting" in caplog.text
    # The delay each failure announced (its last argument): doubling from 0.01 s, then capped at 0.04 s.
    delays = [float(record.args[-1]) for record in failed if isinstance(record.args, tuple)]
    assert len(delays) == statistics.failures
    for delay, base in zip(delays, (0.01, 0.02, 0.04, 0.04, 0.04), strict=False):
        assert base <= delay <= base * 1.1
    recovered = sync_log(caplog, "authorization-sync-recovered")
    assert [record.args for record in recovered] == [(statistics.failures,)]


async def test_sync_retries_while_the_broker_is_down_and_catches_up_when_it_is_back(
    parts: SyncParts, caplog: pytest.LogCaptureFixture
) -> None:
    sync = parts.sync(debounce=0.01, retry=SyncRetryPolicy(base_delay=0.01, max_delay=0.05))
    await sync.start()
    try:
        await parts.broker.stop()
        with parts.store() as session:
            registry.create_thing(session, "late")
        sync.notify()
        await eventually(
            lambda: sync.statistics().failing >= 2, what="syncs to fail while the broker is down"
        )
        await parts.broker.start()
        await eventually(lambda: sync.statistics().failing == 0, what="the sync to recover")
    finally:
        await sync.close()
    assert len([r for r in sync_log(caplog, "authorization-sync-failed") if r.levelno >= logging.ERROR]) == 1
    assert "is stopped, not running" in caplog.text


async def test_crl_is_renewed_when_less_than_30_days_are_left(parts: SyncParts) -> None:
    sync = parts.sync(crl_check_interval=0.02)
    await sync.start()
    try:
        first = sync.statistics().crl_next_update
        assert first is not None
        assert parts.crl_next_update() == first
        assert first - parts.clock.now > datetime.timedelta(days=300)

        parts.clock.now = first - datetime.timedelta(days=31)
        assert not sync.crl_renewal_due()
        parts.clock.now = first - datetime.timedelta(days=29)
        assert sync.crl_renewal_due()
        renewed = await eventually(
            lambda: (
                (sync.statistics().crl_next_update or first) > first and sync.statistics().crl_next_update
            ),
            what="the CRL to be renewed",
        )
        assert parts.crl_next_update() == renewed
        assert renewed - parts.clock.now > datetime.timedelta(days=300)
        assert not sync.crl_renewal_due()
        assert sync.statistics().syncs == 2
    finally:
        await sync.close()


async def test_a_name_claimed_twice_is_skipped_and_reported_while_revocations_still_reach_the_broker(
    parts: SyncParts, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="edgewise.cloud.broker.sync")
    with parts.store() as session:
        identity.ensure_default_policy(session)
        claim = provisioning.create_claim_certificate(session, parts.authority, [DEFAULT_DEVICE_POLICY_NAME])
        claim_name = claim.certificate.common_name
        # A thing registered before names were checked, named like the claim certificate.
        thing = Thing(name=claim_name, attributes={})
        session.add(thing)
        legacy, _ = identity.issue_certificate(session, parts.authority, claim_name, CertificateStatus.ACTIVE)
        session.add(ThingPrincipal(thing_id=thing.id, certificate_id=legacy.id))
        session.commit()
        identity.attach_policy_to_certificate(session, DEFAULT_DEVICE_POLICY_NAME, legacy.certificate_id)
        registry.create_thing(session, "A")
        device = identity.create_certificate(session, parts.authority, thing_name="A").certificate
        identity.attach_policy_to_certificate(session, DEFAULT_DEVICE_POLICY_NAME, device.certificate_id)
        device_id, device_serial = device.certificate_id, int(device.serial_hex, 16)
    acl_file = parts.broker.settings.acl_file
    sync = parts.sync(debounce=0.01)
    await sync.start()
    try:
        assert "user A\n" in acl_file.read_text()
        assert f"user {claim_name}" not in acl_file.read_text()
        [skipped] = sync.statistics().skipped
        assert skipped.name == claim_name
        assert "none of them gets it" in skipped.reason

        with parts.store() as session:
            identity.update_certificate_status(session, device_id, CertificateStatus.REVOKED)
        sync.notify()
        await eventually(lambda: sync.statistics().syncs == 2, what="the revocation to be synced")
    finally:
        await sync.close()
    assert "user A\n" not in acl_file.read_text()
    crl_file = parts.broker.settings.devices.crlfile
    assert crl_file is not None
    assert device_serial in {entry.serial_number for entry in x509.load_pem_x509_crl(crl_file.read_bytes())}
    assert sync.statistics().failures == 0
    [warning] = sync_log(caplog, "authorization-skipped")
    assert warning.levelno == logging.WARNING
    assert claim_name in warning.getMessage()

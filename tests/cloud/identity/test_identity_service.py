"""Identity in the store: certificates, policies, attachments and the device permissions they add up to."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from edgewise.cloud.broker import DevicePermissions, all_device_permissions, device_permissions
from edgewise.cloud.errors import (
    AlreadyExistsError,
    CloudConflictError,
    InvalidRequestError,
    LimitExceededError,
    NotFoundError,
)
from edgewise.cloud.identity import (
    DEFAULT_DEVICE_POLICY_NAME,
    CertificateAuthority,
    CertificateError,
    CertificateStatus,
    service,
)
from edgewise.cloud.registry import service as registry
from edgewise.topics import filter_matches
from tests.support.pki import signing_request


@pytest.fixture(scope="module")
def authority() -> CertificateAuthority:
    return CertificateAuthority.create("Test CA")


def _device(session: Session, authority: CertificateAuthority, thing_name: str) -> str:
    """A thing with an ACTIVE certificate; returns the certificate id."""
    registry.create_thing(session, thing_name)
    return service.create_certificate(session, authority, thing_name=thing_name).certificate.certificate_id


def _may(permissions: DevicePermissions | None, verb: str, topic: str) -> bool:
    if permissions is None:
        return False
    granted: tuple[str, ...] = getattr(permissions, verb)
    denied = any(filter_matches(topic_filter, topic) for topic_filter in permissions.deny)
    return not denied and any(filter_matches(topic_filter, topic) for topic_filter in granted)


# Certificate authority on disk


def test_ca_is_created_once_with_an_owner_only_key(tmp_path: Path) -> None:
    created = service.load_or_create_ca(tmp_path)
    key_file = tmp_path / "ca" / service.CA_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    loaded = service.load_or_create_ca(tmp_path)
    assert loaded.certificate_pem == created.certificate_pem


def test_ca_with_only_one_file_is_refused(tmp_path: Path) -> None:
    service.load_or_create_ca(tmp_path)
    (tmp_path / "ca" / service.CA_KEY_FILE).unlink()
    with pytest.raises(CertificateError, match=r"ca\.key: is missing"):
        service.load_or_create_ca(tmp_path)


# Certificates


def test_generated_key_pair_is_returned_once_and_not_stored(
    session: Session, authority: CertificateAuthority
) -> None:
    created = service.create_certificate(session, authority)
    assert created.private_key_pem is not None
    assert "PRIVATE KEY" in created.private_key_pem
    stored = service.get_certificate(session, created.certificate.certificate_id)
    assert "PRIVATE KEY" not in stored.pem
    assert stored.status is CertificateStatus.ACTIVE
    issued = authority.verify(stored.pem)
    assert issued.certificate_id == stored.certificate_id
    assert issued.serial_hex == stored.serial_hex


def test_certificate_from_csr_takes_the_thing_name_as_cn_and_is_attached(
    session: Session, authority: CertificateAuthority
) -> None:
    registry.create_thing(session, "sensor-1")
    created = service.create_certificate(
        session, authority, csr_pem=signing_request("admin"), thing_name="sensor-1"
    )
    assert created.private_key_pem is None
    assert created.certificate.common_name == "sensor-1"
    assert [c.certificate_id for c in service.list_thing_principals(session, "sensor-1")] == [
        created.certificate.certificate_id
    ]


def test_bad_csr_is_an_invalid_request_naming_csr(session: Session, authority: CertificateAuthority) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        service.create_certificate(session, authority, csr_pem="not a csr")
    assert caught.value.field == "csr"


def test_certificate_for_a_missing_thing_is_not_found(
    session: Session, authority: CertificateAuthority
) -> None:
    with pytest.raises(NotFoundError, match="ghost"):
        service.create_certificate(session, authority, thing_name="ghost")


def test_new_certificate_can_start_inactive(session: Session, authority: CertificateAuthority) -> None:
    created = service.create_certificate(session, authority, set_as_active=False)
    assert created.certificate.status is CertificateStatus.INACTIVE


def test_revoked_certificate_cannot_be_reactivated(session: Session, authority: CertificateAuthority) -> None:
    certificate_id = service.create_certificate(session, authority).certificate.certificate_id
    service.update_certificate_status(session, certificate_id, CertificateStatus.REVOKED)
    with pytest.raises(CloudConflictError, match="is REVOKED and cannot become ACTIVE"):
        service.update_certificate_status(session, certificate_id, CertificateStatus.ACTIVE)


def test_only_detached_inactive_or_revoked_certificates_can_be_deleted(
    session: Session, authority: CertificateAuthority
) -> None:
    certificate_id = _device(session, authority, "sensor-1")
    with pytest.raises(CloudConflictError, match="only an INACTIVE or REVOKED"):
        service.delete_certificate(session, certificate_id)
    service.update_certificate_status(session, certificate_id, CertificateStatus.INACTIVE)
    with pytest.raises(CloudConflictError, match="attached to thing 'sensor-1'"):
        service.delete_certificate(session, certificate_id)
    service.detach_thing_principal(session, "sensor-1", certificate_id)
    service.ensure_default_policy(session)
    service.attach_policy_to_certificate(session, DEFAULT_DEVICE_POLICY_NAME, certificate_id)
    with pytest.raises(CloudConflictError, match="has policy"):
        service.delete_certificate(session, certificate_id)
    service.detach_policy_from_certificate(session, DEFAULT_DEVICE_POLICY_NAME, certificate_id)
    service.delete_certificate(session, certificate_id)
    with pytest.raises(NotFoundError):
        service.get_certificate(session, certificate_id)


def test_listing_filters_by_status(session: Session, authority: CertificateAuthority) -> None:
    active = service.create_certificate(session, authority).certificate.certificate_id
    service.create_certificate(session, authority, set_as_active=False)
    page = service.list_certificates(session, status=CertificateStatus.ACTIVE)
    assert [c.certificate_id for c in page.items] == [active]
    assert service.list_certificates(session).total == 2


def test_certificate_cannot_be_attached_to_a_thing_of_another_name(
    session: Session, authority: CertificateAuthority
) -> None:
    certificate_id = _device(session, authority, "sensor-1")
    registry.create_thing(session, "sensor-2")
    with pytest.raises(CloudConflictError, match="issued for 'sensor-1'"):
        service.attach_thing_principal(session, "sensor-2", certificate_id)


def test_deleting_a_thing_removes_its_principals(session: Session, authority: CertificateAuthority) -> None:
    certificate_id = _device(session, authority, "sensor-1")
    registry.delete_thing(session, "sensor-1")
    assert service.list_certificate_things(session, certificate_id) == []


# Policies


def test_invalid_policy_names_every_problem(session: Session) -> None:
    document = json.dumps({"Version": "2000-01-01", "Statement": [{"Effect": "Maybe"}]})
    with pytest.raises(InvalidRequestError) as caught:
        service.create_policy(session, "p", document)
    assert caught.value.field == "policyDocument"
    assert "Version" in caught.value.problem
    assert "Statement[0].Effect" in caught.value.problem


def test_policy_name_follows_aws_rules(session: Session) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        service.create_policy(session, "no spaces", "{}")
    assert caught.value.field == "policyName"


def test_policy_lifecycle(session: Session) -> None:
    service.ensure_default_policy(session)
    document = service.get_policy(session, DEFAULT_DEVICE_POLICY_NAME).document
    service.create_policy(session, "copy", document)
    with pytest.raises(AlreadyExistsError):
        service.create_policy(session, "copy", document)
    narrower = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}],
        }
    )
    updated = service.update_policy(session, "copy", narrower)
    assert updated.document == narrower
    assert [p.name for p in service.list_policies(session).items] == [DEFAULT_DEVICE_POLICY_NAME, "copy"]
    service.delete_policy(session, "copy")
    with pytest.raises(NotFoundError):
        service.get_policy(session, "copy")


def test_default_policy_is_created_once_and_edits_are_kept(session: Session) -> None:
    first = service.ensure_default_policy(session)
    edited = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}],
        }
    )
    service.update_policy(session, first.name, edited)
    assert service.ensure_default_policy(session).document == edited
    assert service.list_policies(session).total == 1


def test_attached_policy_cannot_be_deleted(session: Session, authority: CertificateAuthority) -> None:
    service.ensure_default_policy(session)
    registry.create_group(session, "fleet")
    service.attach_policy_to_group(session, DEFAULT_DEVICE_POLICY_NAME, "fleet")
    with pytest.raises(CloudConflictError, match="thing group 'fleet'"):
        service.delete_policy(session, DEFAULT_DEVICE_POLICY_NAME)
    targets = service.list_policy_targets(session, DEFAULT_DEVICE_POLICY_NAME)
    assert (targets.certificate_ids, targets.group_names) == ([], ["fleet"])


def test_a_certificate_holds_at_most_ten_policies(session: Session, authority: CertificateAuthority) -> None:
    certificate_id = service.create_certificate(session, authority).certificate.certificate_id
    document = service.ensure_default_policy(session).document
    for index in range(service.MAX_POLICIES_PER_TARGET):
        service.create_policy(session, f"p{index}", document)
        service.attach_policy_to_certificate(session, f"p{index}", certificate_id)
    service.attach_policy_to_certificate(session, "p0", certificate_id)
    service.create_policy(session, "one-too-many", document)
    with pytest.raises(LimitExceededError):
        service.attach_policy_to_certificate(session, "one-too-many", certificate_id)


# Device permissions


def test_default_policy_gives_a_device_its_own_topics_only(
    session: Session, authority: CertificateAuthority
) -> None:
    certificate_a = _device(session, authority, "thing-a")
    _device(session, authority, "thing-b")
    service.ensure_default_policy(session)
    service.attach_policy_to_certificate(session, DEFAULT_DEVICE_POLICY_NAME, certificate_a)
    permissions = device_permissions(session, "thing-a")
    assert permissions is not None
    for verb in ("publish", "subscribe", "receive"):
        assert _may(permissions, verb, "$aws/things/thing-a/shadow/update")
        assert _may(permissions, verb, "dt/thing-a/telemetry")
        assert not _may(permissions, verb, "$aws/things/thing-b/shadow/update")
        assert not _may(permissions, verb, "dt/thing-b/telemetry")
    # thing-b has a certificate but no policy: it may not even connect.
    assert device_permissions(session, "thing-b") is None
    assert [p.thing_name for p in all_device_permissions(session).devices] == ["thing-a"]


def test_policies_of_a_parent_group_are_inherited(session: Session, authority: CertificateAuthority) -> None:
    _device(session, authority, "thing-a")
    registry.create_group(session, "europe")
    registry.create_group(session, "berlin", parent_name="europe")
    registry.add_thing_to_group(session, "berlin", "thing-a")
    service.ensure_default_policy(session)
    assert device_permissions(session, "thing-a") is None
    service.attach_policy_to_group(session, DEFAULT_DEVICE_POLICY_NAME, "europe")
    assert _may(device_permissions(session, "thing-a"), "publish", "dt/thing-a/x")
    service.detach_policy_from_group(session, DEFAULT_DEVICE_POLICY_NAME, "europe")
    assert device_permissions(session, "thing-a") is None


def test_policies_of_a_matching_dynamic_group_apply(
    session: Session, authority: CertificateAuthority
) -> None:
    _device(session, authority, "thing-a")
    registry.create_group(session, "floor-3", query_string="attributes.floor:3")
    service.ensure_default_policy(session)
    service.attach_policy_to_group(session, DEFAULT_DEVICE_POLICY_NAME, "floor-3")
    assert device_permissions(session, "thing-a") is None
    registry.update_thing(session, "thing-a", attributes={"floor": "3"})
    assert _may(device_permissions(session, "thing-a"), "receive", "$aws/things/thing-a/jobs/notify")


def test_group_policy_with_a_deny_wins_over_the_certificate_policy(
    session: Session, authority: CertificateAuthority
) -> None:
    certificate_id = _device(session, authority, "thing-a")
    service.ensure_default_policy(session)
    service.attach_policy_to_certificate(session, DEFAULT_DEVICE_POLICY_NAME, certificate_id)
    deny = {
        "Effect": "Deny",
        "Action": ["iot:Publish", "iot:Receive"],
        "Resource": "arn:aws:iot:*:*:topic/dt/${iot:Connection.Thing.ThingName}/secret",
    }
    service.create_policy(session, "no-secret", json.dumps({"Version": "2012-10-17", "Statement": [deny]}))
    registry.create_group(session, "fleet")
    registry.add_thing_to_group(session, "fleet", "thing-a")
    service.attach_policy_to_group(session, "no-secret", "fleet")
    permissions = device_permissions(session, "thing-a")
    assert _may(permissions, "publish", "dt/thing-a/telemetry")
    assert not _may(permissions, "publish", "dt/thing-a/secret")


def test_revoked_certificate_removes_permissions_and_is_listed_for_the_crl(
    session: Session, authority: CertificateAuthority
) -> None:
    certificate_id = _device(session, authority, "thing-a")
    held_id = _device(session, authority, "thing-b")
    service.ensure_default_policy(session)
    service.attach_policy_to_certificate(session, DEFAULT_DEVICE_POLICY_NAME, certificate_id)
    assert device_permissions(session, "thing-a") is not None
    service.update_certificate_status(session, certificate_id, CertificateStatus.REVOKED)
    service.update_certificate_status(session, held_id, CertificateStatus.INACTIVE)
    assert device_permissions(session, "thing-a") is None
    assert all_device_permissions(session).devices == []
    revoked = int(service.get_certificate(session, certificate_id).serial_hex, 16)
    held = int(service.get_certificate(session, held_id).serial_hex, 16)
    assert service.revoked_serials(session) == [revoked]
    assert service.held_serials(session) == [held]


def test_permissions_of_a_missing_thing_are_not_found(session: Session) -> None:
    with pytest.raises(NotFoundError):
        device_permissions(session, "ghost")

"""Who the gateway lets in, and as whom: the CRL lists every certificate that is not ACTIVE (deleted ones
until they expire), reserved names are refused and never granted, and rows the store should never have held
(from before names were checked) are skipped and reported instead of stopping the ACL for everyone."""

from __future__ import annotations

import datetime
import json

import pytest
from sqlalchemy.orm import Session

from edgewise.cloud.broker import all_device_permissions
from edgewise.cloud.db import utcnow
from edgewise.cloud.errors import InvalidRequestError
from edgewise.cloud.identity import (
    DEFAULT_DEVICE_POLICY_NAME,
    Certificate,
    CertificateAuthority,
    CertificateStatus,
    Policy,
    PolicyCertificateAttachment,
    ThingPrincipal,
    service,
)
from edgewise.cloud.provisioning import service as provisioning
from edgewise.cloud.registry import Thing
from edgewise.cloud.registry import service as registry

CLAIM_POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
)


@pytest.fixture(scope="module")
def authority() -> CertificateAuthority:
    return CertificateAuthority.create("Test CA")


def _serial(certificate: Certificate) -> int:
    return int(certificate.serial_hex, 16)


def _second_certificate(session: Session, authority: CertificateAuthority, thing_name: str) -> Certificate:
    """A thing with two ACTIVE certificates and the default policy on both; returns the second."""
    registry.create_thing(session, thing_name)
    service.ensure_default_policy(session)
    for _ in range(2):
        certificate = service.create_certificate(session, authority, thing_name=thing_name).certificate
        service.attach_policy_to_certificate(session, DEFAULT_DEVICE_POLICY_NAME, certificate.certificate_id)
    return certificate


def _legacy_device(session: Session, authority: CertificateAuthority, thing_name: str) -> Certificate:
    """A thing written before names were checked, with an ACTIVE certificate for its name and a policy."""
    thing = Thing(name=thing_name, attributes={})
    session.add(thing)
    certificate, _ = service.issue_certificate(session, authority, thing_name, CertificateStatus.ACTIVE)
    session.add(ThingPrincipal(thing_id=thing.id, certificate_id=certificate.id))
    session.commit()
    service.ensure_default_policy(session)
    service.attach_policy_to_certificate(session, DEFAULT_DEVICE_POLICY_NAME, certificate.certificate_id)
    return certificate


# The CRL


@pytest.mark.parametrize("status", [CertificateStatus.REVOKED, CertificateStatus.INACTIVE])
def test_a_deleted_certificate_stays_on_the_crl_until_it_expires(
    session: Session, authority: CertificateAuthority, status: CertificateStatus
) -> None:
    certificate = _second_certificate(session, authority, "pump")
    certificate_id, serial, not_after = (
        certificate.certificate_id,
        _serial(certificate),
        certificate.not_after,
    )
    service.update_certificate_status(session, certificate_id, status)
    service.detach_thing_principal(session, "pump", certificate_id)
    service.detach_policy_from_certificate(session, DEFAULT_DEVICE_POLICY_NAME, certificate_id)

    service.delete_certificate(session, certificate_id)

    assert serial in service.revoked_serials(session)
    assert serial in service.revoked_serials(session, now=not_after - datetime.timedelta(seconds=1))
    assert serial not in service.revoked_serials(session, now=not_after)
    # The thing's other certificate still connects, under the thing's name only.
    assert [device.thing_name for device in all_device_permissions(session).devices] == ["pump"]


def test_tombstones_of_expired_certificates_go_with_the_next_deletion(
    session: Session, authority: CertificateAuthority
) -> None:
    first = _second_certificate(session, authority, "pump")
    second = service.create_certificate(session, authority, thing_name="pump").certificate
    for certificate in (first, second):
        service.update_certificate_status(session, certificate.certificate_id, CertificateStatus.REVOKED)
        service.detach_thing_principal(session, "pump", certificate.certificate_id)
    service.detach_policy_from_certificate(session, DEFAULT_DEVICE_POLICY_NAME, first.certificate_id)
    first_serial, second_serial = _serial(first), _serial(second)
    service.delete_certificate(session, first.certificate_id)

    after_expiry = first.not_after + datetime.timedelta(days=1)
    service.delete_certificate(session, second.certificate_id, now=after_expiry)

    assert second_serial in service.revoked_serials(session)
    assert first_serial not in service.revoked_serials(session)


def test_a_certificate_with_a_reserved_common_name_is_held(
    session: Session, authority: CertificateAuthority
) -> None:
    worker_like = _legacy_device(session, authority, "edgewise-jobs")
    revoked = _legacy_device(session, authority, "edgewise-components")
    service.update_certificate_status(session, revoked.certificate_id, CertificateStatus.REVOKED)

    assert service.held_serials(session) == [_serial(worker_like)]
    assert service.revoked_serials(session) == [_serial(revoked)]


# Names written now


@pytest.mark.parametrize(
    "name",
    [
        "edgewise-jobs",
        "edgewise-components",
        "edgewise-anything",
        "claim-" + "0a" * 12,
        "device-" + "9f" * 12,
    ],
)
def test_reserved_thing_names_are_refused_and_nothing_is_stored(session: Session, name: str) -> None:
    with pytest.raises(
        InvalidRequestError, match=rf"^Field 'thingName' is invalid: '{name}' is reserved"
    ) as raised:
        registry.create_thing(session, name)
    assert raised.value.field == "thingName"
    assert registry.list_things(session).total == 0


@pytest.mark.parametrize(
    "name", ["device-7", "claim-0a0a", "my-edgewise-jobs", "Edgewise", "device-" + "0A" * 12]
)
def test_names_that_only_resemble_reserved_ones_are_accepted(session: Session, name: str) -> None:
    assert registry.create_thing(session, name).name == name


def test_a_thing_from_before_names_were_reserved_gets_no_certificate(
    session: Session, authority: CertificateAuthority
) -> None:
    _legacy_device(session, authority, "edgewise-jobs")
    with pytest.raises(InvalidRequestError, match="'thingName' is invalid: 'edgewise-jobs' is reserved"):
        service.create_certificate(session, authority, thing_name="edgewise-jobs")
    assert len(service.list_thing_principals(session, "edgewise-jobs")) == 1


# Rows from before the checks: skipped and reported, the rest rendered


def test_a_reserved_name_is_never_granted(session: Session, authority: CertificateAuthority) -> None:
    _legacy_device(session, authority, "edgewise-jobs")
    _second_certificate(session, authority, "pump")

    permissions = all_device_permissions(session)

    assert [device.thing_name for device in permissions.devices] == ["pump"]
    assert [entry.name for entry in permissions.skipped] == ["edgewise-jobs"]
    assert "reserved for the cloud's own clients" in permissions.skipped[0].reason


def test_a_thing_named_like_the_claim_certificate_costs_both_the_name_and_no_one_else(
    session: Session, authority: CertificateAuthority
) -> None:
    service.create_policy(session, "claim", CLAIM_POLICY)
    claim = provisioning.create_claim_certificate(session, authority, ["claim"]).certificate
    claim_id, claim_name = claim.certificate_id, claim.common_name
    _legacy_device(session, authority, claim_name)
    _second_certificate(session, authority, "pump")

    permissions = all_device_permissions(session)

    assert [device.thing_name for device in permissions.devices] == ["pump"]
    assert [entry.name for entry in permissions.skipped] == [claim_name]
    reason = permissions.skipped[0].reason
    assert f"thing {claim_name!r}" in reason
    assert f"certificate {claim_id} (attached to no thing)" in reason
    assert "none of them gets it" in reason


def test_a_thing_whose_stored_policy_does_not_parse_is_skipped_alone(
    session: Session, authority: CertificateAuthority
) -> None:
    broken = _second_certificate(session, authority, "broken")
    _second_certificate(session, authority, "pump")
    policy = Policy(name="garbled", document="{not json", created_at=utcnow(), updated_at=utcnow())
    session.add(policy)
    session.flush()
    session.add(PolicyCertificateAttachment(policy_id=policy.id, certificate_id=broken.id))
    session.commit()

    permissions = all_device_permissions(session)

    assert [device.thing_name for device in permissions.devices] == ["pump"]
    assert [entry.name for entry in permissions.skipped] == ["broken"]
    assert permissions.skipped[0].reason.startswith("thing 'broken' cannot be rendered: ")

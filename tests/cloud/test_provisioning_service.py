"""Provisioning in the store: template checks, claimed certificates with ownership tokens, RegisterThing."""

from __future__ import annotations

import datetime
import json
from dataclasses import replace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.orm import Session

from edgewise.cloud.broker import all_device_permissions
from edgewise.cloud.db import utcnow
from edgewise.cloud.errors import (
    AlreadyExistsError,
    CloudConflictError,
    InvalidRequestError,
    LimitExceededError,
    NotFoundError,
)
from edgewise.cloud.identity import CertificateAuthority, CertificateStatus
from edgewise.cloud.identity import service as identity
from edgewise.cloud.provisioning import registration, service
from edgewise.cloud.provisioning.models import OwnershipToken
from edgewise.cloud.registry import service as registry
from tests.support.pki import signing_request

DEVICE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}],
    }
)


def fleet_template(**thing: Any) -> dict[str, Any]:
    """A template naming the thing ``sensor-<SerialNumber>``, in group fleet, with policy device."""
    properties: dict[str, Any] = {
        "ThingName": {"Fn::Join": ["-", ["sensor", {"Ref": "SerialNumber"}]]},
        "AttributePayload": {"site": {"Ref": "Site"}},
        "ThingGroups": ["fleet"],
    }
    properties.update(thing)
    return {
        "Parameters": {
            "SerialNumber": {"Type": "String"},
            "Site": {"Type": "String", "Default": "berlin"},
        },
        "Resources": {
            "thing": {"Type": "AWS::IoT::Thing", "Properties": properties},
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "Active"},
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "device"}},
        },
        "DeviceConfiguration": {"serial": {"Ref": "SerialNumber"}},
    }


@pytest.fixture(scope="module")
def authority() -> CertificateAuthority:
    return CertificateAuthority.create("Test CA")


@pytest.fixture
def fleet(session: Session) -> Session:
    """A store with policy ``device``, group ``fleet`` and template ``fleet``."""
    identity.create_policy(session, "device", DEVICE_POLICY)
    registry.create_group(session, "fleet")
    service.create_template(session, "fleet", fleet_template())
    return session


def test_register_thing_creates_thing_and_activates_certificate(
    fleet: Session, authority: CertificateAuthority
) -> None:
    claimed = service.create_claimed_certificate(fleet, authority)
    assert claimed.certificate.status is CertificateStatus.INACTIVE
    assert claimed.private_key_pem is not None

    registered = registration.register_thing(
        fleet, "fleet", claimed.ownership_token, {"SerialNumber": "0042"}
    )

    assert registered.thing_name == "sensor-0042"
    assert registered.device_configuration == {"serial": "0042"}
    certificate = identity.get_certificate(fleet, claimed.certificate.certificate_id)
    assert certificate.status is CertificateStatus.ACTIVE
    assert registry.get_thing(fleet, "sensor-0042").attributes == {"site": "berlin"}
    assert [c.certificate_id for c in identity.list_thing_principals(fleet, "sensor-0042")] == [
        certificate.certificate_id
    ]
    assert [found.group.name for found in registry.list_thing_groups(fleet, "sensor-0042")] == ["fleet"]
    assert identity.list_policy_targets(fleet, "device").certificate_ids == [certificate.certificate_id]


def test_certificate_from_csr_has_no_private_key(fleet: Session, authority: CertificateAuthority) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    claimed = service.create_claimed_certificate(fleet, authority, csr_pem=signing_request("device", key))
    assert claimed.private_key_pem is None
    issued = x509.load_pem_x509_certificate(claimed.certificate.pem.encode())
    assert issued.public_key() == key.public_key()


def test_ownership_token_is_single_use(fleet: Session, authority: CertificateAuthority) -> None:
    claimed = service.create_claimed_certificate(fleet, authority)
    registration.register_thing(fleet, "fleet", claimed.ownership_token, {"SerialNumber": "1"})
    with pytest.raises(InvalidRequestError, match="certificateOwnershipToken"):
        registration.register_thing(fleet, "fleet", claimed.ownership_token, {"SerialNumber": "2"})


def test_expired_ownership_token_is_refused(fleet: Session, authority: CertificateAuthority) -> None:
    issued_at = utcnow() - service.OWNERSHIP_TOKEN_LIFETIME - datetime.timedelta(seconds=1)
    claimed = service.create_claimed_certificate(fleet, authority, now=issued_at)
    with pytest.raises(InvalidRequestError, match="expired"):
        registration.register_thing(fleet, "fleet", claimed.ownership_token, {"SerialNumber": "1"})
    assert (
        identity.get_certificate(fleet, claimed.certificate.certificate_id).status
        is CertificateStatus.INACTIVE
    )


def test_empty_token_gets_the_aws_message(fleet: Session) -> None:
    with pytest.raises(InvalidRequestError, match="Certificate ownership token cannot be empty"):
        registration.register_thing(fleet, "fleet", "", {})


@pytest.mark.parametrize(
    ("parameters", "field"),
    [({}, "parameters.SerialNumber"), ({"SerialNumber": "1", "Color": "red"}, "parameters.Color")],
)
def test_missing_or_unknown_parameter_is_refused_naming_it(
    fleet: Session, authority: CertificateAuthority, parameters: dict[str, str], field: str
) -> None:
    claimed = service.create_claimed_certificate(fleet, authority)
    with pytest.raises(InvalidRequestError, match=field):
        registration.register_thing(fleet, "fleet", claimed.ownership_token, parameters)
    assert registry.list_things(fleet).total == 0


def test_parameter_making_an_invalid_thing_name_is_refused(
    fleet: Session, authority: CertificateAuthority
) -> None:
    claimed = service.create_claimed_certificate(fleet, authority)
    with pytest.raises(InvalidRequestError, match="ThingName"):
        registration.register_thing(fleet, "fleet", claimed.ownership_token, {"SerialNumber": "a/b"})


def test_existing_thing_is_reused_with_merged_attributes(
    fleet: Session, authority: CertificateAuthority
) -> None:
    registry.create_thing(fleet, "sensor-7", attributes={"owner": "ops"})
    claimed = service.create_claimed_certificate(fleet, authority)
    registration.register_thing(
        fleet, "fleet", claimed.ownership_token, {"SerialNumber": "7", "Site": "paris"}
    )
    assert registry.get_thing(fleet, "sensor-7").attributes == {"owner": "ops", "site": "paris"}


def test_disabled_or_unknown_template_is_refused(fleet: Session, authority: CertificateAuthority) -> None:
    claimed = service.create_claimed_certificate(fleet, authority)
    with pytest.raises(NotFoundError):
        registration.register_thing(fleet, "nope", claimed.ownership_token, {"SerialNumber": "1"})
    service.update_template(fleet, "fleet", enabled=False)
    with pytest.raises(CloudConflictError, match="disabled"):
        registration.register_thing(fleet, "fleet", claimed.ownership_token, {"SerialNumber": "1"})


def test_template_names_are_unique(fleet: Session) -> None:
    with pytest.raises(AlreadyExistsError):
        service.create_template(fleet, "fleet", fleet_template())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"Resources": {}}, "templateBody.Resources"),
        (
            fleet_template(ThingName={"Ref": "Nope"}),
            "templateBody.Resources.thing.Properties.ThingName",
        ),
        (
            fleet_template(Shape="round"),
            "templateBody.Resources.thing.Properties",
        ),
        ({**fleet_template(), "Outputs": {}}, "templateBody"),
        ({**fleet_template(), "Parameters": {"SerialNumber": {"Type": "Number"}}}, "Parameters.SerialNumber"),
    ],
)
def test_bad_template_is_refused_naming_the_path(fleet: Session, body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequestError, match=field.replace(".", r"\.")):
        service.create_template(fleet, "other", body)


def test_template_naming_a_missing_policy_is_refused(session: Session) -> None:
    with pytest.raises(InvalidRequestError, match="policy 'device' does not exist"):
        service.create_template(session, "fleet", fleet_template())


def test_certificate_resource_must_reference_the_claimed_certificate(fleet: Session) -> None:
    body = fleet_template()
    body["Resources"]["certificate"]["Properties"]["CertificateId"] = "abc"
    with pytest.raises(InvalidRequestError, match="CertificateId"):
        service.create_template(fleet, "other", body)


CLAIM_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"},
            {
                "Effect": "Allow",
                "Action": ["iot:Publish", "iot:Receive"],
                "Resource": ["arn:aws:iot:*:*:topic/$aws/certificates/create/*"],
            },
        ],
    }
)


def test_claim_and_provisioned_certificates_get_acl_entries_by_their_cn(
    fleet: Session, authority: CertificateAuthority
) -> None:
    identity.create_policy(fleet, "claim", CLAIM_POLICY)
    claim = service.create_claim_certificate(fleet, authority, ["claim"]).certificate
    claimed = service.create_claimed_certificate(fleet, authority)
    assert claim.common_name.startswith("claim-")
    by_name = {entry.thing_name: entry for entry in all_device_permissions(fleet).devices}
    assert set(by_name) == {claim.common_name}, "an INACTIVE certificate must get no entry"
    assert by_name[claim.common_name].publish == ("$aws/certificates/create/#",)

    registration.register_thing(fleet, "fleet", claimed.ownership_token, {"SerialNumber": "5"})

    by_name = {entry.thing_name: entry for entry in all_device_permissions(fleet).devices}
    assert set(by_name) == {claim.common_name, "sensor-5", claimed.certificate.common_name}
    assert replace(by_name["sensor-5"], thing_name="x") == replace(
        by_name[claimed.certificate.common_name], thing_name="x"
    )


# One transaction


def _nothing_registered_for(session: Session, claimed: service.ClaimedCertificate) -> None:
    """Nothing of the registration is in the store, as another connection sees it, and the token is there."""
    with Session(session.get_bind()) as other:
        certificate_id = claimed.certificate.certificate_id
        assert registry.list_things(other).total == 0
        assert registry.list_group_things(other, "fleet") == []
        assert identity.list_certificate_things(other, certificate_id) == []
        assert identity.list_policy_targets(other, "device").certificate_ids == []
        assert other.get(OwnershipToken, service.token_hash(claimed.ownership_token)) is not None


def test_a_missing_group_leaves_nothing_behind_and_the_token_redeemable(
    fleet: Session, authority: CertificateAuthority
) -> None:
    body = fleet_template(ThingGroups=["fleet", "late"])
    service.update_template(fleet, "fleet", body=body)
    claimed = service.create_claimed_certificate(fleet, authority)

    with pytest.raises(NotFoundError, match="late"):
        registration.register_thing(fleet, "fleet", claimed.ownership_token, {"SerialNumber": "1"})

    _nothing_registered_for(fleet, claimed)
    assert (
        identity.get_certificate(fleet, claimed.certificate.certificate_id).status
        is CertificateStatus.INACTIVE
    )
    registry.create_group(fleet, "late")
    registered = registration.register_thing(fleet, "fleet", claimed.ownership_token, {"SerialNumber": "1"})
    assert [group.group.name for group in registry.list_thing_groups(fleet, registered.thing_name)] == [
        "fleet",
        "late",
    ]


def test_a_policy_limit_at_the_last_step_leaves_nothing_behind(
    fleet: Session, authority: CertificateAuthority
) -> None:
    body = fleet_template()
    for index in range(identity.MAX_POLICIES_PER_TARGET):
        identity.create_policy(fleet, f"extra-{index}", DEVICE_POLICY)
        body["Resources"][f"extra{index}"] = {
            "Type": "AWS::IoT::Policy",
            "Properties": {"PolicyName": f"extra-{index}"},
        }
    service.update_template(fleet, "fleet", body=body)
    claimed = service.create_claimed_certificate(fleet, authority)

    with pytest.raises(LimitExceededError):
        registration.register_thing(fleet, "fleet", claimed.ownership_token, {"SerialNumber": "1"})

    _nothing_registered_for(fleet, claimed)
    assert identity.list_policy_targets(fleet, "extra-0").certificate_ids == []


def test_a_certificate_revoked_meanwhile_leaves_nothing_behind(
    fleet: Session, authority: CertificateAuthority
) -> None:
    claimed = service.create_claimed_certificate(fleet, authority)
    identity.update_certificate_status(fleet, claimed.certificate.certificate_id, CertificateStatus.REVOKED)

    with pytest.raises(CloudConflictError, match="REVOKED"):
        registration.register_thing(fleet, "fleet", claimed.ownership_token, {"SerialNumber": "1"})

    _nothing_registered_for(fleet, claimed)


# Cleanup of ownership tokens


def test_cleanup_revokes_unredeemed_certificates_and_deletes_expired_tokens(
    fleet: Session, authority: CertificateAuthority
) -> None:
    start = utcnow()
    unredeemed = service.create_claimed_certificate(fleet, authority, now=start)
    redeemed = service.create_claimed_certificate(fleet, authority, now=start)
    registration.register_thing(fleet, "fleet", redeemed.ownership_token, {"SerialNumber": "1"})
    activated = service.create_claimed_certificate(fleet, authority, now=start)
    identity.update_certificate_status(fleet, activated.certificate.certificate_id, CertificateStatus.ACTIVE)
    with_policy = service.create_claimed_certificate(fleet, authority, now=start)
    identity.attach_policy_to_certificate(fleet, "device", with_policy.certificate.certificate_id)
    fresh = service.create_claimed_certificate(fleet, authority, now=start + datetime.timedelta(minutes=4))
    later = start + service.OWNERSHIP_TOKEN_LIFETIME + datetime.timedelta(minutes=1)

    cleanup = service.clean_up_ownership_tokens(fleet, now=later)

    assert cleanup == service.Cleanup(3, [unredeemed.certificate.certificate_id])
    status = {
        claimed.certificate.certificate_id: identity.get_certificate(
            fleet, claimed.certificate.certificate_id
        ).status
        for claimed in (unredeemed, redeemed, activated, with_policy, fresh)
    }
    assert list(status.values()) == [
        CertificateStatus.REVOKED,
        CertificateStatus.ACTIVE,
        CertificateStatus.ACTIVE,
        CertificateStatus.INACTIVE,
        CertificateStatus.INACTIVE,
    ]
    assert int(unredeemed.certificate.serial_hex, 16) in identity.revoked_serials(fleet)
    assert service.clean_up_ownership_tokens(fleet, now=later) == service.Cleanup(0, [])
    registration.register_thing(fleet, "fleet", fresh.ownership_token, {"SerialNumber": "2"}, now=later)

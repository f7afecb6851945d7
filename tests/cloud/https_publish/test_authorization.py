"""Who may publish what over HTTPS, decided from the store as the broker's ACL is: the thing a certificate is
attached to, its certificates' and groups' policies, deny over allow, and the certificate's state read for every
request."""

from __future__ import annotations

import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edgewise.cloud.broker import DevicePermissions
from edgewise.cloud.https_publish import Publisher, PublishForbiddenError, authorize_publish, may_publish
from edgewise.cloud.identity import CertificateStatus
from edgewise.cloud.identity import service as identity
from edgewise.cloud.registry import service as registry
from tests.cloud.https_publish.conftest import Device, Store


def der(device: Device) -> bytes:
    certificate = x509.load_pem_x509_certificate(device.credentials.certificate.read_bytes())
    return certificate.public_bytes(serialization.Encoding.DER)


def decide(store: Store, device: Device, topic: str) -> Publisher:
    with store.sessions() as session:
        return authorize_publish(session, der(device), topic)


def refusal(store: Store, device: Device, topic: str) -> PublishForbiddenError:
    with pytest.raises(PublishForbiddenError) as refused:
        decide(store, device, topic)
    return refused.value


def policy(*statements: tuple[str, str]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": effect, "Action": ["iot:Connect", "iot:Publish"], "Resource": [resource]}
                for effect, resource in statements
            ],
        }
    )


def test_the_default_policy_allows_the_things_own_topics_only(store: Store) -> None:
    device = store.enroll("A")
    store.enroll("B")

    assert decide(store, device, "dt/A/x") == Publisher("A", device.certificate_id)
    assert decide(store, device, "$aws/things/A/shadow/update").thing_name == "A"
    for topic in ("dt/B/x", "$aws/things/B/shadow/update", "elsewhere"):
        assert "do not allow iot:Publish" in refusal(store, device, topic).detail
    assert not refusal(store, device, "dt/B/x").identity_lost


def test_a_group_policy_grants_and_a_deny_wins_over_any_allow(store: Store) -> None:
    device = store.enroll("A", policy=None)
    with store.sessions() as session:
        identity.create_policy(
            session,
            "Fleet",
            policy(
                ("Allow", "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"),
                ("Allow", "arn:aws:iot:*:*:topic/fleet/*"),
                ("Deny", "arn:aws:iot:*:*:topic/fleet/secret"),
            ),
        )
        registry.create_group(session, "Parent")
        registry.create_group(session, "Child", parent_name="Parent")
        registry.add_thing_to_group(session, "Child", "A")
        identity.attach_policy_to_group(session, "Fleet", "Parent")

    assert decide(store, device, "fleet/status/A").thing_name == "A"
    assert "do not allow" in refusal(store, device, "fleet/secret").detail


def test_a_certificate_that_is_not_active_deleted_or_attached_to_no_thing_loses_its_identity(
    store: Store,
) -> None:
    inactive = store.enroll("A")
    with store.sessions() as session:
        identity.update_certificate_status(session, inactive.certificate_id, CertificateStatus.INACTIVE)
    refused = refusal(store, inactive, "dt/A/x")
    assert refused.identity_lost
    assert "is INACTIVE, not ACTIVE" in refused.detail

    deleted = store.enroll("B")
    with store.sessions() as session:
        identity.update_certificate_status(session, deleted.certificate_id, CertificateStatus.REVOKED)
        identity.detach_thing_principal(session, "B", deleted.certificate_id)
        identity.detach_policy_from_certificate(
            session, "EdgewiseDefaultDevicePolicy", deleted.certificate_id
        )
        identity.delete_certificate(session, deleted.certificate_id)
    assert "is not registered" in refusal(store, deleted, "dt/B/x").detail

    detached = store.enroll("C")
    with store.sessions() as session:
        identity.detach_thing_principal(session, "C", detached.certificate_id)
    refused = refusal(store, detached, "dt/C/x")
    assert refused.identity_lost
    assert "attached to no thing" in refused.detail


def test_reserved_topics_other_than_the_things_own_are_refused_whatever_the_policy(store: Store) -> None:
    device = store.enroll("A", policy=None)
    with store.sessions() as session:
        identity.create_policy(session, "Everything", policy(("Allow", "*")))
        identity.attach_policy_to_certificate(session, "Everything", device.certificate_id)

    assert decide(store, device, "anything/at/all").thing_name == "A"
    assert decide(store, device, "$aws/things/A/jobs/get").thing_name == "A"
    # Another thing's topics are the policy's to grant, as over MQTT (a gateway updating its devices' shadows).
    assert decide(store, device, "$aws/things/B/shadow/update").thing_name == "A"
    for topic in ("$aws/rules/MyRule/x", "$aws/events/presence/x", "$SYS/broker/clients", "$share/g/t"):
        assert "is a reserved topic" in refusal(store, device, topic).detail


def test_a_thing_whose_policies_do_not_let_it_connect_may_not_publish(store: Store) -> None:
    device = store.enroll("A", policy=None)
    with store.sessions() as session:
        identity.create_policy(session, "PublishOnly", json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": "*"}]}
        ))  # fmt: skip
        identity.attach_policy_to_certificate(session, "PublishOnly", device.certificate_id)

    assert "may not connect" in refusal(store, device, "dt/A/x").detail


def test_a_deny_filter_wins_over_a_publish_filter_as_in_the_broker_acl() -> None:
    permissions = DevicePermissions("A", publish=("dt/#",), deny=("dt/A/secret",))

    assert may_publish(permissions, "dt/A/open")
    assert not may_publish(permissions, "dt/A/secret")
    assert not may_publish(permissions, "other")
    assert not may_publish(DevicePermissions("A", publish=("#",)), "$aws/things/A/x")

"""Whether the device presenting a certificate may publish on a topic over HTTPS: the broker's rules, per request.

The device is the thing its certificate is attached to, as on the MQTT gateway, and it may publish what the
broker's ACL lets it publish: :func:`edgewise.cloud.broker.device_permissions` works out its rights from the
policies of its ACTIVE certificates and of its groups, and a topic is allowed when one of its publish filters
matches it and none of its deny filters does (Mosquitto's order). Nothing is cached: each request reads the
store, so a certificate revoked, deactivated or deleted a moment ago is refused on a connection opened before.

The certificate must be ACTIVE and attached to exactly one thing; a claim certificate (attached to none) has
nothing to publish over HTTPS, since the provisioning topics answer over MQTT only. Reserved topics are refused
as AWS IoT Core refuses them: the only ``$`` topics a device publishes on are things' topics,
``$aws/things/<thing>/...`` (shadows, jobs, Edgewise's telemetry batches), and only where its policy allows
(a gateway may update other things' shadows, as over MQTT). Basic Ingest (``$aws/rules/...``), ``$SYS`` and
``$share`` are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.orm import Session

from edgewise.cloud.broker import DevicePermissions, device_permissions
from edgewise.cloud.https_publish.errors import PublishForbiddenError
from edgewise.cloud.identity import Certificate, ThingPrincipal, certificate_id
from edgewise.cloud.registry import Thing, is_reserved
from edgewise.errors import EdgewiseError
from edgewise.topics import filter_matches

_THING_TOPICS: Final = "$aws/things/"


@dataclass(frozen=True)
class Publisher:
    """Who publishes: the thing a certificate acts as, and the certificate's id."""

    thing_name: str
    certificate_id: str


def identify(session: Session, certificate_der: bytes) -> Publisher:
    """The thing that the certificate ``certificate_der`` (DER, as the TLS peer sent it) acts as. Blocks.

    Raises:
        PublishForbiddenError: the certificate is not in the store, not ACTIVE, carries a name reserved for
            the cloud's own clients, or is attached to no thing or to several (``identity_lost`` set).
    """
    try:
        fingerprint = certificate_id(x509.load_der_x509_certificate(certificate_der))
    except ValueError as exc:
        raise PublishForbiddenError(
            f"the client certificate does not parse: {exc}", identity_lost=True
        ) from None
    certificate = session.scalar(sa.select(Certificate).where(Certificate.certificate_id == fingerprint))
    if certificate is None:
        raise PublishForbiddenError(
            f"certificate {fingerprint} is not registered (deleted, or never issued here)", identity_lost=True
        )
    if not certificate.status.can_connect:
        raise PublishForbiddenError(
            f"certificate {fingerprint} is {certificate.status.value}, not ACTIVE", identity_lost=True
        )
    if is_reserved(certificate.common_name):
        raise PublishForbiddenError(
            f"certificate {fingerprint} names {certificate.common_name!r}, reserved for the cloud's own clients",
            identity_lost=True,
        )
    things = list(
        session.scalars(
            sa.select(Thing.name)
            .join(ThingPrincipal, ThingPrincipal.thing_id == Thing.id)
            .where(ThingPrincipal.certificate_id == certificate.id)
            .order_by(Thing.name)
            .limit(2)
        )
    )
    if len(things) != 1:
        attached = "no thing" if not things else "more than one thing"
        raise PublishForbiddenError(
            f"certificate {fingerprint} is attached to {attached}", identity_lost=True
        )
    return Publisher(thing_name=things[0], certificate_id=fingerprint)


def authorize_publish(session: Session, certificate_der: bytes, topic: str) -> Publisher:
    """The publisher that ``certificate_der`` identifies, once its policies allow ``iot:Publish`` on ``topic``
    as the broker would. Blocks.

    Raises:
        PublishForbiddenError: the certificate is refused (see :func:`identify`), the topic is reserved, or
            the policies do not allow the publish; the detail says which.
    """
    publisher = identify(session, certificate_der)
    thing = publisher.thing_name
    if topic.startswith("$") and not topic.startswith(_THING_TOPICS):
        raise PublishForbiddenError(f"{topic!r} is a reserved topic no device publishes on")
    try:
        permissions = device_permissions(session, thing)
    except EdgewiseError as exc:
        # The thing went between the two reads, or its policies no longer render: no rights, as for the ACL.
        raise PublishForbiddenError(f"thing {thing!r} has no permissions: {exc}") from None
    if permissions is None:
        raise PublishForbiddenError(f"thing {thing!r} may not connect, so it may not publish")
    if not may_publish(permissions, topic):
        raise PublishForbiddenError(f"the policies of thing {thing!r} do not allow iot:Publish on {topic!r}")
    return publisher


def may_publish(permissions: DevicePermissions, topic: str) -> bool:
    """Whether the broker's ACL for ``permissions`` lets the device publish on ``topic``: a deny filter
    matching it wins over any grant."""
    if any(filter_matches(denied, topic) for denied in permissions.deny):
        return False
    return any(filter_matches(granted, topic) for granted in permissions.publish)

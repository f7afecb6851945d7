"""What each device may do on the gateway, worked out from the identity store for the broker's ACL.

A thing's policies are those attached to its ACTIVE certificates plus those attached to every group it
belongs to (static groups, their ancestors, and matching dynamic groups). A thing without an ACTIVE
certificate, or whose policies do not let it connect with its own name as client id, gets no permissions.
Certificates made before their thing existed (provisioning by claim) carry a CN other than the thing name;
the broker knows such a device by that CN, so the ACL repeats the thing's permissions under it.

One bad row must not cost every other device its authorization: :func:`all_device_permissions` leaves out
(and reports as :class:`SkippedIdentity`) a name reserved for the cloud's own clients, a name two sources
claim (a thing and a claim certificate, say: neither gets it, so neither gains the other's rights), and a
thing or certificate whose permissions cannot be rendered.

A core device may also publish, subscribe to and receive ``$aws/things/<client>/shadow/#`` of each client device
associated with it (:func:`client_shadow_filters`), so that its bridge can carry its client devices' shadows.

It lives with the broker because it speaks the broker's terms (:class:`DevicePermissions`): identity
(certificates, policies) knows nothing of the gateway, and the broker reads it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edgewise.cloud.broker.acl import DevicePermissions
from edgewise.cloud.client_devices import ClientDeviceAssociation
from edgewise.cloud.identity import (
    Action,
    Certificate,
    CertificateStatus,
    Policy,
    PolicyCertificateAttachment,
    PolicyGroupAttachment,
    ThingPermissions,
    ThingPrincipal,
    parse_policy,
    render_for_thing,
)
from edgewise.cloud.registry import Thing, rules
from edgewise.cloud.registry import service as registry
from edgewise.errors import EdgewiseError
from edgewise.names import THING_NAME
from edgewise.protocol.shadow.document import shadow_filter
from edgewise.topics import has_wildcards

logger = logging.getLogger(__name__)


def device_permissions(session: Session, thing_name: str) -> DevicePermissions | None:
    """The broker permissions of thing ``thing_name``, or None when it may not connect at all.

    Raises:
        NotFoundError: there is no such thing.
    """
    thing = registry.get_thing(session, thing_name)
    active = _active_certificate_ids(session, thing)
    if not active:
        return None
    group_ids = [found.group.id for found in registry.list_thing_groups(session, thing_name)]
    documents = session.scalars(
        sa.select(Policy.document)
        .where(
            Policy.id.in_(
                sa.select(PolicyCertificateAttachment.policy_id).where(
                    PolicyCertificateAttachment.certificate_id.in_(active)
                )
            )
            | Policy.id.in_(
                sa.select(PolicyGroupAttachment.policy_id).where(
                    PolicyGroupAttachment.group_id.in_(group_ids)
                )
            )
        )
        .order_by(Policy.name)
    )
    rendered = render_for_thing(
        [parse_policy(document) for document in documents],
        thing.name,
        thing_attributes=thing.attributes,
        thing_type_name=thing.thing_type_name,
    )
    for note in rendered.narrowed:
        logger.info("policy-narrowed", extra={"thing": thing.name, "note": note})
    if not rendered.can_connect:
        return None
    permissions = to_device_permissions(rendered)
    shadows = client_shadow_filters(session, thing)
    if not shadows:
        return permissions
    return replace(
        permissions,
        publish=tuple(sorted({*permissions.publish, *shadows})),
        subscribe=tuple(sorted({*permissions.subscribe, *shadows})),
        receive=tuple(sorted({*permissions.receive, *shadows})),
    )


def client_shadow_filters(session: Session, core: Thing) -> tuple[str, ...]:
    """The shadow topics of the client devices associated with core device ``core``: what its bridge may use."""
    clients = session.scalars(
        sa.select(Thing.name)
        .join(ClientDeviceAssociation, ClientDeviceAssociation.client_thing_id == Thing.id)
        .where(ClientDeviceAssociation.core_thing_id == core.id)
        .order_by(Thing.name)
    )
    return tuple(shadow_filter(name) for name in clients)


@dataclass(frozen=True)
class SkippedIdentity:
    """A name the broker's ACL leaves out although the store would grant it something, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class GatewayPermissions:
    """What the broker's ACL holds: each device's permissions by the CN it connects with, and what was
    left out of it."""

    devices: list[DevicePermissions]
    skipped: list[SkippedIdentity]


@dataclass(frozen=True)
class _Grant:
    #: What the permissions come from, for a report: a thing or a certificate.
    source: str
    permissions: DevicePermissions


def all_device_permissions(session: Session) -> GatewayPermissions:
    """The permissions of every device that may connect, by the CN it connects with (what the ACL holds).

    A thing's permissions go to its name and to the CN of each of its ACTIVE certificates issued before the
    thing existed (provisioning by claim); an ACTIVE certificate attached to no thing gets what its own
    policies grant with its CN as client id and thing name (claim certificates). A name that is reserved,
    granted by more than one source, or whose source fails to render is skipped (see the module docstring).
    """
    names = session.scalars(
        sa.select(Thing.name)
        .where(
            Thing.id.in_(
                sa.select(ThingPrincipal.thing_id)
                .join(Certificate, Certificate.id == ThingPrincipal.certificate_id)
                .where(Certificate.status == CertificateStatus.ACTIVE)
            )
        )
        .order_by(Thing.name)
    )
    grants: list[_Grant] = []
    skipped: list[SkippedIdentity] = []
    for name in list(names):
        try:
            grants += _thing_grants(session, name)
        except EdgewiseError as exc:
            skipped.append(SkippedIdentity(name, f"thing {name!r} cannot be rendered: {exc}"))
    for certificate in _unattached_active_certificates(session):
        source = f"certificate {certificate.certificate_id} (attached to no thing)"
        try:
            grants += _certificate_grants(session, certificate, source)
        except EdgewiseError as exc:
            skipped.append(SkippedIdentity(certificate.common_name, f"{source} cannot be rendered: {exc}"))
    by_name: dict[str, list[_Grant]] = {}
    for grant in grants:
        by_name.setdefault(grant.permissions.thing_name, []).append(grant)
    devices: list[DevicePermissions] = []
    for name, claimants in by_name.items():
        if rules.is_reserved(name):
            reason = f"is reserved for the cloud's own clients; {claimants[0].source} may not use it"
            skipped.append(SkippedIdentity(name, reason))
        elif len(claimants) > 1:
            sources = " and ".join(grant.source for grant in claimants)
            skipped.append(SkippedIdentity(name, f"is claimed by {sources}; none of them gets it"))
        else:
            devices.append(claimants[0].permissions)
    return GatewayPermissions(devices, sorted(skipped, key=lambda entry: (entry.name, entry.reason)))


def _thing_grants(session: Session, name: str) -> list[_Grant]:
    permissions = device_permissions(session, name)
    if permissions is None:
        return []
    source = f"thing {name!r}"
    found = [_Grant(source, permissions)]
    thing = registry.get_thing(session, name)
    found += [
        _Grant(f"certificate {certificate_id} of {source}", replace(permissions, thing_name=common_name))
        for certificate_id, common_name in _active_common_names(session, thing)
        if common_name != name and THING_NAME.fullmatch(common_name)
    ]
    return found


def _active_common_names(session: Session, thing: Thing) -> list[tuple[str, str]]:
    rows = session.execute(
        sa.select(Certificate.certificate_id, Certificate.common_name)
        .join(ThingPrincipal, ThingPrincipal.certificate_id == Certificate.id)
        .where(ThingPrincipal.thing_id == thing.id, Certificate.status == CertificateStatus.ACTIVE)
        .order_by(Certificate.common_name, Certificate.certificate_id)
    )
    return [(certificate_id, common_name) for certificate_id, common_name in rows]


def _unattached_active_certificates(session: Session) -> list[Certificate]:
    certificates = session.scalars(
        sa.select(Certificate)
        .where(
            Certificate.status == CertificateStatus.ACTIVE,
            Certificate.id.not_in(sa.select(ThingPrincipal.certificate_id)),
        )
        .order_by(Certificate.common_name, Certificate.certificate_id)
    )
    return [certificate for certificate in certificates if THING_NAME.fullmatch(certificate.common_name)]


def _certificate_grants(session: Session, certificate: Certificate, source: str) -> list[_Grant]:
    documents = session.scalars(
        sa.select(Policy.document)
        .join(PolicyCertificateAttachment, PolicyCertificateAttachment.policy_id == Policy.id)
        .where(PolicyCertificateAttachment.certificate_id == certificate.id)
        .order_by(Policy.name)
    )
    rendered = render_for_thing([parse_policy(document) for document in documents], certificate.common_name)
    return [_Grant(source, to_device_permissions(rendered))] if rendered.can_connect else []


def to_device_permissions(rendered: ThingPermissions) -> DevicePermissions:
    """``rendered`` as the broker's filters.

    A literal subscribe Allow with a wildcard grants only that exact filter, which topic patterns cannot say,
    so it is left out; every Deny becomes a deny filter (the broker applies it to publish and delivery alike,
    stricter than the policy but never looser).
    """
    by_action: dict[Action, set[str]] = {
        Action.PUBLISH: set(),
        Action.SUBSCRIBE: set(),
        Action.RECEIVE: set(),
    }
    for rule in rendered.allow:
        if rule.action in by_action and not (rule.literal and has_wildcards(rule.topic_filter)):
            by_action[rule.action].add(rule.topic_filter)
    return DevicePermissions(
        thing_name=rendered.thing_name,
        publish=tuple(sorted(by_action[Action.PUBLISH])),
        subscribe=tuple(sorted(by_action[Action.SUBSCRIBE])),
        receive=tuple(sorted(by_action[Action.RECEIVE])),
        deny=tuple(sorted({rule.topic_filter for rule in rendered.deny})),
    )


def _active_certificate_ids(session: Session, thing: Thing) -> list[int]:
    return list(
        session.scalars(
            sa.select(Certificate.id)
            .join(ThingPrincipal, ThingPrincipal.certificate_id == Certificate.id)
            .where(ThingPrincipal.thing_id == thing.id, Certificate.status == CertificateStatus.ACTIVE)
        )
    )

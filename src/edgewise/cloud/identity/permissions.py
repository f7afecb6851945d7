"""What each device may do on the gateway, worked out from the store for the broker's authorization.

A thing's policies are those attached to its ACTIVE certificates plus those attached to every group it
belongs to (static groups, their ancestors, and matching dynamic groups). A thing without an ACTIVE
certificate, or whose policies do not let it connect with its own name as client id, gets no permissions.
Certificates made before their thing existed (provisioning by claim) carry a CN other than the thing name;
the broker knows such a device by that CN, so the ACL repeats the thing's permissions under it.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edgewise.cloud.broker.acl import THING_NAME, DevicePermissions
from edgewise.cloud.identity.certificates import CertificateStatus
from edgewise.cloud.identity.models import (
    Certificate,
    Policy,
    PolicyCertificateAttachment,
    PolicyGroupAttachment,
    ThingPrincipal,
)
from edgewise.cloud.identity.policy import Action, ThingPermissions, parse_policy, render_for_thing
from edgewise.cloud.registry import service as registry
from edgewise.cloud.registry.models import Thing
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
    return to_device_permissions(rendered)


def all_device_permissions(session: Session) -> list[DevicePermissions]:
    """The permissions of every device that may connect, by the CN it connects with (what the ACL holds).

    A thing's permissions go to its name and to the CN of each of its ACTIVE certificates issued before the
    thing existed (provisioning by claim); an ACTIVE certificate attached to no thing gets what its own
    policies grant with its CN as client id and thing name (claim certificates).
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
    found: list[DevicePermissions] = []
    for name in list(names):
        permissions = device_permissions(session, name)
        if permissions is None:
            continue
        found.append(permissions)
        thing = registry.get_thing(session, name)
        found += [
            replace(permissions, thing_name=common_name)
            for common_name in _active_common_names(session, thing)
            if common_name != name and THING_NAME.fullmatch(common_name)
        ]
    found += _unattached_certificate_permissions(session)
    return found


def _active_common_names(session: Session, thing: Thing) -> list[str]:
    return list(
        session.scalars(
            sa.select(Certificate.common_name)
            .join(ThingPrincipal, ThingPrincipal.certificate_id == Certificate.id)
            .where(ThingPrincipal.thing_id == thing.id, Certificate.status == CertificateStatus.ACTIVE)
            .order_by(Certificate.common_name)
        )
    )


def _unattached_certificate_permissions(session: Session) -> list[DevicePermissions]:
    certificates = session.scalars(
        sa.select(Certificate)
        .where(
            Certificate.status == CertificateStatus.ACTIVE,
            Certificate.id.not_in(sa.select(ThingPrincipal.certificate_id)),
        )
        .order_by(Certificate.common_name)
    )
    found: list[DevicePermissions] = []
    for certificate in list(certificates):
        if not THING_NAME.fullmatch(certificate.common_name):
            continue
        documents = session.scalars(
            sa.select(Policy.document)
            .join(PolicyCertificateAttachment, PolicyCertificateAttachment.policy_id == Policy.id)
            .where(PolicyCertificateAttachment.certificate_id == certificate.id)
            .order_by(Policy.name)
        )
        rendered = render_for_thing(
            [parse_policy(document) for document in documents], certificate.common_name
        )
        if rendered.can_connect:
            found.append(to_device_permissions(rendered))
    return found


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

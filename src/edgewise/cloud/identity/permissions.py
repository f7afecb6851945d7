"""What each device may do on the gateway, worked out from the store for the broker's authorization.

A thing's policies are those attached to its ACTIVE certificates plus those attached to every group it
belongs to (static groups, their ancestors, and matching dynamic groups). A thing without an ACTIVE
certificate, or whose policies do not let it connect with its own name as client id, gets no permissions.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edgewise.cloud.broker.acl import DevicePermissions
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
    """The permissions of every thing that may connect, by thing name (what the ACL file holds)."""
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
    found = [device_permissions(session, name) for name in list(names)]
    return [permissions for permissions in found if permissions is not None]


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

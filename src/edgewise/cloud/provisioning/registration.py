"""RegisterThing: a device redeems its certificate's ownership token with a provisioning template.

The template's pre-provisioning hook, if any, is asked first; then the template is evaluated for the
device (:func:`.plan.plan_provisioning`), and the plan is written in one database transaction: the
ownership token is consumed first, then the thing, its groups, the policies and the certificate are
written, and any failure rolls all of it back, so nothing is left behind and the token stays redeemable.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edgewise.cloud.db import utcnow
from edgewise.cloud.errors import CloudConflictError, InvalidRequestError, NotFoundError
from edgewise.cloud.identity import Certificate, ThingPrincipal
from edgewise.cloud.identity import service as identity
from edgewise.cloud.provisioning.hook import HOOK_TIMEOUT, TEMPLATE_ARN_PREFIX, ask_hook
from edgewise.cloud.provisioning.models import OwnershipToken
from edgewise.cloud.provisioning.plan import (
    PolicyPlan,
    ProvisioningPlan,
    certificate_parameters,
    check_parameters,
    plan_provisioning,
)
from edgewise.cloud.provisioning.service import (
    TEMPLATE,
    get_template,
    template_body,
    template_hook,
    token_hash,
)
from edgewise.cloud.provisioning.template import Override, parse_template
from edgewise.cloud.registry import Thing
from edgewise.cloud.registry import service as registry
from edgewise.protocol.provisioning import OWNERSHIP_TOKEN_FIELD

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegisteredThing:
    """The outcome of RegisterThing, as its accepted reply says it, plus the certificate it activated."""

    thing_name: str
    certificate_id: str
    device_configuration: dict[str, str]


def template_arn(name: str) -> str:
    """The ARN a pre-provisioning hook is told for template ``name`` (AWS's shape, Edgewise's region)."""
    return TEMPLATE_ARN_PREFIX + name


def register_thing(
    session: Session,
    template_name: str,
    ownership_token: str,
    parameters: Mapping[str, Any],
    *,
    now: datetime.datetime | None = None,
    hook_timeout: float = HOOK_TIMEOUT,
) -> RegisteredThing:
    """Redeem ``ownership_token`` with template ``template_name``: create or update the thing, attach the
    certificate, policies and groups, and set the certificate's status, all in one transaction.

    The template's pre-provisioning hook, if any, is asked first (outside any transaction: it may take
    ``hook_timeout`` seconds). The session's transaction is ended, committed or rolled back.

    Raises:
        InvalidRequestError: the token is empty, unknown, used or expired, or a parameter is missing,
            unknown or not a string, or makes a value invalid (the field names the parameter or the path).
        PermissionDeniedError: the pre-provisioning hook refused, failed or was too slow.
        NotFoundError: there is no such template, or a group or policy it names is gone.
        CloudConflictError: the template is disabled, the thing exists and the template says FAIL, the
            certificate was revoked meanwhile, or a limit would be exceeded.
    """
    if not ownership_token:
        raise InvalidRequestError(OWNERSHIP_TOKEN_FIELD, "Certificate ownership token cannot be empty.")
    now = now or utcnow()
    template = get_template(session, template_name)
    if not template.enabled:
        raise CloudConflictError(f"{TEMPLATE} {template_name!r} is disabled")
    hashed = token_hash(ownership_token)
    token = session.get(OwnershipToken, hashed)
    if token is None or token.expires_at <= now:
        raise _token_refused()
    certificate = session.get(Certificate, token.certificate_id)
    assert certificate is not None  # the token row cascades with its certificate
    certificate_id, certificate_pem = certificate.certificate_id, certificate.pem
    body = parse_template(template_body(template), path="")
    hook = template_hook(template)
    values = check_parameters(parameters, body.parameters)
    if hook is not None:
        session.rollback()  # hold no transaction open while the hook thinks
        overrides = ask_hook(
            hook,
            {
                "claimCertificateId": None,
                "certificateId": certificate_id,
                "certificatePem": certificate_pem,
                "templateArn": template_arn(template_name),
                "clientId": None,
                "parameters": values,
            },
            timeout=hook_timeout,
        )
        values |= check_parameters(overrides, body.parameters, field="parameterOverrides")
    plan = plan_provisioning(body, values, certificate_parameters(certificate_id, certificate_pem))
    try:
        # Consuming the token is the transaction's first write: it claims the token against a concurrent
        # RegisterThing, and on SQLite it is what opens the transaction the savepoints below live in.
        consumed = session.execute(
            sa.delete(OwnershipToken)
            .where(OwnershipToken.token_hash == hashed, OwnershipToken.expires_at > now)
            .execution_options(synchronize_session=False)
        )
        if cast(sa.CursorResult[Any], consumed).rowcount != 1:
            raise _token_refused()
        with _savepoints(session) as unit:
            _apply_plan(unit, plan, certificate_id)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    # The writes went through another session: what this one holds of them (the certificate) is stale.
    session.expire_all()
    logger.info(
        "thing-registered thing=%s certificate_id=%s template=%s",
        plan.thing_name,
        certificate_id,
        template_name,
    )
    return RegisteredThing(plan.thing_name, certificate_id, plan.device_configuration)


def _token_refused() -> InvalidRequestError:
    return InvalidRequestError(
        OWNERSHIP_TOKEN_FIELD, "is unknown, already used or expired; create a new certificate"
    )


@contextlib.contextmanager
def _savepoints(session: Session) -> Iterator[Session]:
    """A session on ``session``'s connection whose commits only release savepoints, so the registry and
    identity functions (which commit each change) all land in ``session``'s one transaction."""
    with Session(
        bind=session.connection(), join_transaction_mode="create_savepoint", expire_on_commit=False
    ) as unit:
        yield unit


def _apply_plan(session: Session, plan: ProvisioningPlan, certificate_id: str) -> None:
    policies = [_policy(session, policy) for policy in plan.policies]
    try:
        registry.get_thing(session, plan.thing_name)
    except NotFoundError:
        thing = registry.create_thing(
            session, plan.thing_name, thing_type_name=plan.thing_type_name, attributes=plan.attributes
        )
        for group in plan.groups or []:
            registry.add_thing_to_group(session, group, plan.thing_name)
    else:
        thing = _update_thing(session, plan)
    certificate = identity.get_certificate(session, certificate_id)
    # Not identity.attach_thing_principal: a claimed certificate's CN was fixed before the thing was named.
    attached = session.scalar(
        sa.select(ThingPrincipal.thing_id).where(
            ThingPrincipal.thing_id == thing.id, ThingPrincipal.certificate_id == certificate.id
        )
    )
    if attached is None:
        session.add(ThingPrincipal(thing_id=thing.id, certificate_id=certificate.id))
        session.commit()
    for policy in policies:
        identity.attach_policy_to_certificate(session, policy, certificate_id)
    identity.update_certificate_status(session, certificate_id, plan.certificate_status)


def _update_thing(session: Session, plan: ProvisioningPlan) -> Thing:
    """Apply the template's OverrideSettings to the existing thing ``plan.thing_name``."""
    given = {
        "AttributePayload": plan.attributes is not None,
        "ThingTypeName": plan.thing_type_name is not None,
        "ThingGroups": plan.groups is not None,
    }
    failing = [name for name, override in plan.overrides.items() if override is Override.FAIL and given[name]]
    if failing:
        raise CloudConflictError(
            f"Thing {plan.thing_name!r} exists and the template's OverrideSettings say FAIL for"
            f" {', '.join(failing)}"
        )
    attributes = plan.overrides["AttributePayload"]
    if plan.attributes is not None and attributes in (Override.REPLACE, Override.MERGE):
        registry.update_thing(
            session, plan.thing_name, attributes=plan.attributes, merge=attributes is Override.MERGE
        )
    if plan.thing_type_name is not None and plan.overrides["ThingTypeName"] is Override.REPLACE:
        registry.update_thing(session, plan.thing_name, thing_type_name=plan.thing_type_name)
    groups = plan.overrides["ThingGroups"]
    if plan.groups is not None and groups in (Override.REPLACE, Override.MERGE):
        if groups is Override.REPLACE:
            for member in registry.list_thing_groups(session, plan.thing_name):
                if member.direct and not member.group.dynamic and member.group.name not in plan.groups:
                    registry.remove_thing_from_group(session, member.group.name, plan.thing_name)
        for group in plan.groups:
            registry.add_thing_to_group(session, group, plan.thing_name)
    return registry.get_thing(session, plan.thing_name)


def _policy(session: Session, policy: PolicyPlan) -> str:
    """The name of the policy ``policy`` stands for; one made from a document is created if new."""
    if policy.name is not None:
        identity.check_policy_name(f"{policy.path}.PolicyName", policy.name)
        identity.get_policy(session, policy.name)
        return policy.name
    assert policy.document is not None
    text = json.dumps(policy.document, sort_keys=True, separators=(",", ":"))
    identity.check_policy_document(f"{policy.path}.PolicyDocument", text)
    # AWS names a policy given by its document after a hash of it: the same document, the same policy.
    name = hashlib.sha256(text.encode()).hexdigest()
    try:
        existing = identity.get_policy(session, name)
    except NotFoundError:
        identity.create_policy(session, name, text)
    else:
        if json.loads(existing.document) != policy.document:
            raise CloudConflictError(f"Policy {name!r} exists with another document than the template's")
    return name

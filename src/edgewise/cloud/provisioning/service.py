"""Provisioning behaviour: templates, certificates created by claim with ownership tokens, and the cleanup of
ownership tokens nobody redeemed (RegisterThing itself is :mod:`.registration`).

Template bodies are checked by :mod:`.template`; this module stores them with their pre-provisioning hook.
Certificates created for a claiming device start INACTIVE (on the CRL, so they cannot connect) and carry an
ownership token; RegisterThing redeems the token once, before it expires. AWS deletes a certificate whose
token expired before it was activated or attached; :func:`clean_up_ownership_tokens` revokes such a
certificate instead, so an operator still sees it (listed on the CRL either way: a deleted certificate stays
there until it expires).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgewise.cloud.db import utcnow
from edgewise.cloud.errors import AlreadyExistsError, InvalidRequestError, NotFoundError
from edgewise.cloud.identity import (
    Certificate,
    CertificateAuthority,
    CertificateStatus,
    PolicyCertificateAttachment,
    ThingPrincipal,
)
from edgewise.cloud.identity import service as identity
from edgewise.cloud.provisioning.hook import PreProvisioningHook, check_hook
from edgewise.cloud.provisioning.intrinsics import Problem, is_literal
from edgewise.cloud.provisioning.models import OwnershipToken, ProvisioningTemplate
from edgewise.cloud.provisioning.template import (
    POLICY,
    TemplateBody,
    TemplateError,
    parse_template,
    policy_document,
)
from edgewise.cloud.registry import CLAIM_PREFIX, DEVICE_PREFIX, GENERATED_NAME_BYTES, Page
from edgewise.protocol.provisioning import TEMPLATE_NAME_MAX_LENGTH, TEMPLATE_NAME_PATTERN

logger = logging.getLogger(__name__)

TEMPLATE = "Provisioning template"
#: The protocol's template names, anchored for pydantic, whose ``pattern`` searches rather than matches.
TEMPLATE_NAME_FIELD_PATTERN = f"^{TEMPLATE_NAME_PATTERN}$"
DESCRIPTION_MAX_LENGTH = 500
#: How long a certificate ownership token can be redeemed with RegisterThing.
OWNERSHIP_TOKEN_LIFETIME = datetime.timedelta(minutes=5)
# One cleanup run handles at most this many expired tokens; the next run takes the rest.
_CLEANUP_BATCH = 500


@dataclass(frozen=True)
class ClaimedCertificate:
    """A certificate created for a claiming device, its private key (when generated) and ownership token."""

    certificate: Certificate
    private_key_pem: str | None
    ownership_token: str


@dataclass(frozen=True)
class Cleanup:
    """What a cleanup of expired ownership tokens did."""

    tokens_deleted: int
    #: Certificates whose token expired before anything activated or attached them.
    certificates_revoked: list[str]


# Templates


def check_template_name(field_name: str, name: str) -> None:
    """Raise unless ``name`` is 1-36 letters, digits, ``_`` or ``-`` (AWS's template names)."""
    if re.fullmatch(TEMPLATE_NAME_PATTERN, name) is None:
        raise InvalidRequestError(
            field_name, f"{name!r} must be 1-{TEMPLATE_NAME_MAX_LENGTH} letters, digits, '_' or '-'"
        )


def create_template(
    session: Session,
    name: str,
    body: Mapping[str, Any],
    *,
    description: str = "",
    enabled: bool = True,
    hook: PreProvisioningHook | None = None,
) -> ProvisioningTemplate:
    """Create provisioning template ``name``; the policies it names must exist.

    Raises:
        InvalidRequestError: a bad name or hook; :class:`~.template.TemplateError` names every problem of
            the body.
        AlreadyExistsError: there is a template of that name.
    """
    check_template_name("templateName", name)
    check_template(session, body)
    if hook is not None:
        check_hook("preProvisioningHook", hook)
    if (
        session.scalar(sa.select(ProvisioningTemplate.id).where(ProvisioningTemplate.name == name))
        is not None
    ):
        raise AlreadyExistsError(TEMPLATE, name)
    template = ProvisioningTemplate(
        name=name, description=description, body=json.dumps(body), enabled=enabled
    )
    _set_hook(template, hook)
    session.add(template)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise AlreadyExistsError(TEMPLATE, name) from exc
    logger.info("provisioning-template-created template=%s", name)
    return template


def check_template(session: Session, body: Any) -> TemplateBody:
    """``body`` checked whole, and the policies it names by a literal ``PolicyName`` found in the store.

    Raises:
        TemplateError: naming every problem by its path under ``templateBody``.
    """
    checked = parse_template(body, path="templateBody")
    problems: list[Problem] = []
    for resource in checked.resources:
        if resource.type != POLICY:
            continue
        where = f"templateBody.Resources.{resource.name}.Properties"
        name = resource.properties.get("PolicyName")
        document = resource.properties.get("PolicyDocument")
        try:
            if isinstance(name, str):
                identity.check_policy_name(f"{where}.PolicyName", name)
                identity.get_policy(session, name)
            elif document is not None and is_literal(document):
                text = json.dumps(policy_document(f"{where}.PolicyDocument", document))
                identity.check_policy_document(f"{where}.PolicyDocument", text)
        except InvalidRequestError as exc:
            problems.append(Problem(exc.field, exc.problem))
        except NotFoundError:
            problems.append(Problem(f"{where}.PolicyName", f"policy {name!r} does not exist"))
    if problems:
        raise TemplateError(problems)
    return checked


def get_template(session: Session, name: str) -> ProvisioningTemplate:
    """The provisioning template called ``name``."""
    template = session.scalar(sa.select(ProvisioningTemplate).where(ProvisioningTemplate.name == name))
    if template is None:
        raise NotFoundError(TEMPLATE, name)
    return template


def template_body(template: ProvisioningTemplate) -> dict[str, Any]:
    """The parsed body of ``template``."""
    body: dict[str, Any] = json.loads(template.body)
    return body


def template_hook(template: ProvisioningTemplate) -> PreProvisioningHook | None:
    """The pre-provisioning hook of ``template``, if it has one."""
    if template.hook_url is None:
        return None
    return PreProvisioningHook(template.hook_url, template.hook_payload_version or "")


def _set_hook(template: ProvisioningTemplate, hook: PreProvisioningHook | None) -> None:
    template.hook_url = hook.target_url if hook is not None else None
    template.hook_payload_version = hook.payload_version if hook is not None else None


def list_templates(session: Session, *, limit: int = 100, offset: int = 0) -> Page[ProvisioningTemplate]:
    """Provisioning templates by name."""
    total = session.scalar(sa.select(sa.func.count()).select_from(ProvisioningTemplate)) or 0
    items = session.scalars(
        sa.select(ProvisioningTemplate).order_by(ProvisioningTemplate.name).limit(limit).offset(offset)
    )
    return Page(list(items), total)


def update_template(
    session: Session,
    name: str,
    *,
    body: Mapping[str, Any] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    hook: PreProvisioningHook | None = None,
    remove_hook: bool = False,
) -> ProvisioningTemplate:
    """Change what is given of template ``name``'s body, description, enabled flag and hook."""
    if hook is not None and remove_hook:
        raise InvalidRequestError(
            "removePreProvisioningHook", "cannot be true while preProvisioningHook sets a hook"
        )
    template = get_template(session, name)
    if body is not None:
        check_template(session, body)
        template.body = json.dumps(body)
    if hook is not None:
        check_hook("preProvisioningHook", hook)
    if hook is not None or remove_hook:
        _set_hook(template, hook)
    if description is not None:
        template.description = description
    if enabled is not None:
        template.enabled = enabled
    template.updated_at = utcnow()
    session.commit()
    logger.info("provisioning-template-updated template=%s", name)
    return template


def delete_template(session: Session, name: str) -> None:
    """Delete provisioning template ``name``."""
    session.delete(get_template(session, name))
    session.commit()
    logger.info("provisioning-template-deleted template=%s", name)


# Claiming


def token_hash(token: str) -> str:
    """What is stored of an ownership token: its SHA-256, so a database reader cannot replay it."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_claim_certificate(
    session: Session,
    authority: CertificateAuthority,
    policy_names: list[str],
    *,
    valid_days: int = identity.DEFAULT_VALID_DAYS,
) -> identity.CreatedCertificate:
    """An ACTIVE claim certificate (CN ``claim-<hex>``, attached to no thing) with ``policy_names`` attached.

    Its policies are rendered with ``${iot:ClientId}`` and the thing name both equal to the CN.
    """
    for policy in policy_names:
        identity.get_policy(session, policy)
    certificate, private_key_pem = identity.issue_certificate(
        session,
        authority,
        CLAIM_PREFIX + secrets.token_hex(GENERATED_NAME_BYTES),
        CertificateStatus.ACTIVE,
        valid_days=valid_days,
    )
    session.commit()
    for policy in policy_names:
        identity.attach_policy_to_certificate(session, policy, certificate.certificate_id)
    logger.info("claim-certificate-created certificate_id=%s", certificate.certificate_id)
    return identity.CreatedCertificate(certificate, private_key_pem)


def create_claimed_certificate(
    session: Session,
    authority: CertificateAuthority,
    *,
    csr_pem: str | None = None,
    now: datetime.datetime | None = None,
) -> ClaimedCertificate:
    """Issue an INACTIVE device certificate (from ``csr_pem``, or with a new key) and its ownership token.

    Its CN is ``device-<hex>``: the thing is not known yet, and the gateway grants the thing's permissions
    to that CN once RegisterThing attaches it.
    """
    certificate, private_key_pem = identity.issue_certificate(
        session,
        authority,
        DEVICE_PREFIX + secrets.token_hex(GENERATED_NAME_BYTES),
        CertificateStatus.INACTIVE,
        csr_pem=csr_pem,
        fields={"csr": "certificateSigningRequest"},
    )
    token = secrets.token_urlsafe(32)
    expires_at = (now or utcnow()) + OWNERSHIP_TOKEN_LIFETIME
    session.add(
        OwnershipToken(token_hash=token_hash(token), certificate_id=certificate.id, expires_at=expires_at)
    )
    session.commit()
    logger.info("claimed-certificate-created certificate_id=%s", certificate.certificate_id)
    return ClaimedCertificate(certificate, private_key_pem, token)


# Cleanup


def clean_up_ownership_tokens(session: Session, *, now: datetime.datetime | None = None) -> Cleanup:
    """Delete expired ownership tokens, and revoke each one's certificate if it is still INACTIVE and
    attached to no thing and no policy (AWS deletes it; revoked, it stays visible to operators).

    Each token is deleted and its certificate revoked by statements that re-check the conditions, so a
    RegisterThing that redeems a token at the moment it expires either wins whole or loses whole.
    """
    now = now or utcnow()
    expired = session.execute(
        sa.select(OwnershipToken.token_hash, OwnershipToken.certificate_id)
        .where(OwnershipToken.expires_at <= now)
        .order_by(OwnershipToken.expires_at)
        .limit(_CLEANUP_BATCH)
    ).all()
    deleted = 0
    revoked: list[str] = []
    for hashed, certificate_pk in expired:
        gone = session.execute(
            sa.delete(OwnershipToken)
            .where(OwnershipToken.token_hash == hashed, OwnershipToken.expires_at <= now)
            .execution_options(synchronize_session=False)
        )
        if cast(sa.CursorResult[Any], gone).rowcount != 1:
            continue
        deleted += 1
        unused = session.execute(
            sa.update(Certificate)
            .where(
                Certificate.id == certificate_pk,
                Certificate.status == CertificateStatus.INACTIVE,
                ~sa.exists().where(ThingPrincipal.certificate_id == certificate_pk),
                ~sa.exists().where(PolicyCertificateAttachment.certificate_id == certificate_pk),
            )
            .values(status=CertificateStatus.REVOKED)
            .execution_options(synchronize_session=False)
        )
        if cast(sa.CursorResult[Any], unused).rowcount == 1:
            revoked.append(
                session.scalars(
                    sa.select(Certificate.certificate_id).where(Certificate.id == certificate_pk)
                ).one()
            )
    session.commit()
    # The statements bypassed the session's objects, which may still show the old statuses.
    session.expire_all()
    for certificate_id in revoked:
        logger.info("unclaimed-certificate-revoked certificate_id=%s", certificate_id)
    if deleted:
        logger.info("ownership-tokens-expired count=%d revoked=%d", deleted, len(revoked))
    return Cleanup(deleted, revoked)

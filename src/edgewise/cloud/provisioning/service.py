"""Provisioning behaviour: templates, certificates created by claim with ownership tokens, and RegisterThing.

A template body follows AWS IoT's fleet provisioning templates for the subset we support: ``Parameters``
(type ``String``, optional ``Default``), and ``Resources`` of type ``AWS::IoT::Thing`` (``ThingName``,
``AttributePayload``, ``ThingGroups``), ``AWS::IoT::Certificate`` (``CertificateId`` must be
``{"Ref": "AWS::IoT::Certificate::Id"}``, ``Status`` ACTIVE or INACTIVE) and ``AWS::IoT::Policy``
(``PolicyName`` of an existing policy). Values are strings, ``{"Ref": name}`` or ``{"Fn::Join": [delim,
[values]]}``. Everything else is refused when the template is saved, naming the path of the problem.

Certificates created for a claiming device start INACTIVE (it is on the CRL, so it cannot connect) and
carry an ownership token; RegisterThing redeems the token once, before it expires.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgewise.cloud.db import utcnow
from edgewise.cloud.errors import AlreadyExistsError, ConflictError, InvalidRequestError, NotFoundError
from edgewise.cloud.identity import service as identity
from edgewise.cloud.identity.ca import CertificateAuthority
from edgewise.cloud.identity.certificates import CertificateStatus
from edgewise.cloud.identity.models import Certificate, ThingPrincipal
from edgewise.cloud.provisioning.models import OwnershipToken, ProvisioningTemplate
from edgewise.cloud.registry import rules
from edgewise.cloud.registry import service as registry
from edgewise.cloud.registry.service import Page

logger = logging.getLogger(__name__)

TEMPLATE = "Provisioning template"
TEMPLATE_NAME_PATTERN = r"^[0-9A-Za-z_-]+$"
TEMPLATE_NAME_MAX_LENGTH = 36
DESCRIPTION_MAX_LENGTH = 500
#: How long a certificate ownership token can be redeemed with RegisterThing.
OWNERSHIP_TOKEN_LIFETIME = datetime.timedelta(minutes=5)
CERTIFICATE_ID_PARAMETER = "AWS::IoT::Certificate::Id"
#: CN prefixes of certificates made without a thing; both stay within the broker's user name characters.
CLAIM_PREFIX = "claim-"
DEVICE_PREFIX = "device-"
_THING = "AWS::IoT::Thing"
_CERTIFICATE = "AWS::IoT::Certificate"
_POLICY = "AWS::IoT::Policy"
_PROPERTIES = {
    _THING: frozenset({"ThingName", "AttributePayload", "ThingGroups"}),
    _CERTIFICATE: frozenset({"CertificateId", "Status"}),
    _POLICY: frozenset({"PolicyName"}),
}
_SETTABLE_STATUSES = {"ACTIVE": CertificateStatus.ACTIVE, "INACTIVE": CertificateStatus.INACTIVE}


@dataclass(frozen=True)
class ProvisioningPlan:
    """What a template resolves to for one device: the thing to create or reuse and what to attach."""

    thing_name: str
    attributes: dict[str, str] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    certificate_status: CertificateStatus = CertificateStatus.ACTIVE


@dataclass(frozen=True)
class ClaimedCertificate:
    """A certificate created for a claiming device, its private key (when generated) and ownership token."""

    certificate: Certificate
    private_key_pem: str | None
    ownership_token: str


@dataclass(frozen=True)
class RegisteredThing:
    """The outcome of RegisterThing, as its accepted reply says it, plus the certificate it activated."""

    thing_name: str
    certificate_id: str
    device_configuration: dict[str, str]


# Template bodies


def check_template_body(path: str, body: Mapping[str, Any]) -> None:
    """Raise naming the first problem in template ``body`` (``path`` is the field it came in)."""
    parameters = body.get("Parameters", {})
    if not isinstance(parameters, dict):
        raise InvalidRequestError(f"{path}.Parameters", "must be an object of parameter definitions")
    for name, definition in parameters.items():
        where = f"{path}.Parameters.{name}"
        if not isinstance(definition, dict) or definition.get("Type") != "String":
            raise InvalidRequestError(where, 'must be an object with "Type": "String"')
        unknown = sorted(set(definition) - {"Type", "Default", "Description"})
        if unknown:
            raise InvalidRequestError(where, f"has unsupported keys {unknown}")
        if "Default" in definition and not isinstance(definition["Default"], str):
            raise InvalidRequestError(f"{where}.Default", "must be a string")
    unknown_sections = sorted(set(body) - {"Parameters", "Resources", "DeviceConfiguration"})
    if unknown_sections:
        raise InvalidRequestError(path, f"has unsupported sections {unknown_sections}")
    resources = body.get("Resources")
    if not isinstance(resources, dict) or not resources:
        raise InvalidRequestError(f"{path}.Resources", "must be a non-empty object of resources")
    known = set(parameters) | {CERTIFICATE_ID_PARAMETER}
    types = [
        _check_resource(f"{path}.Resources.{name}", resource, known) for name, resource in resources.items()
    ]
    for required in (_THING, _CERTIFICATE):
        if types.count(required) != 1:
            raise InvalidRequestError(f"{path}.Resources", f"must have exactly one {required} resource")
    configuration = body.get("DeviceConfiguration", {})
    if not isinstance(configuration, dict):
        raise InvalidRequestError(f"{path}.DeviceConfiguration", "must be an object of strings")
    for key, value in configuration.items():
        _check_value(f"{path}.DeviceConfiguration.{key}", value, known)


def _check_resource(path: str, resource: Any, known: set[str]) -> str:
    if not isinstance(resource, dict) or not isinstance(resource.get("Properties"), dict):
        raise InvalidRequestError(path, 'must be an object with "Type" and "Properties"')
    kind = resource.get("Type")
    properties: dict[str, Any] = resource["Properties"]
    if not isinstance(kind, str) or kind not in _PROPERTIES:
        raise InvalidRequestError(f"{path}.Type", f"{kind!r} is not one of {', '.join(_PROPERTIES)}")
    allowed = _PROPERTIES[kind]
    unknown = sorted(set(properties) - allowed)
    if unknown:
        raise InvalidRequestError(f"{path}.Properties", f"has unsupported properties {unknown}")
    where = f"{path}.Properties"
    if kind == _THING:
        if "ThingName" not in properties:
            raise InvalidRequestError(f"{where}.ThingName", "is required")
        _check_value(f"{where}.ThingName", properties["ThingName"], known)
        attributes = properties.get("AttributePayload", {})
        if not isinstance(attributes, dict):
            raise InvalidRequestError(f"{where}.AttributePayload", "must be an object of attribute values")
        for name, value in attributes.items():
            _check_value(f"{where}.AttributePayload.{name}", value, known)
        groups = properties.get("ThingGroups", [])
        if not isinstance(groups, list):
            raise InvalidRequestError(f"{where}.ThingGroups", "must be a list of group names")
        for index, group in enumerate(groups):
            _check_value(f"{where}.ThingGroups[{index}]", group, known)
    elif kind == _CERTIFICATE:
        if properties.get("CertificateId") != {"Ref": CERTIFICATE_ID_PARAMETER}:
            raise InvalidRequestError(
                f"{where}.CertificateId", f'must be {{"Ref": "{CERTIFICATE_ID_PARAMETER}"}}'
            )
        status = properties.get("Status", "ACTIVE")
        if not isinstance(status, str) or status.upper() not in _SETTABLE_STATUSES:
            raise InvalidRequestError(f"{where}.Status", f"{status!r} is not ACTIVE or INACTIVE")
    else:
        if "PolicyName" not in properties:
            raise InvalidRequestError(f"{where}.PolicyName", "is required (of an existing policy)")
        _check_value(f"{where}.PolicyName", properties["PolicyName"], known)
    return kind


def _check_value(path: str, value: Any, known: set[str]) -> None:
    if isinstance(value, str):
        return
    if isinstance(value, dict) and set(value) == {"Ref"}:
        if value["Ref"] not in known:
            raise InvalidRequestError(path, f"refers to {value['Ref']!r}, which is not a declared parameter")
        return
    if isinstance(value, dict) and set(value) == {"Fn::Join"}:
        arguments = value["Fn::Join"]
        if (
            not isinstance(arguments, list)
            or len(arguments) != 2
            or not isinstance(arguments[0], str)
            or not isinstance(arguments[1], list)
        ):
            raise InvalidRequestError(path, 'Fn::Join takes ["delimiter", [values]]')
        for index, part in enumerate(arguments[1]):
            _check_value(f"{path}.Fn::Join[{index}]", part, known)
        return
    raise InvalidRequestError(path, 'must be a string, {"Ref": name} or {"Fn::Join": [delimiter, [values]]}')


def plan_provisioning(
    body: Mapping[str, Any], parameters: Mapping[str, str], certificate_id: str
) -> ProvisioningPlan:
    """Resolve a checked template ``body`` with a device's ``parameters`` for ``certificate_id``.

    Raises:
        InvalidRequestError: a parameter is missing, unknown or not a string, or a name comes out invalid.
    """
    declared: dict[str, Any] = body.get("Parameters", {})
    for name, value in parameters.items():
        if name not in declared:
            raise InvalidRequestError(f"parameters.{name}", "is not a parameter of the template")
        if not isinstance(value, str):
            raise InvalidRequestError(f"parameters.{name}", "must be a string")
    values = {name: definition["Default"] for name, definition in declared.items() if "Default" in definition}
    values.update(parameters)
    values[CERTIFICATE_ID_PARAMETER] = certificate_id
    thing_name = ""
    attributes: dict[str, str] = {}
    groups: list[str] = []
    policies: list[str] = []
    status = CertificateStatus.ACTIVE
    for resource in body["Resources"].values():
        properties = resource["Properties"]
        if resource["Type"] == _THING:
            thing_name = _resolve(properties["ThingName"], values)
            attributes = {
                key: _resolve(value, values) for key, value in properties.get("AttributePayload", {}).items()
            }
            groups = [_resolve(group, values) for group in properties.get("ThingGroups", [])]
        elif resource["Type"] == _CERTIFICATE:
            status = _SETTABLE_STATUSES[str(properties.get("Status", "ACTIVE")).upper()]
        else:
            policies.append(_resolve(properties["PolicyName"], values))
    rules.check_name("ThingName", thing_name)
    rules.check_attributes("AttributePayload", attributes)
    return ProvisioningPlan(thing_name, attributes, groups, policies, status)


def _resolve(value: Any, values: Mapping[str, str]) -> str:
    if isinstance(value, str):
        return value
    if "Ref" in value:
        name: str = value["Ref"]
        if name not in values:
            raise InvalidRequestError(f"parameters.{name}", "is required by the template")
        return values[name]
    delimiter, parts = value["Fn::Join"]
    return str(delimiter).join(_resolve(part, values) for part in parts)


def device_configuration(
    body: Mapping[str, Any], parameters: Mapping[str, str], certificate_id: str
) -> dict[str, str]:
    """The template's ``DeviceConfiguration`` resolved for a device (flat strings, as AWS returns it)."""
    values = {name: d["Default"] for name, d in body.get("Parameters", {}).items() if "Default" in d}
    values.update(parameters)
    values[CERTIFICATE_ID_PARAMETER] = certificate_id
    return {key: _resolve(value, values) for key, value in body.get("DeviceConfiguration", {}).items()}


# Templates


def check_template_name(field_name: str, name: str) -> None:
    """Raise unless ``name`` is 1-36 letters, digits, ``_`` or ``-`` (AWS's template names)."""
    if not 1 <= len(name) <= TEMPLATE_NAME_MAX_LENGTH or re.fullmatch(TEMPLATE_NAME_PATTERN, name) is None:
        raise InvalidRequestError(
            field_name, f"{name!r} must be 1-{TEMPLATE_NAME_MAX_LENGTH} letters, digits, '_' or '-'"
        )


def create_template(
    session: Session, name: str, body: Mapping[str, Any], *, description: str = "", enabled: bool = True
) -> ProvisioningTemplate:
    """Create provisioning template ``name``; its policies must exist."""
    check_template_name("templateName", name)
    _check_template(session, body)
    if (
        session.scalar(sa.select(ProvisioningTemplate.id).where(ProvisioningTemplate.name == name))
        is not None
    ):
        raise AlreadyExistsError(TEMPLATE, name)
    template = ProvisioningTemplate(
        name=name, description=description, body=json.dumps(body), enabled=enabled
    )
    session.add(template)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise AlreadyExistsError(TEMPLATE, name) from exc
    logger.info("provisioning-template-created template=%s", name)
    return template


def _check_template(session: Session, body: Mapping[str, Any]) -> None:
    check_template_body("templateBody", body)
    for name, resource in body["Resources"].items():
        policy = resource["Properties"].get("PolicyName") if resource["Type"] == _POLICY else None
        if isinstance(policy, str):
            try:
                identity.get_policy(session, policy)
            except NotFoundError as exc:
                raise InvalidRequestError(
                    f"templateBody.Resources.{name}.Properties.PolicyName",
                    f"policy {policy!r} does not exist",
                ) from exc


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
) -> ProvisioningTemplate:
    """Change what is given of template ``name``'s body, description and enabled flag."""
    template = get_template(session, name)
    if body is not None:
        _check_template(session, body)
        template.body = json.dumps(body)
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


def _hash(token: str) -> str:
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
        CLAIM_PREFIX + secrets.token_hex(12),
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
        DEVICE_PREFIX + secrets.token_hex(12),
        CertificateStatus.INACTIVE,
        csr_pem=csr_pem,
        fields={"csr": "certificateSigningRequest"},
    )
    token = secrets.token_urlsafe(32)
    expires_at = (now or utcnow()) + OWNERSHIP_TOKEN_LIFETIME
    session.add(OwnershipToken(token_hash=_hash(token), certificate_id=certificate.id, expires_at=expires_at))
    session.commit()
    logger.info("claimed-certificate-created certificate_id=%s", certificate.certificate_id)
    return ClaimedCertificate(certificate, private_key_pem, token)


def register_thing(
    session: Session,
    template_name: str,
    ownership_token: str,
    parameters: Mapping[str, str],
    *,
    now: datetime.datetime | None = None,
) -> RegisteredThing:
    """Redeem ``ownership_token`` with template ``template_name``: create or reuse the thing, attach the
    certificate, policies and groups, and set the certificate's status as the template says.

    Raises:
        InvalidRequestError: the token is empty, unknown, used or expired, or a parameter is wrong.
        NotFoundError: there is no such template, or a group or policy it names is gone.
        ConflictError: the template is disabled.
    """
    if not ownership_token:
        raise InvalidRequestError("certificateOwnershipToken", "Certificate ownership token cannot be empty.")
    template = get_template(session, template_name)
    if not template.enabled:
        raise ConflictError(f"{TEMPLATE} {template_name!r} is disabled")
    token = session.get(OwnershipToken, _hash(ownership_token))
    if token is None or token.expires_at <= (now or utcnow()):
        raise InvalidRequestError(
            "certificateOwnershipToken", "is unknown, already used or expired; create a new certificate"
        )
    certificate = session.get(Certificate, token.certificate_id)
    assert certificate is not None  # the token row cascades with its certificate
    body = template_body(template)
    plan = plan_provisioning(body, parameters, certificate.certificate_id)
    configuration = device_configuration(body, parameters, certificate.certificate_id)
    for group in plan.groups:
        registry.get_group(session, group)
    for policy in plan.policies:
        identity.get_policy(session, policy)
    try:
        thing = registry.get_thing(session, plan.thing_name)
        registry.update_thing(session, plan.thing_name, attributes=plan.attributes, merge=True)
    except NotFoundError:
        thing = registry.create_thing(session, plan.thing_name, attributes=plan.attributes)
    for group in plan.groups:
        registry.add_thing_to_group(session, group, plan.thing_name)
    for policy in plan.policies:
        identity.attach_policy_to_certificate(session, policy, certificate.certificate_id)
    # Not identity.attach_thing_principal: a claimed certificate's CN was fixed before the thing was named.
    session.add(ThingPrincipal(thing_id=thing.id, certificate_id=certificate.id))
    certificate.status = plan.certificate_status
    session.delete(token)
    session.commit()
    logger.info(
        "thing-registered thing=%s certificate_id=%s template=%s",
        plan.thing_name,
        certificate.certificate_id,
        template_name,
    )
    return RegisteredThing(plan.thing_name, certificate.certificate_id, configuration)

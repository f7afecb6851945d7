"""One device's provisioning plan: a checked template evaluated with the device's parameters and the
built-in parameters of its certificate. Nothing here touches the store; :mod:`.registration` writes plans.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from edgewise.cloud.errors import InvalidRequestError
from edgewise.cloud.identity import CertificateStatus
from edgewise.cloud.provisioning.intrinsics import NO_VALUE, Evaluator
from edgewise.cloud.provisioning.template import (
    BUILTIN_PARAMETERS,
    CERTIFICATE,
    CERTIFICATE_ID_PARAMETER,
    POLICY,
    SUBJECT_PARAMETERS,
    THING,
    THING_OVERRIDES,
    Override,
    TemplateBody,
    join_path,
    policy_document,
)
from edgewise.cloud.registry import rules


@dataclass(frozen=True)
class PolicyPlan:
    """A policy to attach: an existing one by ``name``, or one made from ``document`` (named by its hash)."""

    #: Where the policy's properties are in the template, to name in errors.
    path: str
    name: str | None = None
    document: dict[str, Any] | None = None


@dataclass(frozen=True)
class ProvisioningPlan:
    """What a template comes to for one device; ``None`` where the template leaves a thing property out."""

    thing_name: str
    attributes: dict[str, str] | None = None
    thing_type_name: str | None = None
    groups: list[str] | None = None
    overrides: Mapping[str, Override] = field(
        default_factory=lambda: {name: default for name, (_, default) in THING_OVERRIDES.items()}
    )
    certificate_status: CertificateStatus = CertificateStatus.ACTIVE
    policies: list[PolicyPlan] = field(default_factory=list)
    device_configuration: dict[str, str] = field(default_factory=dict)


def plan_provisioning(
    template: TemplateBody,
    parameters: Mapping[str, Any],
    builtins: Mapping[str, str],
) -> ProvisioningPlan:
    """What ``template`` gives the device with ``parameters`` and its certificate's ``builtins``
    (:func:`certificate_parameters`).

    Raises:
        InvalidRequestError: a parameter is missing, unknown or not a string, or a value comes out
            wrong (the field names the parameter, or the path in the template).
    """
    values = {name: default for name, default in template.parameters.items() if default is not None}
    values.update(check_parameters(parameters, template.parameters))
    values.update(builtins)
    evaluator = Evaluator(values, mappings=template.mappings, conditions=template.conditions)
    thing = template.resource(THING)
    where = join_path(template.path, f"Resources.{thing.name}.Properties")
    thing_name = evaluator.string(join_path(where, "ThingName"), thing.properties["ThingName"])
    rules.check_name(join_path(where, "ThingName"), thing_name)
    rules.check_unreserved(join_path(where, "ThingName"), thing_name)
    attributes = _optional(evaluator, where, thing.properties, "AttributePayload")
    if attributes is not None:
        if not isinstance(attributes, dict):
            raise InvalidRequestError(
                join_path(where, "AttributePayload"), "must come out an object of strings"
            )
        rules.check_attributes(join_path(where, "AttributePayload"), attributes)
    thing_type = _optional(evaluator, where, thing.properties, "ThingTypeName")
    if thing_type is not None:
        if not isinstance(thing_type, str):
            raise InvalidRequestError(join_path(where, "ThingTypeName"), "must come out a string")
        rules.check_name(join_path(where, "ThingTypeName"), thing_type)
    groups = _optional(evaluator, where, thing.properties, "ThingGroups")
    if groups is not None:
        if not isinstance(groups, list) or not all(isinstance(group, str) for group in groups):
            raise InvalidRequestError(join_path(where, "ThingGroups"), "must come out a list of group names")
        for index, group in enumerate(groups):
            rules.check_name(f"{join_path(where, 'ThingGroups')}[{index}]", group)
    overrides = {name: thing.overrides.get(name, default) for name, (_, default) in THING_OVERRIDES.items()}
    return ProvisioningPlan(
        thing_name=thing_name,
        attributes=attributes,
        thing_type_name=thing_type,
        groups=list(dict.fromkeys(groups)) if groups is not None else None,
        overrides=overrides,
        certificate_status=_certificate_status(template, evaluator),
        policies=_policies(template, evaluator),
        device_configuration=_device_configuration(template, evaluator),
    )


def _certificate_status(template: TemplateBody, evaluator: Evaluator) -> CertificateStatus:
    certificate = template.resource(CERTIFICATE)
    where = join_path(template.path, f"Resources.{certificate.name}.Properties")
    status = _optional(evaluator, where, certificate.properties, "Status")
    if status is None:
        return CertificateStatus.ACTIVE
    if not isinstance(status, str) or status.upper() not in ("ACTIVE", "INACTIVE"):
        raise InvalidRequestError(join_path(where, "Status"), f"{status!r} is not ACTIVE or INACTIVE")
    return CertificateStatus(status.upper())


def _policies(template: TemplateBody, evaluator: Evaluator) -> list[PolicyPlan]:
    policies: list[PolicyPlan] = []
    for resource in template.resources:
        if resource.type != POLICY or (resource.condition and not evaluator.decide(resource.condition)):
            continue
        where = join_path(template.path, f"Resources.{resource.name}.Properties")
        if "PolicyName" in resource.properties:
            policies.append(
                PolicyPlan(
                    where,
                    name=evaluator.string(join_path(where, "PolicyName"), resource.properties["PolicyName"]),
                )
            )
            continue
        document = evaluator.value(join_path(where, "PolicyDocument"), resource.properties["PolicyDocument"])
        policies.append(
            PolicyPlan(where, document=policy_document(join_path(where, "PolicyDocument"), document))
        )
    return policies


def _device_configuration(template: TemplateBody, evaluator: Evaluator) -> dict[str, str]:
    configuration: dict[str, str] = {}
    for key, value in template.device_configuration.items():
        result = evaluator.value(join_path(template.path, f"DeviceConfiguration.{key}"), value)
        if result is NO_VALUE:
            continue
        if not isinstance(result, str):
            raise InvalidRequestError(
                join_path(template.path, f"DeviceConfiguration.{key}"), "must come out a string"
            )
        configuration[key] = result
    return configuration


def _optional(evaluator: Evaluator, where: str, properties: Mapping[str, Any], name: str) -> Any:
    if name not in properties:
        return None
    value = evaluator.value(join_path(where, name), properties[name])
    return None if value is NO_VALUE else value


def check_parameters(
    parameters: Mapping[str, Any], declared: Mapping[str, str | None], *, field: str = "parameters"
) -> dict[str, str]:
    """``parameters`` as a device (or a pre-provisioning hook) gives them: declared, not built-in, strings."""
    checked: dict[str, str] = {}
    for name, value in parameters.items():
        where = f"{field}.{name}"
        if name in BUILTIN_PARAMETERS:
            raise InvalidRequestError(where, "is set from the device's certificate; a device cannot give it")
        if name not in declared:
            raise InvalidRequestError(where, "is not a parameter of the template")
        if not isinstance(value, str):
            raise InvalidRequestError(where, f"must be a string, not {type(value).__name__}")
        checked[name] = value
    return checked


def certificate_parameters(certificate_id: str, pem: str) -> dict[str, str]:
    """The built-in parameters a certificate gives: its id, and what its subject holds of the others."""
    subject = x509.load_pem_x509_certificate(pem.encode()).subject
    values = {CERTIFICATE_ID_PARAMETER: certificate_id}
    for name, oid in SUBJECT_PARAMETERS.items():
        attributes = subject.get_attributes_for_oid(oid)
        if attributes:
            value = attributes[0].value
            values[name] = value if isinstance(value, str) else value.decode("utf-8", "replace")
    return values

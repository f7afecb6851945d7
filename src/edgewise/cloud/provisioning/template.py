"""Fleet provisioning template bodies, as AWS IoT writes them, checked whole when a template is saved (and
again before :mod:`.plan` evaluates one for a registering device). Nothing here touches the store.

Sections: ``Parameters`` (type ``String``, optional ``Default``), ``Mappings`` (two levels of keys to strings
or lists of strings), ``Conditions``, ``Resources`` and ``DeviceConfiguration`` (a flat object of strings).
Resources: exactly one ``AWS::IoT::Thing`` (``ThingName``, ``AttributePayload``, ``ThingTypeName``,
``ThingGroups``, and ``OverrideSettings`` for the last three), exactly one ``AWS::IoT::Certificate``
(``CertificateId`` must be ``{"Ref": "AWS::IoT::Certificate::Id"}``, ``Status``) and any number of
``AWS::IoT::Policy`` (``PolicyName`` of an existing policy, or a ``PolicyDocument``), which alone may carry
a ``Condition``. The built-in parameters ``AWS::IoT::Certificate::*`` come from the device's certificate.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.x509.oid import NameOID

from edgewise.cloud.errors import InvalidRequestError
from edgewise.cloud.provisioning.intrinsics import (
    NO_VALUE_PARAMETER,
    Kind,
    Problem,
    ValueChecker,
    function_name,
)

THING: Final = "AWS::IoT::Thing"
CERTIFICATE: Final = "AWS::IoT::Certificate"
POLICY: Final = "AWS::IoT::Policy"
CERTIFICATE_ID_PARAMETER: Final = "AWS::IoT::Certificate::Id"
#: Built-in parameters taken from the subject of the device's certificate, as AWS IoT names them.
SUBJECT_PARAMETERS: Final = {
    "AWS::IoT::Certificate::CommonName": NameOID.COMMON_NAME,
    "AWS::IoT::Certificate::Country": NameOID.COUNTRY_NAME,
    "AWS::IoT::Certificate::Organization": NameOID.ORGANIZATION_NAME,
    "AWS::IoT::Certificate::OrganizationalUnit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "AWS::IoT::Certificate::DistinguishedNameQualifier": NameOID.DN_QUALIFIER,
    "AWS::IoT::Certificate::StateName": NameOID.STATE_OR_PROVINCE_NAME,
    "AWS::IoT::Certificate::SerialNumber": NameOID.SERIAL_NUMBER,
}
BUILTIN_PARAMETERS: Final = frozenset({CERTIFICATE_ID_PARAMETER, *SUBJECT_PARAMETERS})
SECTIONS: Final = ("Parameters", "Mappings", "Conditions", "Resources", "DeviceConfiguration")
_PROPERTIES: Final = {
    THING: ("ThingName", "AttributePayload", "ThingTypeName", "ThingGroups"),
    CERTIFICATE: ("CertificateId", "Status"),
    POLICY: ("PolicyName", "PolicyDocument"),
}
_UNSUPPORTED: Final = {
    "BillingGroup": "billing groups are not supported",
    "PackageVersions": "software package versions are not supported",
    "CertificateSigningRequest": 'in fleet provisioning the certificate is the device\'s: use "CertificateId"',
    "CertificatePem": 'in fleet provisioning the certificate is the device\'s: use "CertificateId"',
    "CACertificatePem": 'in fleet provisioning the certificate is the device\'s: use "CertificateId"',
}


class Override(enum.StrEnum):
    """What RegisterThing does with a property of a thing that exists already (AWS ``OverrideSettings``)."""

    #: Leave the thing's value as it is.
    DO_NOTHING = "DO_NOTHING"
    #: Set the template's value in place of the thing's.
    REPLACE = "REPLACE"
    #: Refuse the registration (409 ``ResourceConflict``).
    FAIL = "FAIL"
    #: Add the template's attributes or groups to the thing's.
    MERGE = "MERGE"


#: Per thing property: the overrides allowed, and the one applied when the template names none.
THING_OVERRIDES: Final = {
    "AttributePayload": (frozenset(Override), Override.MERGE),
    "ThingTypeName": (frozenset(Override) - {Override.MERGE}, Override.REPLACE),
    "ThingGroups": (frozenset(Override), Override.MERGE),
}
# The spellings of the AWS documentation's list, next to those of its examples.
_OVERRIDE_ALIASES: Final[dict[str, str]] = {
    "ATTRIBUTE_PAYLOAD": "AttributePayload",
    "THING_TYPE_NAME": "ThingTypeName",
    "THING_GROUPS": "ThingGroups",
    "STATUS": "Status",
}


# A message lists this many problems after the first; ``TemplateError.problems`` has them all.
_MAX_LISTED: Final = 25


class TemplateError(InvalidRequestError):
    """A template body refused; the message names every problem by its path, ``problems`` lists them."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        first, *rest = problems
        also = "".join(f"; also {problem.path}: {problem.problem}" for problem in rest[:_MAX_LISTED])
        if len(rest) > _MAX_LISTED:
            also += f"; and {len(rest) - _MAX_LISTED} more"
        super().__init__(first.path, first.problem + also)
        self.problems = list(problems)


@dataclass(frozen=True)
class Resource:
    """One checked entry of ``Resources``."""

    name: str
    type: str
    properties: Mapping[str, Any]
    overrides: Mapping[str, Override]
    condition: str | None


@dataclass(frozen=True)
class TemplateBody:
    """A checked template body."""

    parameters: Mapping[str, str | None]
    mappings: Mapping[str, Mapping[str, Mapping[str, Any]]]
    conditions: Mapping[str, Any]
    resources: Sequence[Resource]
    device_configuration: Mapping[str, Any]
    #: What the paths in errors start with (``templateBody`` when saved, nothing when evaluated).
    path: str

    def resource(self, kind: str) -> Resource:
        """The template's only resource of type ``kind`` (a thing or a certificate)."""
        return next(resource for resource in self.resources if resource.type == kind)


def join_path(path: str, key: str) -> str:
    """``path.key``, or ``key`` at the top (``path`` empty)."""
    return f"{path}.{key}" if path else key


def policy_document(path: str, document: Any) -> dict[str, Any]:
    """A ``PolicyDocument`` as an object: given as one, or as the JSON text of one (older AWS examples)."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as exc:
            raise InvalidRequestError(path, f"is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidRequestError(path, "must be a policy document object, or its JSON text")
    return document


def parse_template(body: Any, *, path: str = "templateBody") -> TemplateBody:
    """Check a template body whole.

    Raises:
        TemplateError: naming every problem found by its path under ``path``.
    """
    return _Parser(path).parse(body)


class _Parser:
    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def fail(self, where: str, problem: str) -> None:
        self.problems.append(
            Problem(join_path(self.path, where) if where else self.path or "templateBody", problem)
        )

    def section(self, body: Mapping[str, Any], name: str) -> dict[str, Any]:
        value = body.get(name, {})
        if not isinstance(value, dict):
            self.fail(name, "must be an object")
            return {}
        return value

    def parse(self, body: Any) -> TemplateBody:
        if not isinstance(body, dict):
            raise TemplateError(
                [Problem(self.path or "templateBody", "must be an object of template sections")]
            )
        unknown = sorted(str(name) for name in body if name not in SECTIONS)
        if unknown:
            self.fail("", f"has unsupported sections {unknown}; a template has {', '.join(SECTIONS)}")
        parameters = self.parameters(self.section(body, "Parameters"))
        mappings = self.mappings(self.section(body, "Mappings"))
        conditions = self.section(body, "Conditions")
        checker = ValueChecker(
            parameters=frozenset(parameters) | BUILTIN_PARAMETERS,
            mappings=mappings,
            conditions=frozenset(name for name in conditions if isinstance(name, str)),
        )
        self.conditions(conditions, checker)
        resources = self.resources(self.section(body, "Resources"), checker)
        configuration = self.section(body, "DeviceConfiguration")
        for key, value in configuration.items():
            checker.expect(
                join_path(self.path, f"DeviceConfiguration.{key}"), value, Kind.STRING, optional=True
            )
        self.problems.extend(checker.problems)
        if self.problems:
            raise TemplateError(self.problems)
        return TemplateBody(parameters, mappings, conditions, resources, configuration, self.path)

    def parameters(self, section: Mapping[str, Any]) -> dict[str, str | None]:
        parameters: dict[str, str | None] = {}
        for name, definition in section.items():
            where = f"Parameters.{name}"
            if not name or name == NO_VALUE_PARAMETER:
                self.fail(where, "is not a name a parameter can have")
            elif not isinstance(definition, dict) or definition.get("Type") != "String":
                self.fail(where, 'must be an object with "Type": "String"')
            elif unknown := sorted(set(definition) - {"Type", "Default", "Description"}):
                self.fail(
                    where, f"has unsupported keys {unknown}; a parameter has Type, Default, Description"
                )
            elif not isinstance(definition.get("Default", ""), str):
                self.fail(f"{where}.Default", "must be a string")
            elif not isinstance(definition.get("Description", ""), str):
                self.fail(f"{where}.Description", "must be a string")
            else:
                parameters[name] = definition.get("Default")
        return parameters

    def mappings(self, section: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
        mappings: dict[str, dict[str, dict[str, Any]]] = {}
        for name, table in section.items():
            if not isinstance(table, dict) or not all(isinstance(row, dict) for row in table.values()):
                self.fail(f"Mappings.{name}", "must be an object of objects: {key: {key: value}}")
                continue
            for first, row in table.items():
                for second, value in row.items():
                    is_strings = isinstance(value, list) and all(isinstance(item, str) for item in value)
                    if not isinstance(value, str) and not is_strings:
                        self.fail(
                            f"Mappings.{name}.{first}.{second}",
                            "must be a string or a list of strings (Mappings cannot call functions)",
                        )
            mappings[name] = table
        return mappings

    def conditions(self, section: Mapping[str, Any], checker: ValueChecker) -> None:
        depends: dict[str, set[str]] = {}
        for name, condition in section.items():
            checker.named_conditions.clear()
            checker.condition(join_path(self.path, f"Conditions.{name}"), condition)
            depends[name] = set(checker.named_conditions)
        for name in depends:
            if _reaches(depends, name, name):
                self.fail(f"Conditions.{name}", "depends on itself")

    def resources(self, section: Mapping[str, Any], checker: ValueChecker) -> list[Resource]:
        if not section:
            self.fail("Resources", "must be a non-empty object of resources")
        resources = [
            resource
            for name, value in section.items()
            if (resource := self.resource(name, value, checker)) is not None
        ]
        for kind in (THING, CERTIFICATE):
            count = sum(
                1 for name, value in section.items() if isinstance(value, dict) and value.get("Type") == kind
            )
            if count != 1:
                self.fail("Resources", f"must have exactly one {kind} resource, not {count}")
        return resources

    def resource(self, name: str, value: Any, checker: ValueChecker) -> Resource | None:
        where = f"Resources.{name}"
        if not isinstance(value, dict) or not isinstance(value.get("Properties"), dict):
            self.fail(where, 'must be an object with "Type" and "Properties"')
            return None
        kind = value.get("Type")
        if not isinstance(kind, str) or kind not in _PROPERTIES:
            self.fail(f"{where}.Type", f"{kind!r} is not one of {', '.join(_PROPERTIES)}")
            return None
        unknown = sorted(set(value) - {"Type", "Properties", "OverrideSettings", "Condition"})
        if unknown:
            self.fail(where, f"has unsupported keys {unknown}")
        properties: dict[str, Any] = value["Properties"]
        for key in properties:
            if key in _UNSUPPORTED:
                self.fail(f"{where}.Properties.{key}", _UNSUPPORTED[key])
            elif key not in _PROPERTIES[kind]:
                self.fail(
                    f"{where}.Properties.{key}",
                    f"is not a property of {kind} ({', '.join(_PROPERTIES[kind])})",
                )
        self.properties(f"{where}.Properties", kind, properties, checker)
        condition = value.get("Condition")
        if condition is not None:
            if kind != POLICY:
                self.fail(
                    f"{where}.Condition", "only a policy can have a Condition: a template makes one thing"
                )
            elif not isinstance(condition, str) or condition not in checker.conditions:
                self.fail(f"{where}.Condition", f"{condition!r} is not a condition declared in Conditions")
        return Resource(
            name, kind, properties, self.overrides(where, kind, value.get("OverrideSettings")), condition
        )

    def properties(self, where: str, kind: str, properties: Mapping[str, Any], checker: ValueChecker) -> None:
        at = join_path(self.path, where)
        if kind == THING:
            if "ThingName" not in properties:
                self.fail(f"{where}.ThingName", "is required")
            else:
                checker.expect(f"{at}.ThingName", properties["ThingName"], Kind.STRING)
            if "ThingTypeName" in properties:
                checker.expect(f"{at}.ThingTypeName", properties["ThingTypeName"], Kind.STRING, optional=True)
            attributes = properties.get("AttributePayload", {})
            if isinstance(attributes, dict) and function_name(attributes) is None:
                for key, value in attributes.items():
                    checker.expect(f"{at}.AttributePayload.{key}", value, Kind.STRING, optional=True)
            else:
                checker.expect(f"{at}.AttributePayload", attributes, Kind.OBJECT, optional=True)
            groups = properties.get("ThingGroups", [])
            if isinstance(groups, list):
                for index, group in enumerate(groups):
                    checker.expect(f"{at}.ThingGroups[{index}]", group, Kind.STRING, optional=True)
            else:
                checker.expect(f"{at}.ThingGroups", groups, Kind.LIST, optional=True)
        elif kind == CERTIFICATE:
            if properties.get("CertificateId") != {"Ref": CERTIFICATE_ID_PARAMETER}:
                self.fail(f"{where}.CertificateId", f'must be {{"Ref": "{CERTIFICATE_ID_PARAMETER}"}}')
            status = properties.get("Status", "ACTIVE")
            if isinstance(status, str) and status.upper() not in ("ACTIVE", "INACTIVE"):
                self.fail(f"{where}.Status", f"{status!r} is not ACTIVE or INACTIVE")
            elif "Status" in properties:
                checker.expect(f"{at}.Status", status, Kind.STRING, optional=True)
        elif ("PolicyName" in properties) == ("PolicyDocument" in properties):
            self.fail(where, "must have exactly one of PolicyName (an existing policy) and PolicyDocument")
        elif "PolicyName" in properties:
            checker.expect(f"{at}.PolicyName", properties["PolicyName"], Kind.STRING)
        else:
            document = properties["PolicyDocument"]
            if isinstance(document, str):
                try:
                    policy_document(f"{at}.PolicyDocument", document)
                except InvalidRequestError as exc:
                    self.fail(f"{where}.PolicyDocument", exc.problem)
            elif function_name(document) is None and not isinstance(document, dict):
                self.fail(f"{where}.PolicyDocument", "must be a policy document object, or its JSON text")
            else:
                checker.value(f"{at}.PolicyDocument", document)

    def overrides(self, where: str, kind: str, settings: Any) -> dict[str, Override]:
        if settings is None:
            return {}
        where = f"{where}.OverrideSettings"
        if not isinstance(settings, dict):
            self.fail(where, "must be an object of property: DO_NOTHING, REPLACE, FAIL or MERGE")
            return {}
        if kind == POLICY:
            self.fail(where, "policies have no OverrideSettings")
            return {}
        allowed_by_property = (
            {name: allowed for name, (allowed, _) in THING_OVERRIDES.items()}
            if kind == THING
            # The certificate is always the device's new one, so its Status override never applies.
            else {"Status": frozenset({Override.DO_NOTHING, Override.REPLACE, Override.FAIL})}
        )
        overrides: dict[str, Override] = {}
        for key, value in settings.items():
            name = _OVERRIDE_ALIASES.get(str(key), str(key))
            allowed = allowed_by_property.get(name)
            if allowed is None:
                self.fail(f"{where}.{key}", f"is not one of {', '.join(allowed_by_property)}")
            elif value not in {str(override) for override in allowed}:
                self.fail(f"{where}.{key}", f"{value!r} is not one of {', '.join(sorted(allowed))}")
            else:
                overrides[name] = Override(value)
        return overrides


def _reaches(depends: Mapping[str, set[str]], start: str, target: str) -> bool:
    seen: set[str] = set()
    frontier = list(depends.get(start, ()))
    while frontier:
        name = frontier.pop()
        if name == target:
            return True
        if name not in seen:
            seen.add(name)
            frontier.extend(depends.get(name, ()))
    return False

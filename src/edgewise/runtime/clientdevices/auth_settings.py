"""The configuration of ``aws.greengrass.clientdevices.Auth`` in Greengrass's keys, and what it grants a device.

::

    deviceGroups:
      formatVersion: "2021-03-05"
      definitions:
        Sensors: {selectionRule: "thingName: sensor*", policyName: SensorPolicy}
      policies:
        SensorPolicy:
          AllowConnect: {operations: ["mqtt:connect"], resources: ["mqtt:clientId:sensor*"]}
          AllowPublish: {operations: ["mqtt:publish"], resources: ["mqtt:topic:sensors/${iot:Connection.Thing.ThingName}/*"]}
    certificates: {serverCertificateValiditySeconds: 604800}
    security: {clientDeviceTrustDurationMinutes: 1440}

A client device gets the statements of the policy of every group whose rule selects its thing name. Operations
are ``mqtt:connect`` (checked by the gate on ``mqtt:clientId:<glob>`` resources), ``mqtt:publish`` (on
``mqtt:topic:<topic>``), ``mqtt:subscribe`` (on ``mqtt:topicfilter:<filter>``) and ``*``; a resource ``*`` is
any resource of the operation's kind. ``${iot:Connection.Thing.ThingName}`` in a resource is the device's thing
name. Topic resources become lines of the broker's ACL (:func:`acl_lines`), which the broker enforces on every
packet: a ``*`` that is a whole level becomes ``+``, a final ``/*`` (or a lone ``*``) becomes ``#``; a ``*``
inside a level cannot be enforced by an MQTT broker and is refused when the configuration is read.

``performance``, ``metrics`` and ``startupTimeoutSeconds`` are Greengrass tuning keys that mean nothing here;
they are accepted so that Greengrass deployments apply. Every other value that cannot be used raises
:class:`ClientDeviceConfigurationError` naming its dotted key.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from edgewise.runtime.clientdevices.config_fields import object_at, object_in, only_keys, whole_number
from edgewise.runtime.clientdevices.errors import ClientDeviceConfigurationError
from edgewise.runtime.clientdevices.names import AUTH
from edgewise.runtime.clientdevices.selection import SelectionRule, parse_selection_rule

FORMAT_VERSION: Final = "2021-03-05"
DEFAULT_VALIDITY_SECONDS: Final = 604_800
VALIDITY_RANGE: Final = (172_800, 864_000)
DEFAULT_TRUST_MINUTES: Final = 1440
#: At least a minute; at most a year.
TRUST_RANGE: Final = (1, 525_600)
THING_NAME_VARIABLE: Final = "${iot:Connection.Thing.ThingName}"
IGNORED_KEYS: Final = ("performance", "metrics", "startupTimeoutSeconds")

Operation = Literal["mqtt:connect", "mqtt:publish", "mqtt:subscribe"]
OPERATIONS: Final[tuple[Operation, ...]] = ("mqtt:connect", "mqtt:publish", "mqtt:subscribe")
#: The resource prefix each operation applies to.
_RESOURCE_KIND: Final[Mapping[str, str]] = {
    "mqtt:connect": "mqtt:clientId:",
    "mqtt:publish": "mqtt:topic:",
    "mqtt:subscribe": "mqtt:topicfilter:",
}
_VARIABLE: Final = re.compile(r"\$\{[^}]*\}")
_MAX_RESOURCE: Final = 512


@dataclass(frozen=True)
class Statement:
    """One statement of a policy: the operations it allows on its resources (``*`` kept as ``*``)."""

    name: str
    operations: tuple[Operation, ...]
    resources: tuple[str, ...]


@dataclass(frozen=True)
class DeviceGroup:
    name: str
    rule: SelectionRule
    policy: str


@dataclass(frozen=True)
class AuthSettings:
    """What the Auth component runs with; equal settings need no restart."""

    groups: tuple[DeviceGroup, ...] = ()
    policies: tuple[tuple[str, tuple[Statement, ...]], ...] = ()
    server_certificate_validity: int = DEFAULT_VALIDITY_SECONDS  #: seconds
    trust_duration: int = DEFAULT_TRUST_MINUTES * 60  #: seconds a trust list stays usable offline

    def statements_for(self, thing_name: str) -> list[Statement]:
        """The statements that apply to ``thing_name``: those of every group that selects it."""
        policies = dict(self.policies)
        chosen: list[Statement] = []
        for group in self.groups:
            if group.rule.matches(thing_name):
                chosen.extend(policies[group.policy])
        return chosen

    def may_connect(self, thing_name: str, client_id: str) -> bool:
        """Whether ``thing_name`` may connect with ``client_id`` (``mqtt:connect`` on ``mqtt:clientId:``)."""
        for statement in self.statements_for(thing_name):
            if "mqtt:connect" not in statement.operations:
                continue
            for resource in statement.resources:
                if resource == "*":
                    return True
                if resource.startswith("mqtt:clientId:"):
                    pattern = _substitute(resource.removeprefix("mqtt:clientId:"), thing_name)
                    if _glob(pattern, client_id):
                        return True
        return False

    def acl_lines(self, thing_name: str) -> list[str]:
        """The Mosquitto ACL lines (``topic read|write <filter>``) that enforce ``thing_name``'s topics."""
        lines: list[str] = []
        for statement in self.statements_for(thing_name):
            for operation, access in (("mqtt:publish", "write"), ("mqtt:subscribe", "read")):
                if operation not in statement.operations:
                    continue
                for resource in statement.resources:
                    topic = _topic_of(resource, operation)
                    if topic is None:
                        continue
                    acl_filter = _acl_filter(_substitute(topic, thing_name))
                    # MQTT's '#' skips topics starting with '$'; Greengrass's '*' does not.
                    for each in (acl_filter, "$aws/#") if acl_filter == "#" else (acl_filter,):
                        line = f"topic {access} {each}"
                        if line not in lines:
                            lines.append(line)
        return lines


def _glob(pattern: str, value: str) -> bool:
    """Greengrass's resource match: ``*`` is any run of characters; nothing else is special."""
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]").replace("?", "[?]"))


def _substitute(resource: str, thing_name: str) -> str:
    return resource.replace(THING_NAME_VARIABLE, thing_name)


def _topic_of(resource: str, operation: str) -> str | None:
    if resource == "*":
        return "*"
    prefix = _RESOURCE_KIND[operation]
    return resource.removeprefix(prefix) if resource.startswith(prefix) else None


def _acl_filter(topic: str) -> str:
    """``topic`` (checked by :func:`_check_topic`) as an MQTT filter."""
    levels = topic.split("/")
    if levels[-1] == "*":
        levels[-1] = "#"
    return "/".join("+" if level == "*" else level for level in levels)


def _check_topic(topic: str, key: str) -> None:
    if not topic:
        raise ClientDeviceConfigurationError(AUTH, key, "names no topic")
    for level in _VARIABLE.sub("x", topic).split("/"):
        if "*" in level and level != "*":
            raise ClientDeviceConfigurationError(
                AUTH,
                key,
                f"{topic!r} has a '*' inside the level {level!r}: the broker can only enforce a '*' that is a "
                "whole level (any one level) or the last one (any levels below)",
            )
        if ("#" in level and level != "#") or ("+" in level and level != "+"):
            raise ClientDeviceConfigurationError(AUTH, key, f"{topic!r} has an MQTT wildcard inside a level")
    if "#" in topic.split("/")[:-1]:
        raise ClientDeviceConfigurationError(AUTH, key, f"{topic!r} has '#' before its last level")


def _check_variables(resource: str, key: str) -> None:
    for variable in _VARIABLE.findall(resource):
        if variable != THING_NAME_VARIABLE:
            raise ClientDeviceConfigurationError(
                AUTH, key, f"uses {variable}; the only policy variable is {THING_NAME_VARIABLE}"
            )


def parse_auth_settings(configuration: Any) -> AuthSettings:
    """The settings of a configuration in Greengrass's keys.

    Raises:
        ClientDeviceConfigurationError: a value that cannot be used, naming its dotted key.
    """
    if configuration is None:
        configuration = {}
    body = object_at(AUTH, configuration, "")
    only_keys(
        AUTH, body, "", ("deviceGroups", "certificates", "security", "certificateAuthority", *IGNORED_KEYS)
    )
    if "certificateAuthority" in body:
        raise ClientDeviceConfigurationError(
            AUTH,
            "certificateAuthority",
            "is not supported: the core signs its broker's certificate with its own local CA, which discovery "
            "hands to client devices",
        )
    groups: list[DeviceGroup] = []
    policies: dict[str, tuple[Statement, ...]] = {}
    if body.get("deviceGroups") is not None:
        groups, policies = _device_groups(object_at(AUTH, body["deviceGroups"], "deviceGroups"))
    certificates = object_in(AUTH, body, "certificates", "certificates")
    only_keys(AUTH, certificates, "certificates", ("serverCertificateValiditySeconds",))
    security = object_in(AUTH, body, "security", "security")
    only_keys(AUTH, security, "security", ("clientDeviceTrustDurationMinutes",))
    return AuthSettings(
        groups=tuple(groups),
        policies=tuple(sorted(policies.items())),
        server_certificate_validity=whole_number(
            AUTH,
            certificates.get("serverCertificateValiditySeconds", DEFAULT_VALIDITY_SECONDS),
            "certificates.serverCertificateValiditySeconds",
            VALIDITY_RANGE,
        ),
        trust_duration=60
        * whole_number(
            AUTH,
            security.get("clientDeviceTrustDurationMinutes", DEFAULT_TRUST_MINUTES),
            "security.clientDeviceTrustDurationMinutes",
            TRUST_RANGE,
        ),
    )


def _device_groups(body: Mapping[str, Any]) -> tuple[list[DeviceGroup], dict[str, tuple[Statement, ...]]]:
    only_keys(AUTH, body, "deviceGroups", ("formatVersion", "definitions", "policies"))
    version = body.get("formatVersion", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise ClientDeviceConfigurationError(
            AUTH, "deviceGroups.formatVersion", f"must be {FORMAT_VERSION!r}, not {version!r}"
        )
    policies: dict[str, tuple[Statement, ...]] = {}
    for name, statements in object_in(AUTH, body, "policies", "deviceGroups.policies").items():
        key = f"deviceGroups.policies.{name}"
        policies[name] = tuple(
            _statement(statement_name, statement, f"{key}.{statement_name}")
            for statement_name, statement in object_at(AUTH, statements, key).items()
        )
    groups: list[DeviceGroup] = []
    for name, definition in object_in(AUTH, body, "definitions", "deviceGroups.definitions").items():
        key = f"deviceGroups.definitions.{name}"
        group = object_at(AUTH, definition, key)
        only_keys(AUTH, group, key, ("selectionRule", "policyName"))
        rule = parse_selection_rule(group.get("selectionRule"), f"{key}.selectionRule")
        policy = group.get("policyName")
        if not isinstance(policy, str) or policy not in policies:
            known = ", ".join(sorted(policies)) or "none"
            raise ClientDeviceConfigurationError(
                AUTH,
                f"{key}.policyName",
                f"must name a policy of deviceGroups.policies ({known}), not {policy!r}",
            )
        groups.append(DeviceGroup(name, rule, policy))
    return groups, policies


def _statement(name: str, value: Any, key: str) -> Statement:
    body = object_at(AUTH, value, key)
    only_keys(AUTH, body, key, ("statementDescription", "operations", "resources"))
    description = body.get("statementDescription", "")
    if not isinstance(description, str):
        raise ClientDeviceConfigurationError(AUTH, f"{key}.statementDescription", "must be a string")
    operations: list[Operation] = []
    for index, operation in enumerate(_list(body.get("operations"), f"{key}.operations")):
        if operation == "*":
            operations.extend(OPERATIONS)
            continue
        known = next((known for known in OPERATIONS if known == operation), None)
        if known is None:
            raise ClientDeviceConfigurationError(
                AUTH,
                f"{key}.operations[{index}]",
                f"must be one of {', '.join(OPERATIONS)} or *, not {operation!r}",
            )
        operations.append(known)
    resources: list[str] = []
    for index, resource in enumerate(_list(body.get("resources"), f"{key}.resources")):
        resources.append(_resource(resource, f"{key}.resources[{index}]"))
    return Statement(name, tuple(dict.fromkeys(operations)), tuple(resources))


def _resource(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_RESOURCE:
        raise ClientDeviceConfigurationError(
            AUTH, key, f"must be a resource of 1 to {_MAX_RESOURCE} characters"
        )
    if value == "*":
        return value
    if any(ord(character) < 0x20 or character.isspace() for character in value):
        raise ClientDeviceConfigurationError(
            AUTH, key, f"{value!r} contains white space or control characters"
        )
    _check_variables(value, key)
    if value.startswith("mqtt:clientId:"):
        if not value.removeprefix("mqtt:clientId:"):
            raise ClientDeviceConfigurationError(AUTH, key, "names no client id")
        return value
    for prefix in ("mqtt:topic:", "mqtt:topicfilter:"):
        if value.startswith(prefix):
            _check_topic(value.removeprefix(prefix), key)
            return value
    raise ClientDeviceConfigurationError(
        AUTH,
        key,
        f"must be *, mqtt:clientId:<id>, mqtt:topic:<topic> or mqtt:topicfilter:<filter>, not {value!r}",
    )


def _list(value: Any, key: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ClientDeviceConfigurationError(AUTH, key, "must be a non-empty list")
    return value

"""The fleet deployment document: what a deployment job tells a device to run (docs/device-protocol.md).

The cloud writes it into the job of every deployment with :func:`build_document`; the device reads the job's
document with :func:`parse_document`. It is the Greengrass device-side deployment document, so a device written
against Greengrass reads ours::

    {"schemaDate": "2021-05-17", "deploymentId": "...", "deploymentName": "...",
     "configurationArn": "arn:aws:greengrass:...:configuration:thinggroup/<group>:<revision>",
     "creationTimestamp": 1764100000000,
     "components": {"<name>": {"version": "1.0.0",
                               "configurationUpdate": {"merge": {...}, "reset": ["/pointer"]},
                               "runWith": {"posixUser": "user:group", "systemResourceLimits": {...}}}},
     "failureHandlingPolicy": "ROLLBACK",
     "componentUpdatePolicy": {"timeout": 60, "action": "NOTIFY_COMPONENTS"},
     "configurationValidationPolicy": {"timeout": 30}}

:class:`FleetDeploymentDocument` holds the document as written: a key the document leaves out is ``None`` (or,
for the policies, Greengrass's default), so the values the cloud builds are the values the device parses. What a
deployment *does* with them (which group it replaces, which users and limits change) is the device's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

from edgewise.errors import EdgewiseError
from edgewise.names import COMPONENT_NAME, THING_NAME
from edgewise.versions import Version, VersionError

#: The ``schemaDate`` of the documents the cloud writes.
SCHEMA_DATE = "2021-05-17"
#: Greengrass defaults: components get 60 s to defer an update and 20 s to validate a configuration.
DEFAULT_UPDATE_TIMEOUT_SECONDS = 60.0
DEFAULT_VALIDATION_TIMEOUT_SECONDS = 20.0

FailureHandling = Literal["ROLLBACK", "DO_NOTHING"]
UpdateAction = Literal["NOTIFY_COMPONENTS", "SKIP_NOTIFY_COMPONENTS"]
TargetKind = Literal["thing", "thinggroup"]

_CONFIGURATION_ARN = "arn:aws:greengrass:edgewise:edgewise:configuration:{kind}/{name}:{revision}"
_DOCUMENT_KEYS = frozenset(
    {
        "schemaDate",
        "deploymentId",
        "deploymentName",
        "configurationArn",
        "creationTimestamp",
        "onBehalfOf",
        "parentTargetArn",
        "requiredCapabilities",
        "components",
        "failureHandlingPolicy",
        "componentUpdatePolicy",
        "configurationValidationPolicy",
    }
)
_COMPONENT_KEYS = frozenset({"version", "configurationUpdate", "runWith"})
_RUN_WITH_KEYS = frozenset({"posixUser", "windowsUser", "systemResourceLimits"})
_FAILURE_HANDLING: tuple[FailureHandling, ...] = ("ROLLBACK", "DO_NOTHING")
_UPDATE_ACTIONS: tuple[UpdateAction, ...] = ("NOTIFY_COMPONENTS", "SKIP_NOTIFY_COMPONENTS")
#: Deployment ids name files under ROOT/deployments/history on the device: no separators, no leading dot.
_DEPLOYMENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_TARGET = re.compile(r"(thing|thinggroup)/([a-zA-Z0-9:_-]{1,128})")
_MAX_TEXT = 2048
_MAX_TIMESTAMP_MS = 2**53


class DeploymentDocumentError(EdgewiseError):
    """A deployment document that cannot be applied: every problem names its field path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ConfigurationUpdate:
    """A component's ``configurationUpdate``: reset these JSON pointers, then merge this object."""

    merge: Mapping[str, Any] | None = None
    reset: tuple[str, ...] = ()


@dataclass(frozen=True)
class SystemResourceLimits:
    """``runWith.systemResourceLimits``: ``memory`` in KB, ``cpus`` in cores; ``None`` where not given."""

    memory: int | None = None
    cpus: float | None = None


@dataclass(frozen=True)
class RunWith:
    """A component's ``runWith``.

    ``posix_user`` is ``None`` when the document names no user (the component keeps the one it runs as) and
    ``""`` for the default user (``null`` in a document reads as ``""``). ``windows_user`` is carried, never
    applied: devices run no Windows users.
    """

    posix_user: str | None = None
    windows_user: str | None = None
    system_resource_limits: SystemResourceLimits | None = None


@dataclass(frozen=True)
class ComponentSpecification:
    """One entry of ``components``: the version to run and how."""

    version: str
    configuration_update: ConfigurationUpdate | None = None
    run_with: RunWith | None = None


@dataclass(frozen=True)
class ComponentUpdatePolicy:
    """Whether components are told before an update, and how long (seconds) they may defer it."""

    action: UpdateAction = "NOTIFY_COMPONENTS"
    timeout: float = DEFAULT_UPDATE_TIMEOUT_SECONDS


@dataclass(frozen=True)
class ConfigurationValidationPolicy:
    """How long (seconds) components have to validate a new configuration."""

    timeout: float = DEFAULT_VALIDATION_TIMEOUT_SECONDS


@dataclass(frozen=True, kw_only=True)
class FleetDeploymentDocument:
    """The document of a deployment job. ``requiredCapabilities`` has no field: a device refuses any."""

    schema_date: str | None = None
    deployment_id: str
    deployment_name: str | None = None
    configuration_arn: str
    creation_timestamp: int  #: milliseconds since the epoch
    on_behalf_of: str | None = None  #: a thing group name or ARN that overrides the group of the ARN
    parent_target_arn: str | None = None
    components: Mapping[str, ComponentSpecification] = field(default_factory=dict)
    failure_handling_policy: FailureHandling = "ROLLBACK"
    component_update_policy: ComponentUpdatePolicy = ComponentUpdatePolicy()
    configuration_validation_policy: ConfigurationValidationPolicy = ConfigurationValidationPolicy()

    @property
    def group(self) -> str:
        """The deployment group whose root components the deployment replaces: ``thinggroup/<name>`` of
        ``onBehalfOf`` when given, else the target of ``configurationArn``.

        Raises:
            ValueError: the ARN or ``onBehalfOf`` is malformed (never for a parsed document).
        """
        if self.on_behalf_of:
            name = _group_name(self.on_behalf_of)
            if name is None:
                msg = f"expected a thing group name or ARN, got {self.on_behalf_of!r}"
                raise ValueError(msg)
            return f"thinggroup/{name}"
        return group_of_configuration_arn(self.configuration_arn)


def configuration_arn(kind: TargetKind, name: str, revision: int) -> str:
    """The ``configurationArn`` of revision ``revision`` of a thing's or a thing group's deployments."""
    return _CONFIGURATION_ARN.format(kind=kind, name=name, revision=revision)


def group_of_configuration_arn(arn: str) -> str:
    """The deployment group of a ``configurationArn``: its target, ``thing/<name>`` or ``thinggroup/<name>``.

    The ARN is ``arn:<partition>:greengrass:<region>:<account>:configuration:<target>:<revision>``.

    Raises:
        ValueError: naming what is wrong with the ARN.
    """
    parts = arn.split(":", 6)
    if len(parts) != 7 or parts[0] != "arn" or parts[2] != "greengrass" or parts[5] != "configuration":
        msg = (
            f"expected arn:<partition>:greengrass:<region>:<account>:configuration:<target>:<revision>, "
            f"got {arn!r}"
        )
        raise ValueError(msg)
    target = parts[6]
    head, _, revision = target.rpartition(":")
    if head and revision.isdigit():
        target = head
    if not _TARGET.fullmatch(target):
        msg = f"the target must be thing/<name> or thinggroup/<name>, got {target!r}"
        raise ValueError(msg)
    return target


def _group_name(on_behalf_of: str) -> str | None:
    """The thing group an ``onBehalfOf`` names (a name or an ARN), or None when it names none."""
    name = on_behalf_of.rsplit("thinggroup/", 1)[-1] if on_behalf_of.startswith("arn:") else on_behalf_of
    return name if THING_NAME.fullmatch(name) else None


# -- building --------------------------------------------------------------------------------------------


def _build_run_with(run_with: RunWith) -> dict[str, Any]:
    built: dict[str, Any] = {}
    if run_with.posix_user is not None:
        built["posixUser"] = run_with.posix_user
    if run_with.windows_user is not None:
        built["windowsUser"] = run_with.windows_user
    limits = run_with.system_resource_limits
    if limits is not None:
        built["systemResourceLimits"] = {
            key: value
            for key, value in (("memory", limits.memory), ("cpus", limits.cpus))
            if value is not None
        }
    return built


def _build_component(component: ComponentSpecification) -> dict[str, Any]:
    built: dict[str, Any] = {"version": component.version}
    update = component.configuration_update
    if update is not None:
        built["configurationUpdate"] = {
            key: value
            for key, value in (
                ("merge", None if update.merge is None else dict(update.merge)),
                ("reset", list(update.reset) if update.reset else None),
            )
            if value is not None
        }
    if component.run_with is not None:
        built["runWith"] = _build_run_with(component.run_with)
    return built


def build_document(document: FleetDeploymentDocument) -> dict[str, Any]:
    """The JSON object of ``document``, as a deployment job carries it; :func:`parse_document` reads it back."""
    built: dict[str, Any] = {}
    if document.schema_date is not None:
        built["schemaDate"] = document.schema_date
    built["deploymentId"] = document.deployment_id
    if document.deployment_name is not None:
        built["deploymentName"] = document.deployment_name
    built["configurationArn"] = document.configuration_arn
    built["creationTimestamp"] = document.creation_timestamp
    if document.on_behalf_of is not None:
        built["onBehalfOf"] = document.on_behalf_of
    if document.parent_target_arn is not None:
        built["parentTargetArn"] = document.parent_target_arn
    built["components"] = {name: _build_component(entry) for name, entry in document.components.items()}
    built["failureHandlingPolicy"] = document.failure_handling_policy
    built["componentUpdatePolicy"] = {
        "timeout": document.component_update_policy.timeout,
        "action": document.component_update_policy.action,
    }
    built["configurationValidationPolicy"] = {"timeout": document.configuration_validation_policy.timeout}
    return built


# -- parsing ---------------------------------------------------------------------------------------------
# Each reader appends one line per problem, "<field path>: <what is wrong>", and goes on, so that a document is
# refused once with every problem listed.


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _is_object(value: object) -> TypeGuard[Mapping[str, Any]]:
    return isinstance(value, Mapping) and all(isinstance(key, str) for key in value)


def _unknown_keys(value: Mapping[str, Any], allowed: frozenset[str], where: str, problems: list[str]) -> None:
    for key in sorted(set(value) - allowed):
        problems.append(f"{where}{key}: unknown key (expected one of {', '.join(sorted(allowed))})")


def _text(
    document: Mapping[str, Any], key: str, problems: list[str], *, required: bool = False
) -> str | None:
    """A string field of 1-2048 characters; an optional one may also be empty."""
    value = document.get(key)
    if value is None or (value == "" and not required):
        if required:
            problems.append(f"{key}: required")
        return value if isinstance(value, str) else None
    if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
        problems.append(f"{key}: expected a string of 1-{_MAX_TEXT} characters, got {_kind(value)}")
        return None
    return value


def _timeout(value: object, name: str, default: float, problems: list[str]) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        problems.append(f"{name}: expected a number of seconds >= 0, got {value!r}")
        return default
    return float(value)


def _check_configuration_arn(document: Mapping[str, Any], problems: list[str]) -> str:
    arn = _text(document, "configurationArn", problems, required=True)
    if arn is None:
        return ""
    try:
        group_of_configuration_arn(arn)
    except ValueError as exc:
        problems.append(f"configurationArn: {exc}")
    return arn


def _check_on_behalf_of(document: Mapping[str, Any], problems: list[str]) -> str | None:
    on_behalf_of = _text(document, "onBehalfOf", problems)
    if on_behalf_of and _group_name(on_behalf_of) is None:
        problems.append(f"onBehalfOf: expected a thing group name or ARN, got {on_behalf_of!r}")
    return on_behalf_of


def _reset_pointers(value: object, where: str, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(pointer, str) for pointer in value):
        problems.append(f"{where}: expected a list of JSON pointer strings, got {_kind(value)}")
        return ()
    for index, pointer in enumerate(value):
        if pointer and not pointer.startswith("/"):
            problems.append(f"{where}[{index}]: {pointer!r} is not a JSON pointer (must start with '/')")
    return tuple(value)


def _configuration_update(value: object, where: str, problems: list[str]) -> ConfigurationUpdate | None:
    if value is None:
        return None
    if not _is_object(value):
        problems.append(f"{where}: expected an object, got {_kind(value)}")
        return None
    _unknown_keys(value, frozenset({"merge", "reset"}), f"{where}.", problems)
    merge = value.get("merge")
    if merge is not None and not _is_object(merge):
        problems.append(f"{where}.merge: expected an object, got {_kind(merge)}")
        merge = None
    return ConfigurationUpdate(
        merge=merge, reset=_reset_pointers(value.get("reset"), f"{where}.reset", problems)
    )


def parse_resource_limits(value: object, where: str, problems: list[str]) -> SystemResourceLimits | None:
    """The ``systemResourceLimits`` of the ``runWith`` at ``where``: ``memory`` (KB, a whole number) and ``cpus``
    (cores), both positive; None when absent. Appends a line to ``problems`` for each wrong field.

    A local deployment's ``componentToRunWithInfo`` carries the same object, so the device reads it with this too.
    """
    if value is None:
        return None
    if not _is_object(value):
        problems.append(f"{where}.systemResourceLimits: expected an object, got {_kind(value)}")
        return None
    _unknown_keys(value, frozenset({"memory", "cpus"}), f"{where}.systemResourceLimits.", problems)
    limits: dict[str, Any] = {}
    for key, whole in (("memory", True), ("cpus", False)):
        number = value.get(key)
        if number is None:
            continue
        if (
            isinstance(number, bool)
            or not isinstance(number, int | float)
            or not math.isfinite(number)
            or number <= 0
            or (whole and number != int(number))
        ):
            kind = "a positive whole number of KB" if whole else "a positive number of cores"
            problems.append(f"{where}.systemResourceLimits.{key}: expected {kind}, got {number!r}")
            continue
        limits[key] = int(number) if whole else float(number)
    return SystemResourceLimits(**limits)


def _run_with(value: object, where: str, problems: list[str]) -> RunWith | None:
    if value is None:
        return None
    if not _is_object(value):
        problems.append(f"{where}: expected an object, got {_kind(value)}")
        return None
    _unknown_keys(value, _RUN_WITH_KEYS, f"{where}.", problems)
    posix_user: str | None = None
    if "posixUser" in value:
        named = value["posixUser"]
        if named is not None and not isinstance(named, str):
            problems.append(f"{where}.posixUser: expected a string, got {_kind(named)}")
        else:
            posix_user = named or ""
    # Devices apply no Windows user, so any windowsUser is accepted; a string is kept for build_document.
    windows_user = value.get("windowsUser")
    return RunWith(
        posix_user=posix_user,
        windows_user=windows_user if isinstance(windows_user, str) else None,
        system_resource_limits=parse_resource_limits(value.get("systemResourceLimits"), where, problems),
    )


def _component(name: str, entry: object, problems: list[str]) -> ComponentSpecification | None:
    where = f"components.{name}"
    if not _is_object(entry):
        problems.append(f"{where}: expected an object with version, got {_kind(entry)}")
        return None
    _unknown_keys(entry, _COMPONENT_KEYS, f"{where}.", problems)
    version = entry.get("version")
    if not isinstance(version, str):
        problems.append(f"{where}.version: expected a version string, got {_kind(version)}")
        version = None
    else:
        try:
            version = str(Version.parse(version))
        except VersionError as exc:
            problems.append(f"{where}.version: {exc}")
            version = None
    update = _configuration_update(entry.get("configurationUpdate"), f"{where}.configurationUpdate", problems)
    run_with = _run_with(entry.get("runWith"), f"{where}.runWith", problems)
    if version is None:
        return None
    return ComponentSpecification(version=version, configuration_update=update, run_with=run_with)


def _components(value: object, problems: list[str]) -> dict[str, ComponentSpecification]:
    if not _is_object(value):
        problems.append(f"components: expected an object of component names, got {_kind(value)}")
        return {}
    components: dict[str, ComponentSpecification] = {}
    for name, entry in value.items():
        if not COMPONENT_NAME.fullmatch(name) or name in (".", ".."):
            problems.append(
                f"components: {name[:200]!r} is not a component name (1-128 letters, digits, '.', '_', '-')"
            )
            continue
        component = _component(name, entry, problems)
        if component is not None:
            components[name] = component
    return components


def _policy_object(document: Mapping[str, Any], key: str, problems: list[str]) -> Mapping[str, Any]:
    value = document.get(key)
    if value is None:
        return {}
    if not _is_object(value):
        problems.append(f"{key}: expected an object, got {_kind(value)}")
        return {}
    return value


def _component_update_policy(document: Mapping[str, Any], problems: list[str]) -> ComponentUpdatePolicy:
    policy = _policy_object(document, "componentUpdatePolicy", problems)
    _unknown_keys(policy, frozenset({"timeout", "action"}), "componentUpdatePolicy.", problems)
    action = policy.get("action", "NOTIFY_COMPONENTS")
    if action not in _UPDATE_ACTIONS:
        problems.append(
            f"componentUpdatePolicy.action: expected NOTIFY_COMPONENTS or SKIP_NOTIFY_COMPONENTS, got {action!r}"
        )
        action = "NOTIFY_COMPONENTS"
    timeout = _timeout(
        policy.get("timeout"), "componentUpdatePolicy.timeout", DEFAULT_UPDATE_TIMEOUT_SECONDS, problems
    )
    return ComponentUpdatePolicy(action=action, timeout=timeout)


def _configuration_validation_policy(
    document: Mapping[str, Any], problems: list[str]
) -> ConfigurationValidationPolicy:
    policy = _policy_object(document, "configurationValidationPolicy", problems)
    _unknown_keys(policy, frozenset({"timeout"}), "configurationValidationPolicy.", problems)
    timeout = _timeout(
        policy.get("timeout"),
        "configurationValidationPolicy.timeout",
        DEFAULT_VALIDATION_TIMEOUT_SECONDS,
        problems,
    )
    return ConfigurationValidationPolicy(timeout=timeout)


def parse_document(document: object) -> FleetDeploymentDocument:
    """Read the document of a deployment job, checking every field; unknown keys are refused.

    Raises:
        DeploymentDocumentError: listing every field that is wrong, by its path.
    """
    if not _is_object(document):
        raise DeploymentDocumentError([f"the deployment document: expected an object, got {_kind(document)}"])
    problems: list[str] = []
    _unknown_keys(document, _DOCUMENT_KEYS, "", problems)
    deployment_id = _text(document, "deploymentId", problems, required=True)
    if deployment_id is not None and not _DEPLOYMENT_ID.fullmatch(deployment_id):
        problems.append(
            f"deploymentId: expected 1-128 letters, digits, '_', '.' or '-' starting with a letter or digit, "
            f"got {deployment_id!r}"
        )
    schema_date = _text(document, "schemaDate", problems)
    deployment_name = _text(document, "deploymentName", problems)
    parent_target_arn = _text(document, "parentTargetArn", problems)
    arn = _check_configuration_arn(document, problems)
    on_behalf_of = _check_on_behalf_of(document, problems)
    created = document.get("creationTimestamp")
    if isinstance(created, bool) or not isinstance(created, int) or not 0 <= created < _MAX_TIMESTAMP_MS:
        problems.append(f"creationTimestamp: expected milliseconds since the epoch, got {_kind(created)}")
        created = 0
    capabilities = document.get("requiredCapabilities")
    if capabilities is not None:
        if not isinstance(capabilities, list) or not all(isinstance(item, str) for item in capabilities):
            problems.append(f"requiredCapabilities: expected a list of strings, got {_kind(capabilities)}")
        else:
            for capability in capabilities:
                problems.append(f"requiredCapabilities: this runtime does not support {capability!r}")
    components = _components(document.get("components"), problems)
    failure_handling = document.get("failureHandlingPolicy", "ROLLBACK")
    if failure_handling not in _FAILURE_HANDLING:
        problems.append(f"failureHandlingPolicy: expected ROLLBACK or DO_NOTHING, got {failure_handling!r}")
        failure_handling = "ROLLBACK"
    update_policy = _component_update_policy(document, problems)
    validation_policy = _configuration_validation_policy(document, problems)
    if problems:
        raise DeploymentDocumentError(problems)
    assert deployment_id is not None
    return FleetDeploymentDocument(
        schema_date=schema_date,
        deployment_id=deployment_id,
        deployment_name=deployment_name,
        configuration_arn=arn,
        creation_timestamp=created,
        on_behalf_of=on_behalf_of,
        parent_target_arn=parent_target_arn,
        components=components,
        failure_handling_policy=failure_handling,
        component_update_policy=update_policy,
        configuration_validation_policy=validation_policy,
    )

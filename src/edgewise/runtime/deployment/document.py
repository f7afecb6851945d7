"""Deployment documents: what a deployment asks for, validated, in one normalized shape.

Local deployments arrive as the IPC ``CreateLocalDeployment`` request (the greengrass-cli shape, reference
§3.6/§4.8); :func:`parse_local_deployment` checks every field and names the ones that are wrong. Fleet
deployments arrive as the job document of a deployment job (reference §3.2, docs/device-protocol.md);
:func:`parse_fleet_deployment` does the same for them.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from edgewise.runtime.deployment.errors import DocumentError
from edgewise.versions import Version, VersionError

LOCAL_GROUP = "LOCAL_DEPLOYMENT"
DEFAULT_TIMEOUT_SECONDS = 600.0
#: Greengrass defaults: components get 60 s to defer an update; local deployments validate for 20 s.
DEFAULT_UPDATE_TIMEOUT_SECONDS = 60.0
DEFAULT_VALIDATION_TIMEOUT_SECONDS = 20.0


class FailureHandlingPolicy(StrEnum):
    """What a failed deployment does (reference §3.1)."""

    ROLLBACK = "ROLLBACK"  #: restore the previous components and configuration
    DO_NOTHING = "DO_NOTHING"  #: leave the failed set as it is


@dataclass(frozen=True)
class ConfigurationUpdate:
    """One component's ``configurationUpdate``: reset pointers first, then merge."""

    merge: Mapping[str, Any] | None = None
    reset: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeploymentDocument:
    """A validated deployment."""

    deployment_id: str
    group: str = LOCAL_GROUP
    created_ms: int = 0
    components_to_add: Mapping[str, str] = field(default_factory=dict)
    components_to_remove: tuple[str, ...] = ()
    configuration: Mapping[str, ConfigurationUpdate] = field(default_factory=dict)
    posix_users: Mapping[str, str | None] = field(default_factory=dict)
    #: ``runWith.systemResourceLimits`` of each component given a ``runWith``; None removes its limits.
    resource_limits: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    recipe_dir: Path | None = None
    artifacts_dir: Path | None = None
    failure_policy: FailureHandlingPolicy = FailureHandlingPolicy.ROLLBACK
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    notify_components: bool = False  #: componentUpdatePolicy action NOTIFY_COMPONENTS
    update_timeout: float = DEFAULT_UPDATE_TIMEOUT_SECONDS
    validation_timeout: float = DEFAULT_VALIDATION_TIMEOUT_SECONDS
    #: Fleet deployments replace the group's root components (reference §3.5); local ones add and remove.
    replace_group_roots: bool = False
    configuration_arn: str | None = None  #: the fleet configuration (target and revision) it came from

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form, read back by :meth:`from_json`."""
        return {
            "deploymentId": self.deployment_id,
            "group": self.group,
            "createdMs": self.created_ms,
            "componentsToAdd": dict(self.components_to_add),
            "componentsToRemove": list(self.components_to_remove),
            "configuration": {
                name: {"merge": update.merge, "reset": list(update.reset)}
                for name, update in self.configuration.items()
            },
            "posixUsers": dict(self.posix_users),
            "resourceLimits": dict(self.resource_limits),
            "recipeDir": str(self.recipe_dir) if self.recipe_dir else None,
            "artifactsDir": str(self.artifacts_dir) if self.artifacts_dir else None,
            "failurePolicy": self.failure_policy.value,
            "timeout": self.timeout,
            "notifyComponents": self.notify_components,
            "updateTimeout": self.update_timeout,
            "validationTimeout": self.validation_timeout,
            "replaceGroupRoots": self.replace_group_roots,
            "configurationArn": self.configuration_arn,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeploymentDocument:
        """Read back what :meth:`to_json` wrote."""
        return cls(
            deployment_id=data["deploymentId"],
            group=data["group"],
            created_ms=int(data["createdMs"]),
            components_to_add=dict(data["componentsToAdd"]),
            components_to_remove=tuple(data["componentsToRemove"]),
            configuration={
                name: ConfigurationUpdate(merge=update["merge"], reset=tuple(update["reset"]))
                for name, update in data["configuration"].items()
            },
            posix_users=dict(data["posixUsers"]),
            resource_limits=dict(data.get("resourceLimits") or {}),
            recipe_dir=Path(data["recipeDir"]) if data["recipeDir"] else None,
            artifacts_dir=Path(data["artifactsDir"]) if data["artifactsDir"] else None,
            failure_policy=FailureHandlingPolicy(data["failurePolicy"]),
            timeout=float(data["timeout"]),
            notify_components=bool(data.get("notifyComponents", False)),
            update_timeout=float(data.get("updateTimeout", DEFAULT_UPDATE_TIMEOUT_SECONDS)),
            validation_timeout=float(data.get("validationTimeout", DEFAULT_VALIDATION_TIMEOUT_SECONDS)),
            replace_group_roots=bool(data.get("replaceGroupRoots", False)),
            configuration_arn=data.get("configurationArn"),
        )


def _string_map(value: object, name: str, problems: list[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        problems.append(f"{name}: expected an object, got {_kind(value)}")
        return {}
    return dict(value)


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _directory(value: object, name: str, problems: list[str]) -> Path | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        problems.append(f"{name}: expected a path string, got {_kind(value)}")
        return None
    path = Path(value)
    if not path.is_absolute():
        problems.append(f"{name}: expected an absolute path, got {value!r}")
    elif not path.is_dir():
        problems.append(f"{name}: {value!r} is not a directory")
    return path


def _configuration(value: object, problems: list[str]) -> dict[str, ConfigurationUpdate]:
    updates: dict[str, ConfigurationUpdate] = {}
    for name, update in _string_map(value, "componentToConfiguration", problems).items():
        where = f"componentToConfiguration.{name}"
        if not isinstance(update, Mapping):
            problems.append(f"{where}: expected an object with MERGE and/or RESET, got {_kind(update)}")
            continue
        keys = {str(key).upper(): key for key in update}
        unknown = sorted(set(keys) - {"MERGE", "RESET"})
        if unknown:
            problems.append(f"{where}: unknown key {keys[unknown[0]]!r} (expected MERGE and/or RESET)")
        merge = update.get(keys["MERGE"]) if "MERGE" in keys else None
        if isinstance(merge, str):
            try:
                merge = json.loads(merge)
            except json.JSONDecodeError as exc:
                problems.append(f"{where}.MERGE: not valid JSON ({exc.msg})")
                merge = None
        if merge is not None and not isinstance(merge, Mapping):
            problems.append(f"{where}.MERGE: expected an object, got {_kind(merge)}")
            merge = None
        reset = update.get(keys["RESET"], []) if "RESET" in keys else []
        if not isinstance(reset, list) or not all(isinstance(pointer, str) for pointer in reset):
            problems.append(f"{where}.RESET: expected a list of JSON pointer strings")
            reset = []
        for index, pointer in enumerate(reset):
            if pointer and not pointer.startswith("/"):
                problems.append(
                    f"{where}.RESET[{index}]: {pointer!r} is not a JSON pointer (must start with '/')"
                )
        updates[name] = ConfigurationUpdate(merge=merge, reset=tuple(reset))
    return updates


def _timeout(value: object, name: str, default: float, problems: list[str]) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        problems.append(f"{name}: expected a number of seconds >= 0, got {value!r}")
        return default
    return float(value)


def _policies(request: Mapping[str, Any], problems: list[str]) -> tuple[bool, float, float]:
    """The optional cloud-style policies an Edgewise client may add to a local deployment request."""
    update = request.get("componentUpdatePolicy") or {}
    validation = request.get("configurationValidationPolicy") or {}
    if not isinstance(update, Mapping):
        problems.append(f"componentUpdatePolicy: expected an object, got {_kind(update)}")
        update = {}
    if not isinstance(validation, Mapping):
        problems.append(f"configurationValidationPolicy: expected an object, got {_kind(validation)}")
        validation = {}
    action = str(update.get("action") or "SKIP_NOTIFY_COMPONENTS").upper()
    if action not in ("NOTIFY_COMPONENTS", "SKIP_NOTIFY_COMPONENTS"):
        problems.append(
            f"componentUpdatePolicy.action: expected NOTIFY_COMPONENTS or SKIP_NOTIFY_COMPONENTS, got {action!r}"
        )
    update_timeout = _timeout(
        update.get("timeoutInSeconds"),
        "componentUpdatePolicy.timeoutInSeconds",
        DEFAULT_UPDATE_TIMEOUT_SECONDS,
        problems,
    )
    validation_timeout = _timeout(
        validation.get("timeoutInSeconds"),
        "configurationValidationPolicy.timeoutInSeconds",
        DEFAULT_VALIDATION_TIMEOUT_SECONDS,
        problems,
    )
    return action == "NOTIFY_COMPONENTS", update_timeout, validation_timeout


def parse_local_deployment(
    request: Mapping[str, Any], *, timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> DeploymentDocument:
    """Validate a ``CreateLocalDeployment`` request.

    Raises:
        DocumentError: listing every field that is wrong.
    """
    problems: list[str] = []
    group = request.get("groupName") or LOCAL_GROUP
    if not isinstance(group, str):
        problems.append(f"groupName: expected a string, got {_kind(group)}")
        group = LOCAL_GROUP
    to_add: dict[str, str] = {}
    for name, version in _string_map(
        request.get("rootComponentVersionsToAdd"), "rootComponentVersionsToAdd", problems
    ).items():
        if not isinstance(version, str):
            problems.append(
                f"rootComponentVersionsToAdd.{name}: expected a version string, got {_kind(version)}"
            )
            continue
        try:
            Version.parse(version)
        except VersionError as exc:
            problems.append(f"rootComponentVersionsToAdd.{name}: {exc}")
            continue
        to_add[name] = version
    to_remove = request.get("rootComponentsToRemove") or []
    if not isinstance(to_remove, list) or not all(isinstance(name, str) for name in to_remove):
        problems.append("rootComponentsToRemove: expected a list of component names")
        to_remove = []
    for name in to_remove:
        if name in to_add:
            problems.append(f"rootComponentsToRemove: {name!r} is also in rootComponentVersionsToAdd")
    configuration = _configuration(request.get("componentToConfiguration"), problems)
    posix_users: dict[str, str | None] = {}
    resource_limits: dict[str, Mapping[str, Any] | None] = {}
    for name, run_with in _string_map(
        request.get("componentToRunWithInfo"), "componentToRunWithInfo", problems
    ).items():
        if not isinstance(run_with, Mapping):
            problems.append(f"componentToRunWithInfo.{name}: expected an object, got {_kind(run_with)}")
            continue
        user = run_with.get("posixUser")
        if user is not None and not isinstance(user, str):
            problems.append(f"componentToRunWithInfo.{name}.posixUser: expected a string, got {_kind(user)}")
            continue
        # As in a fleet deployment's runWith: the user changes only where one is named, the limits with any entry.
        if "posixUser" in run_with:
            posix_users[name] = user or None
        resource_limits[name] = _resource_limits(
            run_with.get("systemResourceLimits"), f"componentToRunWithInfo.{name}", problems
        )
    policy_text = request.get("failureHandlingPolicy") or FailureHandlingPolicy.ROLLBACK.value
    try:
        policy = FailureHandlingPolicy(str(policy_text).upper())
    except ValueError:
        problems.append(f"failureHandlingPolicy: expected ROLLBACK or DO_NOTHING, got {policy_text!r}")
        policy = FailureHandlingPolicy.ROLLBACK
    recipe_dir = _directory(request.get("recipeDirectoryPath"), "recipeDirectoryPath", problems)
    artifacts_dir = _directory(request.get("artifactsDirectoryPath"), "artifactsDirectoryPath", problems)
    notify, update_timeout, validation_timeout = _policies(request, problems)
    if not to_add and not to_remove and not configuration:
        problems.append("rootComponentVersionsToAdd: a deployment must add, remove or configure a component")
    if problems:
        raise DocumentError(problems)
    return DeploymentDocument(
        deployment_id=str(uuid.uuid4()),
        group=group,
        created_ms=int(time.time() * 1000),
        components_to_add=to_add,
        components_to_remove=tuple(to_remove),
        configuration=configuration,
        posix_users=posix_users,
        resource_limits=resource_limits,
        recipe_dir=recipe_dir,
        artifacts_dir=artifacts_dir,
        failure_policy=policy,
        timeout=timeout,
        notify_components=notify,
        update_timeout=update_timeout,
        validation_timeout=validation_timeout,
    )


# -- fleet deployments -----------------------------------------------------------------------------------

#: Greengrass waits 20 s for validity reports when a document carries no configurationValidationPolicy.
FLEET_VALIDATION_TIMEOUT_SECONDS = DEFAULT_VALIDATION_TIMEOUT_SECONDS
_FLEET_KEYS = frozenset(
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
#: Deployment ids name files under ROOT/deployments/history: no separators, no leading dot.
_DEPLOYMENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_COMPONENT_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
_THING_OR_GROUP_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
_TARGET = re.compile(r"(thing|thinggroup)/([a-zA-Z0-9:_-]{1,128})")
_MAX_TEXT = 2048
_MAX_TIMESTAMP_MS = 2**53


def _text(
    document: Mapping[str, Any], key: str, problems: list[str], *, required: bool = False
) -> str | None:
    value = document.get(key)
    if value is None or (value == "" and not required):
        if required:
            problems.append(f"{key}: required")
        return None
    if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
        problems.append(f"{key}: expected a string of 1-{_MAX_TEXT} characters, got {_kind(value)}")
        return None
    return value


def _unknown_keys(value: Mapping[str, Any], allowed: frozenset[str], where: str, problems: list[str]) -> None:
    for key in sorted(set(value) - allowed):
        problems.append(f"{where}{key}: unknown key (expected one of {', '.join(sorted(allowed))})")


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


def _group(document: Mapping[str, Any], problems: list[str]) -> tuple[str, str]:
    """The group (reference §3.2: from configurationArn, overridden by onBehalfOf) and the ARN."""
    arn = _text(document, "configurationArn", problems, required=True)
    group = ""
    if arn is not None:
        try:
            group = group_of_configuration_arn(arn)
        except ValueError as exc:
            problems.append(f"configurationArn: {exc}")
    on_behalf_of = _text(document, "onBehalfOf", problems)
    if on_behalf_of is not None:
        name = on_behalf_of.rsplit("thinggroup/", 1)[-1] if on_behalf_of.startswith("arn:") else on_behalf_of
        if _THING_OR_GROUP_NAME.fullmatch(name):
            group = f"thinggroup/{name}"
        else:
            problems.append(f"onBehalfOf: expected a thing group name or ARN, got {on_behalf_of!r}")
    return group, arn or ""


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


def _fleet_component(
    name: str, entry: object, problems: list[str]
) -> tuple[
    str | None, ConfigurationUpdate | None, tuple[bool, str | None], tuple[bool, Mapping[str, Any] | None]
]:
    """One ``components`` entry: its version, configuration update, ``(has posixUser, posixUser)`` and
    ``(has runWith, systemResourceLimits)``."""
    where = f"components.{name}"
    if not isinstance(entry, Mapping) or not all(isinstance(key, str) for key in entry):
        problems.append(f"{where}: expected an object with version, got {_kind(entry)}")
        return None, None, (False, None), (False, None)
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
    update: ConfigurationUpdate | None = None
    raw_update = entry.get("configurationUpdate")
    if isinstance(raw_update, Mapping) and all(isinstance(key, str) for key in raw_update):
        _unknown_keys(raw_update, frozenset({"merge", "reset"}), f"{where}.configurationUpdate.", problems)
        merge = raw_update.get("merge")
        if merge is not None and (
            not isinstance(merge, Mapping) or not all(isinstance(key, str) for key in merge)
        ):
            problems.append(f"{where}.configurationUpdate.merge: expected an object, got {_kind(merge)}")
            merge = None
        reset = _reset_pointers(raw_update.get("reset"), f"{where}.configurationUpdate.reset", problems)
        if merge is not None or reset:
            update = ConfigurationUpdate(merge=merge, reset=reset)
    elif raw_update is not None:
        problems.append(f"{where}.configurationUpdate: expected an object, got {_kind(raw_update)}")
    run_with = entry.get("runWith")
    user: tuple[bool, str | None] = (False, None)
    limits: tuple[bool, Mapping[str, Any] | None] = (False, None)
    if isinstance(run_with, Mapping) and all(isinstance(key, str) for key in run_with):
        _unknown_keys(run_with, _RUN_WITH_KEYS, f"{where}.runWith.", problems)
        if "posixUser" in run_with:
            posix_user = run_with["posixUser"]
            if posix_user is not None and not isinstance(posix_user, str):
                problems.append(f"{where}.runWith.posixUser: expected a string, got {_kind(posix_user)}")
            else:
                user = (True, posix_user or None)
        limits = (True, _resource_limits(run_with.get("systemResourceLimits"), f"{where}.runWith", problems))
    elif run_with is not None:
        problems.append(f"{where}.runWith: expected an object, got {_kind(run_with)}")
    return version, update, user, limits


def _resource_limits(value: object, where: str, problems: list[str]) -> Mapping[str, Any] | None:
    """``systemResourceLimits`` of a ``runWith``: ``memory`` (KB, a whole number) and ``cpus`` (cores), both
    positive; None when absent."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
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
    return limits or None


def _fleet_policies(document: Mapping[str, Any], problems: list[str]) -> tuple[bool, float, float]:
    """``componentUpdatePolicy`` and ``configurationValidationPolicy`` (reference §3.2 spelling)."""
    update = document.get("componentUpdatePolicy")
    if update is None:
        update = {}
    elif not isinstance(update, Mapping) or not all(isinstance(key, str) for key in update):
        problems.append(f"componentUpdatePolicy: expected an object, got {_kind(update)}")
        update = {}
    _unknown_keys(update, frozenset({"timeout", "action"}), "componentUpdatePolicy.", problems)
    action = update.get("action", "NOTIFY_COMPONENTS")
    if action not in ("NOTIFY_COMPONENTS", "SKIP_NOTIFY_COMPONENTS"):
        problems.append(
            f"componentUpdatePolicy.action: expected NOTIFY_COMPONENTS or SKIP_NOTIFY_COMPONENTS, got {action!r}"
        )
    update_timeout = _timeout(
        update.get("timeout"), "componentUpdatePolicy.timeout", DEFAULT_UPDATE_TIMEOUT_SECONDS, problems
    )
    validation = document.get("configurationValidationPolicy")
    if validation is None:
        validation = {}
    elif not isinstance(validation, Mapping) or not all(isinstance(key, str) for key in validation):
        problems.append(f"configurationValidationPolicy: expected an object, got {_kind(validation)}")
        validation = {}
    _unknown_keys(validation, frozenset({"timeout"}), "configurationValidationPolicy.", problems)
    validation_timeout = _timeout(
        validation.get("timeout"),
        "configurationValidationPolicy.timeout",
        FLEET_VALIDATION_TIMEOUT_SECONDS,
        problems,
    )
    return action == "NOTIFY_COMPONENTS", update_timeout, validation_timeout


def parse_fleet_deployment(
    document: object, *, timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> DeploymentDocument:
    """Validate the Greengrass device-side deployment document a deployment job carries (reference §3.2).

    The deployment replaces the root components of its group (``thing/<name>`` or ``thinggroup/<name>``,
    from ``configurationArn``, or ``onBehalfOf`` when given); components of other groups stay.

    Raises:
        DocumentError: listing every field that is wrong.
    """
    if not isinstance(document, Mapping) or not all(isinstance(key, str) for key in document):
        raise DocumentError([f"the deployment document: expected an object, got {_kind(document)}"])
    problems: list[str] = []
    _unknown_keys(document, _FLEET_KEYS, "", problems)
    deployment_id = _text(document, "deploymentId", problems, required=True)
    if deployment_id is not None and not _DEPLOYMENT_ID.fullmatch(deployment_id):
        problems.append(
            f"deploymentId: expected 1-128 letters, digits, '_', '.' or '-' starting with a letter or digit, "
            f"got {deployment_id!r}"
        )
    for key in ("schemaDate", "deploymentName", "parentTargetArn"):
        _text(document, key, problems)
    group, arn = _group(document, problems)
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
    components = document.get("components")
    to_add: dict[str, str] = {}
    configuration: dict[str, ConfigurationUpdate] = {}
    posix_users: dict[str, str | None] = {}
    resource_limits: dict[str, Mapping[str, Any] | None] = {}
    if not isinstance(components, Mapping) or not all(isinstance(key, str) for key in components):
        problems.append(f"components: expected an object of component names, got {_kind(components)}")
        components = {}
    for name, entry in components.items():
        if not _COMPONENT_NAME.fullmatch(name) or name in (".", ".."):
            problems.append(
                f"components: {name[:200]!r} is not a component name (1-128 letters, digits, '.', '_', '-')"
            )
            continue
        version, update, (has_user, user), (has_run_with, limits) = _fleet_component(name, entry, problems)
        if version is not None:
            to_add[name] = version
        if update is not None:
            configuration[name] = update
        if has_user:
            posix_users[name] = user
        if has_run_with:
            resource_limits[name] = limits
    policy_text = document.get("failureHandlingPolicy", FailureHandlingPolicy.ROLLBACK.value)
    try:
        policy = FailureHandlingPolicy(policy_text)
    except ValueError:
        problems.append(f"failureHandlingPolicy: expected ROLLBACK or DO_NOTHING, got {policy_text!r}")
        policy = FailureHandlingPolicy.ROLLBACK
    notify, update_timeout, validation_timeout = _fleet_policies(document, problems)
    if problems:
        raise DocumentError(problems)
    assert deployment_id is not None
    return DeploymentDocument(
        deployment_id=deployment_id,
        group=group,
        created_ms=created,
        components_to_add=to_add,
        configuration=configuration,
        posix_users=posix_users,
        resource_limits=resource_limits,
        failure_policy=policy,
        timeout=timeout,
        notify_components=notify,
        update_timeout=update_timeout,
        validation_timeout=validation_timeout,
        replace_group_roots=True,
        configuration_arn=arn,
    )

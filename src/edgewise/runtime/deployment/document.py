"""Deployment documents: what a deployment asks for, validated, in one normalized shape.

Local deployments arrive as the IPC ``CreateLocalDeployment`` request (what ``greengrass-cli deployment
create`` sends); :func:`parse_local_deployment` checks every field and names the ones that are wrong. Fleet
deployments arrive as the job document of a deployment job (docs/device-protocol.md), whose shape and checks
live in :mod:`edgewise.protocol.deployment`; :func:`parse_fleet_deployment` reads it with them and turns it into
a :class:`DeploymentDocument`.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from edgewise.protocol.deployment import (
    DEFAULT_UPDATE_TIMEOUT_SECONDS,
    DEFAULT_VALIDATION_TIMEOUT_SECONDS,
    ConfigurationUpdate,
    DeploymentDocumentError,
    SystemResourceLimits,
    parse_document,
    parse_resource_limits,
)
from edgewise.runtime.deployment.errors import DocumentError
from edgewise.versions import Version, VersionError

LOCAL_GROUP = "LOCAL_DEPLOYMENT"
DEFAULT_TIMEOUT_SECONDS = 600.0


class FailureHandlingPolicy(StrEnum):
    """What a failed deployment does (its ``failureHandlingPolicy``)."""

    ROLLBACK = "ROLLBACK"  #: restore the previous components and configuration
    DO_NOTHING = "DO_NOTHING"  #: leave the failed set as it is


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
    #: A fleet deployment replaces its group's root components, not other groups'; local ones add and remove.
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


def _limits(limits: SystemResourceLimits | None) -> Mapping[str, Any] | None:
    """The limits a deployment sets: None (no limits) where ``systemResourceLimits`` is absent or empty."""
    if limits is None:
        return None
    given = {
        key: value for key, value in (("memory", limits.memory), ("cpus", limits.cpus)) if value is not None
    }
    return given or None


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
        resource_limits[name] = _limits(
            parse_resource_limits(
                run_with.get("systemResourceLimits"), f"componentToRunWithInfo.{name}", problems
            )
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


def parse_fleet_deployment(
    document: object, *, timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> DeploymentDocument:
    """Validate the Greengrass device-side deployment document a deployment job carries.

    The deployment replaces the root components of its group (``thing/<name>`` or ``thinggroup/<name>``,
    from ``configurationArn``, or ``onBehalfOf`` when given); components of other groups stay.

    Raises:
        DocumentError: listing every field that is wrong.
    """
    try:
        fleet = parse_document(document)
    except DeploymentDocumentError as exc:
        raise DocumentError(exc.problems) from exc
    configuration: dict[str, ConfigurationUpdate] = {}
    posix_users: dict[str, str | None] = {}
    resource_limits: dict[str, Mapping[str, Any] | None] = {}
    for name, component in fleet.components.items():
        update = component.configuration_update
        if update is not None and (update.merge is not None or update.reset):
            configuration[name] = update
        run_with = component.run_with
        if run_with is not None:
            # A runWith changes the user only where it names one, and the limits always.
            if run_with.posix_user is not None:
                posix_users[name] = run_with.posix_user or None
            resource_limits[name] = _limits(run_with.system_resource_limits)
    return DeploymentDocument(
        deployment_id=fleet.deployment_id,
        group=fleet.group,
        created_ms=fleet.creation_timestamp,
        components_to_add={name: component.version for name, component in fleet.components.items()},
        configuration=configuration,
        posix_users=posix_users,
        resource_limits=resource_limits,
        failure_policy=FailureHandlingPolicy(fleet.failure_handling_policy),
        timeout=timeout,
        notify_components=fleet.component_update_policy.action == "NOTIFY_COMPONENTS",
        update_timeout=fleet.component_update_policy.timeout,
        validation_timeout=fleet.configuration_validation_policy.timeout,
        replace_group_roots=True,
        configuration_arn=fleet.configuration_arn,
    )

"""Planning a deployment: from a resolution and a document to the next ``services`` tree.

The tree is what the runtime persists and runs, shaped like the Greengrass nucleus's: per component its
version, type, dependencies, selected lifecycle (not yet interpolated), configuration and ``runWith``.
Configuration follows Greengrass's rules: reset pointers first, recipe defaults fill only what is missing,
then the merge (objects key by key, lists and scalars replaced whole). Pure functions, no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from edgewise import GREENGRASS_COMPATIBILITY_VERSION
from edgewise.aws_components import NUCLEUS
from edgewise.errors import EdgewiseError
from edgewise.protocol.deployment import ConfigurationUpdate
from edgewise.recipe import (
    ComponentType,
    Recipe,
    VariableContext,
    interpolate_configuration,
    select_lifecycle,
    select_manifest,
)
from edgewise.runtime.config import ConfigError, parse_pointer
from edgewise.runtime.deployment.document import DeploymentDocument
from edgewise.runtime.deployment.errors import DeploymentError
from edgewise.runtime.deployment.resolution import Resolution
from edgewise.runtime.specs import lifecycle_to_tree

Tree = dict[str, Any]

#: The variables a component's configuration may use: (name, version, configuration) → context.
ContextFactory = Callable[[str, str, Any], VariableContext]
#: Interpolates a configuration value of a component: (value, configuration looked up) → value.
Interpolator = Callable[[Any, Tree], Any]


def fill_defaults(config: Tree, defaults: Mapping[str, Any]) -> None:
    """Add what ``defaults`` has and ``config`` lacks, recursively (defaults merge with timestamp 1)."""
    for key, value in defaults.items():
        if key not in config:
            config[key] = copy.deepcopy(value)
        elif isinstance(config[key], dict) and isinstance(value, Mapping):
            fill_defaults(config[key], value)


def merge_into(config: Tree, update: Mapping[str, Any]) -> None:
    """Merge ``update`` into ``config``: objects key by key, everything else (lists included) replaced."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(config.get(key), dict):
            merge_into(config[key], value)
        else:
            config[key] = copy.deepcopy(value) if isinstance(value, (Mapping, list)) else value


def reset_pointer(config: Tree, pointer: str) -> Tree:
    """Remove the node at a JSON pointer; ``""`` empties the whole configuration.

    Raises:
        DeploymentError: the pointer is malformed or addresses a list element (lists reset whole).
    """
    try:
        path = parse_pointer(pointer)
    except ConfigError as exc:
        raise DeploymentError(f"RESET pointer {pointer!r}: {exc}", error_types=("REQUEST_ERROR",)) from exc
    if not path:
        return {}
    node: Any = config
    for segment in path[:-1]:
        if isinstance(node, list):
            raise DeploymentError(
                f"RESET pointer {pointer!r} addresses a list element; reset the whole list instead",
                error_types=("REQUEST_ERROR",),
            )
        if not isinstance(node, dict) or segment not in node:
            return config
        node = node[segment]
    if isinstance(node, list):
        raise DeploymentError(
            f"RESET pointer {pointer!r} addresses a list element; reset the whole list instead",
            error_types=("REQUEST_ERROR",),
        )
    if isinstance(node, dict):
        node.pop(path[-1], None)
    return config


def plan_configuration(
    current: Mapping[str, Any] | None,
    defaults: Mapping[str, Any],
    update: ConfigurationUpdate | None,
    *,
    interpolate: Interpolator | None = None,
) -> Tree:
    """A component's next configuration: reset, then recipe defaults where missing, then the merge.

    With ``interpolate`` (``interpolateComponentConfiguration``), the recipe defaults and the merged values
    are interpolated before they are applied, as Greengrass does: ``{configuration:...}`` reads the defaults
    with the merge applied, not the stored configuration, and values already stored are left as they are.
    """
    config: Tree = copy.deepcopy(dict(current)) if current else {}
    if update is not None:
        for pointer in update.reset:
            config = reset_pointer(config, pointer)
    merge = update.merge if update is not None else None
    if interpolate is not None:
        written: Tree = {}
        fill_defaults(written, defaults)
        if merge:
            merge_into(written, merge)
        defaults = interpolate(defaults, written)
        merge = interpolate(merge, written) if merge else merge
    fill_defaults(config, defaults)
    if merge:
        merge_into(config, merge)
    return config


def interpolates_configuration(nucleus: Mapping[str, Any]) -> bool:
    """True when the nucleus configuration turns ``interpolateComponentConfiguration`` on (a boolean, or the
    text ``true`` in any case, as Greengrass coerces it)."""
    value = (nucleus.get("configuration") or {}).get("interpolateComponentConfiguration")
    return value is True or (isinstance(value, str) and value.strip().casefold() == "true")


def builtin_service(
    current: Mapping[str, Any] | None, update: ConfigurationUpdate | None, *, requested: str | None = None
) -> Tree:
    """A built-in component's entry: listed like any component, configured by deployments, never run.

    ``version`` is the version served; ``requestedVersion``, when a deployment or a dependency named the
    built-in, is what it asked for (``2.4.0`` of a document written for an older nucleus, say).
    """
    service: Tree = {
        "version": GREENGRASS_COMPATIBILITY_VERSION,
        "componentType": ComponentType.NUCLEUS.value,
        "dependencies": {},
        "lifecycle": {},
        "configuration": plan_configuration(current.get("configuration") if current else None, {}, update),
    }
    if requested is not None:
        service["requestedVersion"] = requested
    return service


def plan_services(
    current: Mapping[str, Any],
    resolution: Resolution,
    document: DeploymentDocument,
    *,
    roots: Mapping[str, str],
    platform: Mapping[str, str],
    context: ContextFactory | None = None,
) -> Tree:
    """The next ``services`` tree for a deployment.

    ``context`` gives the recipe variables of a component; they are interpolated into its configuration when
    the planned nucleus configuration (this deployment's included) has ``interpolateComponentConfiguration``.

    Raises:
        DeploymentError: a component has no manifest for this platform, or a RESET pointer is invalid.
    """
    services: Tree = {}
    for name in sorted({NUCLEUS, *resolution.builtins}):
        update = document.configuration.get(name) if name in roots else None
        services[name] = builtin_service(current.get(name), update, requested=resolution.requested.get(name))
        check = BUILTIN_CONFIGURATION_CHECKS.get(name)
        if check is not None:
            _check_builtin(check, services[name])
    if context is not None and not interpolates_configuration(services[NUCLEUS]):
        context = None
    for name, recipe in sorted(resolution.components.items()):
        services[name] = _plan_component(
            current.get(name), recipe, document, roots=roots, platform=platform, context=context
        )
    return services


def _check_log_manager(configuration: Any) -> None:
    from edgewise.runtime.log_component import parse_log_settings

    parse_log_settings(configuration)


def _check_shadow_manager(configuration: Any) -> None:
    from edgewise.runtime.shadow.settings import parse_shadow_settings

    parse_shadow_settings(configuration)


def _check_bridge(configuration: Any) -> None:
    from edgewise.runtime.clientdevices.bridge_settings import parse_bridge_settings

    parse_bridge_settings(configuration)


def _check_ip_detector(configuration: Any) -> None:
    from edgewise.runtime.clientdevices.ip_detector import parse_ip_detector_settings

    parse_ip_detector_settings(configuration)


def _check_auth(configuration: Any) -> None:
    from edgewise.runtime.clientdevices.auth_settings import parse_auth_settings

    parse_auth_settings(configuration)


def _check_moquette(configuration: Any) -> None:
    from edgewise.runtime.clientdevices.broker import find_mosquitto
    from edgewise.runtime.clientdevices.broker_settings import parse_broker_settings

    parse_broker_settings(configuration, "aws.greengrass.clientdevices.mqtt.Moquette")
    find_mosquitto()


def _check_emqx(configuration: Any) -> None:
    from edgewise.runtime.clientdevices.broker import find_mosquitto
    from edgewise.runtime.clientdevices.broker_settings import parse_broker_settings

    parse_broker_settings(configuration, "aws.greengrass.clientdevices.mqtt.EMQX")
    find_mosquitto()


#: Built-in components whose configuration is checked when a deployment is planned: name -> a check that raises
#: an :class:`~edgewise.errors.EdgewiseError` naming the key at fault. Each check imports its parser when it runs,
#: so planning a deployment that does not name the component loads nothing of it.
BUILTIN_CONFIGURATION_CHECKS: Mapping[str, Callable[[Any], None]] = {
    "aws.greengrass.LogManager": _check_log_manager,
    "aws.greengrass.ShadowManager": _check_shadow_manager,
    "aws.greengrass.clientdevices.mqtt.Bridge": _check_bridge,
    "aws.greengrass.clientdevices.IPDetector": _check_ip_detector,
    "aws.greengrass.clientdevices.Auth": _check_auth,
    "aws.greengrass.clientdevices.mqtt.Moquette": _check_moquette,
    "aws.greengrass.clientdevices.mqtt.EMQX": _check_emqx,
}


def _check_builtin(check: Callable[[Any], None], service: Mapping[str, Any]) -> None:
    """Refuse a built-in's configuration that cannot be used, naming its key."""
    try:
        check(service.get("configuration"))
    except EdgewiseError as error:
        raise DeploymentError(str(error), error_types=("COMPONENT_CONFIGURATION_REJECTED",)) from error


def _plan_component(
    current: Mapping[str, Any] | None,
    recipe: Recipe,
    document: DeploymentDocument,
    *,
    roots: Mapping[str, str],
    platform: Mapping[str, str],
    context: ContextFactory | None,
) -> Tree:
    manifest = select_manifest(recipe, platform)
    if manifest is None:
        attributes = ", ".join(f"{key}={value}" for key, value in sorted(platform.items()))
        raise DeploymentError(
            f"No manifest of {recipe.name} {recipe.version} matches this device ({attributes})",
            error_types=("COMPONENT_RECIPE_ERROR",),
        )
    previous_config = current.get("configuration") if current else None
    # Only root components take configuration updates; as in Greengrass, dependencies keep what they have.
    update = document.configuration.get(recipe.name) if recipe.name in roots else None
    run_with: Tree = dict(current.get("runWith") or {}) if current else {}
    if recipe.name in document.posix_users:
        user = document.posix_users[recipe.name]
        if user:
            run_with["posixUser"] = user
        else:
            run_with.pop("posixUser", None)
    if recipe.name in document.resource_limits:
        # A runWith without systemResourceLimits removes the component's own limits, as in Greengrass.
        limits = document.resource_limits[recipe.name]
        if limits:
            run_with["systemResourceLimits"] = dict(limits)
        else:
            run_with.pop("systemResourceLimits", None)
    return {
        "version": recipe.version,
        "componentType": recipe.component_type.value,
        "dependencies": {dep.name: dep.dependency_type.value for dep in recipe.dependencies.values()},
        "lifecycle": lifecycle_to_tree(select_lifecycle(recipe, manifest)),
        "configuration": plan_configuration(
            previous_config,
            recipe.default_configuration,
            update,
            interpolate=None if context is None else _interpolator(recipe, context),
        ),
        "runWith": run_with,
    }


def _interpolator(recipe: Recipe, context: ContextFactory) -> Interpolator:
    def interpolate(value: Any, configuration: Tree) -> Any:
        return interpolate_configuration(value, context(recipe.name, recipe.version, configuration))

    return interpolate


def bootstrap_order(previous: Mapping[str, Any], planned: Mapping[str, Any]) -> list[str]:
    """The components of ``planned`` whose Bootstrap step must run, dependencies first: those
    with a Bootstrap step that are new, change version, or change their Bootstrap step."""
    wanted: set[str] = set()
    for name, node in planned.items():
        lifecycle = node.get("lifecycle") or {}
        if node.get("componentType") == ComponentType.NUCLEUS.value or "Bootstrap" not in lifecycle:
            continue
        before = previous.get(name) or {}
        if before.get("version") != node.get("version") or (before.get("lifecycle") or {}).get(
            "Bootstrap"
        ) != lifecycle.get("Bootstrap"):
            wanted.add(name)
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in planned:
            return
        seen.add(name)
        for dependency in sorted(planned[name].get("dependencies") or {}):
            visit(dependency)
        if name in wanted:
            order.append(name)

    for name in sorted(planned):
        visit(name)
    return order

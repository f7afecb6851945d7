"""Planning a deployment: from a resolution and a document to the next ``services`` tree.

The tree is what the runtime persists and runs (reference §1.10): per component its version, type,
dependencies, selected lifecycle (not yet interpolated), configuration and ``runWith``. Configuration follows
reference §3.3: reset pointers first, recipe defaults fill only what is missing, then the merge (objects key by
key, lists and scalars replaced whole). Pure functions, no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from edgewise import GREENGRASS_COMPATIBILITY_VERSION
from edgewise.recipe import ComponentType, Recipe, select_lifecycle, select_manifest
from edgewise.runtime.config import ConfigError, parse_pointer
from edgewise.runtime.deployment.document import ConfigurationUpdate, DeploymentDocument
from edgewise.runtime.deployment.errors import DeploymentError
from edgewise.runtime.deployment.resolution import Resolution
from edgewise.runtime.specs import lifecycle_to_tree

NUCLEUS = "aws.greengrass.Nucleus"
Tree = dict[str, Any]


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
    current: Mapping[str, Any] | None, defaults: Mapping[str, Any], update: ConfigurationUpdate | None
) -> Tree:
    """A component's next configuration (reference §3.3)."""
    config: Tree = copy.deepcopy(dict(current)) if current else {}
    if update is not None:
        for pointer in update.reset:
            config = reset_pointer(config, pointer)
    fill_defaults(config, defaults)
    if update is not None and update.merge:
        merge_into(config, update.merge)
    return config


#: Components built into the runtime: deployable and configurable, their lifecycle never runs.
BUILTIN_COMPONENTS = (
    NUCLEUS,
    "aws.greengrass.Cli",
    "aws.greengrass.SecretManager",
    "aws.greengrass.ShadowManager",
)
BUILTIN_VERSIONS = dict.fromkeys(BUILTIN_COMPONENTS, GREENGRASS_COMPATIBILITY_VERSION)


def builtin_service(current: Mapping[str, Any] | None, update: ConfigurationUpdate | None) -> Tree:
    """A built-in component's entry: listed like any component, configured by deployments, never run."""
    return {
        "version": GREENGRASS_COMPATIBILITY_VERSION,
        "componentType": ComponentType.NUCLEUS.value,
        "dependencies": {},
        "lifecycle": {},
        "configuration": plan_configuration(current.get("configuration") if current else None, {}, update),
    }


def plan_services(
    current: Mapping[str, Any],
    resolution: Resolution,
    document: DeploymentDocument,
    *,
    roots: Mapping[str, str],
    platform: Mapping[str, str],
) -> Tree:
    """The next ``services`` tree for a deployment.

    Raises:
        DeploymentError: a component has no manifest for this platform, or a RESET pointer is invalid.
    """
    services: Tree = {}
    for name in sorted({NUCLEUS, *resolution.builtins}):
        update = document.configuration.get(name) if name in roots else None
        services[name] = builtin_service(current.get(name), update)
    for name, recipe in sorted(resolution.components.items()):
        services[name] = _plan_component(current.get(name), recipe, document, roots=roots, platform=platform)
    return services


def _plan_component(
    current: Mapping[str, Any] | None,
    recipe: Recipe,
    document: DeploymentDocument,
    *,
    roots: Mapping[str, str],
    platform: Mapping[str, str],
) -> Tree:
    manifest = select_manifest(recipe, platform)
    if manifest is None:
        attributes = ", ".join(f"{key}={value}" for key, value in sorted(platform.items()))
        raise DeploymentError(
            f"No manifest of {recipe.name} {recipe.version} matches this device ({attributes})",
            error_types=("COMPONENT_RECIPE_ERROR",),
        )
    previous_config = current.get("configuration") if current else None
    # Only root components take configuration updates (reference §3.3).
    update = document.configuration.get(recipe.name) if recipe.name in roots else None
    run_with: Tree = dict(current.get("runWith") or {}) if current else {}
    if recipe.name in document.posix_users:
        user = document.posix_users[recipe.name]
        if user:
            run_with["posixUser"] = user
        else:
            run_with.pop("posixUser", None)
    return {
        "version": recipe.version,
        "componentType": recipe.component_type.value,
        "dependencies": {dep.name: dep.dependency_type.value for dep in recipe.dependencies.values()},
        "lifecycle": lifecycle_to_tree(select_lifecycle(recipe, manifest)),
        "configuration": plan_configuration(previous_config, recipe.default_configuration, update),
        "runWith": run_with,
    }

"""Greengrass v2 component recipes: model, parsing, validation, platform matching, variables."""

from __future__ import annotations

import typing

from edgewise.recipe._errors import RecipeError, RecipeProblem
from edgewise.recipe._lifecycle import select_lifecycle
from edgewise.recipe._model import (
    STEP_NAMES,
    Artifact,
    ArtifactPermission,
    ComponentDependency,
    ComponentType,
    DependencyType,
    Lifecycle,
    LifecycleStep,
    Manifest,
    PermissionLevel,
    Recipe,
    Skipif,
    Unarchive,
)
from edgewise.recipe._platform import detect_platform, platform_matches, select_manifest
from edgewise.recipe._variables import (
    ComponentVariables,
    VariableContext,
    interpolate,
    interpolate_configuration,
    interpolate_lifecycle,
)

if typing.TYPE_CHECKING:
    from edgewise.recipe._parse import load_recipe, parse_recipe

#: Loaded on first use: parsing needs PyYAML and node-semver, which the runtime only needs when a deployment
#: arrives, while the model, platform matching and variables are needed to run the installed components.
_LAZY = {"load_recipe", "parse_recipe"}


def __getattr__(name: str) -> typing.Any:
    if name in _LAZY:
        from edgewise.recipe import _parse

        return getattr(_parse, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = [
    "STEP_NAMES",
    "Artifact",
    "ArtifactPermission",
    "ComponentDependency",
    "ComponentType",
    "ComponentVariables",
    "DependencyType",
    "Lifecycle",
    "LifecycleStep",
    "Manifest",
    "PermissionLevel",
    "Recipe",
    "RecipeError",
    "RecipeProblem",
    "Skipif",
    "Unarchive",
    "VariableContext",
    "detect_platform",
    "interpolate",
    "interpolate_configuration",
    "interpolate_lifecycle",
    "load_recipe",
    "parse_recipe",
    "platform_matches",
    "select_lifecycle",
    "select_manifest",
]

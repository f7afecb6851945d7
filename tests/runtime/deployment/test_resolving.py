"""Stage *resolve*: the union of every group's roots, and errors that name the groups involved."""

from __future__ import annotations

from typing import Any

import pytest

from edgewise.aws_components import BUILTIN_VERSIONS
from edgewise.recipe import Recipe, parse_recipe
from edgewise.runtime.deployment import DeploymentError
from edgewise.runtime.deployment.resolving import resolve_groups


def recipe_document(name: str, version: str, dependencies: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentDependencies": {
            dependency: {"VersionRequirement": requirement}
            for dependency, requirement in (dependencies or {}).items()
        },
        "Manifests": [{"Lifecycle": {"Run": "true"}}],
    }


def recipes(*pairs: tuple[str, str, dict[str, str] | None]) -> dict[str, list[Recipe]]:
    found: dict[str, list[Recipe]] = {}
    for name, version, dependencies in pairs:
        found.setdefault(name, []).append(parse_recipe(recipe_document(name, version, dependencies)))
    return found


def test_the_union_of_every_groups_roots_is_resolved() -> None:
    candidates = recipes(("App", "1.0.0", {"Lib": ">=1.0.0"}), ("Lib", "1.0.0", None), ("Lib", "1.5.0", None))

    resolution = resolve_groups(
        {"thinggroup/apps": {"App": "1.0.0"}, "thinggroup/libs": {"Lib": "1.0.0"}},
        candidates,
        builtins=BUILTIN_VERSIONS,
    )

    assert {name: recipe.version for name, recipe in resolution.components.items()} == {
        "App": "1.0.0",
        "Lib": "1.0.0",
    }


def test_two_groups_deploying_one_component_at_different_versions_are_both_named() -> None:
    candidates = recipes(("Lib", "1.0.0", None), ("Lib", "2.0.0", None))

    with pytest.raises(DeploymentError) as caught:
        resolve_groups(
            {"thinggroup/a": {"Lib": "1.0.0"}, "thinggroup/b": {"Lib": "2.0.0"}},
            candidates,
            builtins=BUILTIN_VERSIONS,
        )

    assert str(caught.value) == "Lib is deployed at 1.0.0 by thinggroup/a and at 2.0.0 by thinggroup/b"
    assert caught.value.error_types == ("COMPONENT_VERSION_CONFLICT",)


def test_a_dependency_conflict_between_groups_names_both_groups() -> None:
    candidates = recipes(("App", "1.0.0", {"Lib": "^1.0.0"}), ("Lib", "1.0.0", None), ("Lib", "2.0.0", None))

    with pytest.raises(DeploymentError) as caught:
        resolve_groups(
            {"thinggroup/apps": {"App": "1.0.0"}, "thinggroup/libs": {"Lib": "2.0.0"}, "thinggroup/x": {}},
            candidates,
            builtins=BUILTIN_VERSIONS,
        )

    message = str(caught.value)
    assert "Lib is required through thinggroup/apps (App 1.0.0) and thinggroup/libs (Lib 2.0.0)" in message
    assert "thinggroup/x" not in message
    assert caught.value.error_types == ("DEPENDENCY_RESOLUTION_ERROR",)

"""Lifecycle selection (manifest or global with selections) and conversion to the Lifecycle model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgewise.recipe import (
    Lifecycle,
    LifecycleStep,
    Manifest,
    Recipe,
    RecipeError,
    Skipif,
    load_recipe,
    parse_recipe,
    select_lifecycle,
    select_manifest,
)

FIXTURES = Path(__file__).parent / "fixtures"
SELECTOR = load_recipe(FIXTURES / "global_lifecycle.yaml")


def recipe_with(lifecycle: dict[str, Any], **manifest: Any) -> Recipe:
    return parse_recipe(
        {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": "com.example.Life",
            "ComponentVersion": "1.0.0",
            "Manifests": [{"Lifecycle": lifecycle, **manifest}],
        }
    )


def only_lifecycle(lifecycle: dict[str, Any]) -> Lifecycle:
    recipe = recipe_with(lifecycle)
    return select_lifecycle(recipe, recipe.manifests[0])


def test_string_steps_become_steps_with_defaults() -> None:
    assert only_lifecycle({"Run": "python3 app.py"}) == Lifecycle(
        steps={"Run": LifecycleStep(script="python3 app.py")}
    )


def test_step_objects_are_read_with_every_field() -> None:
    lifecycle = only_lifecycle(
        {
            "setenv": {"LEVEL": "info", "RETRIES": 3, "RATIO": 0.5, "DEBUG": False, "EMPTY": None},
            "ERRORRESETTIME": "120",
            "install": {
                "SCRIPT": "pip install -r requirements.txt",
                "timeout": "300",
                "requiresprivilege": "TRUE",
                "skipIf": "! exists /opt/done",
                "setEnv": {"PIP_NO_CACHE_DIR": 1},
            },
            "Startup": {"Script": "./start", "Timeout": 30.5, "RequiresPrivilege": False},
            "recover": {"Skipif": "onpath  /usr/bin/systemctl  "},
        }
    )

    assert lifecycle == Lifecycle(
        steps={
            "Install": LifecycleStep(
                script="pip install -r requirements.txt",
                timeout=300.0,
                requires_privilege=True,
                setenv={"PIP_NO_CACHE_DIR": "1"},
                skipif=Skipif(check="exists", target="/opt/done", negate=True),
            ),
            "Startup": LifecycleStep(script="./start", timeout=30.5),
            "Recover": LifecycleStep(script="", skipif=Skipif(check="onpath", target="/usr/bin/systemctl")),
        },
        setenv={"LEVEL": "info", "RETRIES": "3", "RATIO": "0.5", "DEBUG": "false", "EMPTY": ""},
        error_reset_time=120.0,
    )


def test_step_names_come_out_in_canonical_spelling_and_order() -> None:
    lifecycle = only_lifecycle(
        {"UNINSTALL": "u", "shutdown": "s", "RUN": "r", "bootstrap": "b", "Recover": "c", "install": "i"}
    )

    assert list(lifecycle.steps) == ["Bootstrap", "Install", "Run", "Shutdown", "Recover", "Uninstall"]


def test_unknown_lifecycle_keys_and_null_steps_are_ignored() -> None:
    assert only_lifecycle({"Run": None, "Reboot": "now", "Install": "i"}) == Lifecycle(
        steps={"Install": LifecycleStep(script="i")}
    )


def test_multi_line_scripts_are_kept_verbatim() -> None:
    recipe = load_recipe(FIXTURES / "hello_world.yaml")

    lifecycle = select_lifecycle(recipe, recipe.manifests[0])

    assert lifecycle.steps["Run"].script == (
        'python3 -u {artifacts:path}/hello_world.py "{configuration:/Message}"\n'
    )


def test_a_manifest_lifecycle_wins_over_the_global_one() -> None:
    recipe = parse_recipe(
        {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": "com.example.Life",
            "ComponentVersion": "1.0.0",
            "Manifests": [{"Lifecycle": {"Run": "manifest"}}],
            "Lifecycle": {"Run": "global", "Install": "global install"},
        }
    )

    assert select_lifecycle(recipe, recipe.manifests[0]).steps == {"Run": LifecycleStep(script="manifest")}


def test_linux_selection_picks_linux_branches_and_falls_back_to_all() -> None:
    manifest = select_manifest(SELECTOR, {"os": "linux"})
    assert manifest is not None
    assert manifest.name == "Linux"

    assert select_lifecycle(SELECTOR, manifest) == Lifecycle(
        steps={
            "Install": LifecycleStep(script="./install.sh", timeout=300.0, requires_privilege=True),
            "Run": LifecycleStep(
                script="./run.sh", skipif=Skipif(check="onpath", target="python3", negate=True)
            ),
        },
        setenv={"GREETING": "hello"},
        error_reset_time=600.0,
    )


def test_windows_selection_picks_windows_branches() -> None:
    manifest = select_manifest(SELECTOR, {"os": "windows"})
    assert manifest is not None
    assert manifest.name == "Windows"

    assert select_lifecycle(SELECTOR, manifest).steps == {
        "Install": LifecycleStep(script="install.cmd"),
        "Run": LifecycleStep(script="run.cmd", skipif=Skipif(check="exists", target="C:\\done")),
        "Shutdown": LifecycleStep(script="stop.cmd"),
    }


def test_a_manifest_without_selections_only_gets_the_all_branches() -> None:
    manifest = select_manifest(SELECTOR, {"os": "darwin"})
    assert manifest is not None
    assert manifest.name == "Everything else"

    assert select_lifecycle(SELECTOR, manifest).steps == {
        "Run": LifecycleStep(
            script="echo unsupported", skipif=Skipif(check="onpath", target="python3", negate=True)
        ),
    }


def test_selections_are_tried_in_the_manifest_order() -> None:
    recipe = parse_recipe(
        {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": "com.example.Life",
            "ComponentVersion": "1.0.0",
            "Manifests": [{"Selections": ["raspbian", "linux"]}],
            "Lifecycle": {"linux": {"Run": "generic"}, "raspbian": {"Run": "pi"}, "all": {"Run": "fallback"}},
        }
    )

    assert select_lifecycle(recipe, recipe.manifests[0]).steps["Run"].script == "pi"


def test_non_selector_keys_beside_selectors_are_ignored() -> None:
    recipe = parse_recipe(
        {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": "com.example.Life",
            "ComponentVersion": "1.0.0",
            "Manifests": [{"Selections": ["linux"]}],
            "Lifecycle": {"Install": "ignored", "linux": {"Run": "chosen"}},
        }
    )

    assert select_lifecycle(recipe, recipe.manifests[0]).steps == {"Run": LifecycleStep(script="chosen")}


def test_selection_keys_are_case_sensitive_labels() -> None:
    recipe = parse_recipe(
        {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": "com.example.Life",
            "ComponentVersion": "1.0.0",
            "Manifests": [{"Selections": ["linux"]}],
            "Lifecycle": {"Linux": {"Run": "not a selector"}, "Run": "top"},
        }
    )

    assert select_lifecycle(recipe, recipe.manifests[0]).steps == {"Run": LifecycleStep(script="top")}


def test_a_recipe_without_manifests_runs_the_all_part_of_the_global_lifecycle() -> None:
    recipe = parse_recipe(
        {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": "com.example.Life",
            "ComponentVersion": "1.0.0",
            "Lifecycle": {"Run": {"all": "everywhere"}},
        }
    )
    manifest = select_manifest(recipe, {"os": "linux"})
    assert manifest is not None

    assert select_lifecycle(recipe, manifest).steps == {"Run": LifecycleStep(script="everywhere")}


def test_selecting_an_invalid_hand_built_lifecycle_raises_recipe_error() -> None:
    manifest = Manifest(lifecycle={"Run": {"Timeout": "soon"}})
    recipe = Recipe(name="com.example.Hand", version="1.0.0", manifests=(manifest,))

    with pytest.raises(RecipeError) as caught:
        select_lifecycle(recipe, manifest)

    assert [str(problem) for problem in caught.value.problems] == [
        "Manifests[0].Lifecycle.Run.Timeout: expected a number, got 'soon'"
    ]
    assert "com.example.Hand 1.0.0" in str(caught.value)

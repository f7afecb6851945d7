"""``interpolateComponentConfiguration`` against a real runtime: recipe variables inside configuration values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgewise import GREENGRASS_COMPATIBILITY_VERSION
from tests.support.runtime_process import RuntimeProcess

pytestmark = pytest.mark.integration

NUCLEUS = "aws.greengrass.Nucleus"
DEFAULTS = {
    "thing": "things/{iot:thingName}/data",
    "paths": ["{work:path}", "{kernel:rootPath}", "{artifacts:path}"],
    "copy": "prefix-{configuration:/base}",
    "whole": "{configuration:/nested}",
    "nested": {"deep": "{iot:thingName}"},
    "other": "{test.Base:work:path}",
    "unknown": "{nothing:here}",
}


def write_component(recipes: Path, output: Path) -> None:
    base = {"RecipeFormatVersion": "2020-01-25", "ComponentName": "test.Base", "ComponentVersion": "1.0.0"}
    (recipes / "test.Base-1.0.0.json").write_text(json.dumps(base))
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "test.Interp",
        "ComponentVersion": "1.0.0",
        "ComponentDependencies": {"test.Base": {"VersionRequirement": "1.0.0"}},
        "ComponentConfiguration": {"DefaultConfiguration": DEFAULTS},
        "Manifests": [{"Lifecycle": {"Run": f"echo '{{configuration:/thing}}' > {output}; sleep 60"}}],
    }
    (recipes / "test.Interp-1.0.0.json").write_text(json.dumps(recipe))


def configuration(runtime: RuntimeProcess) -> dict[str, Any]:
    value: dict[str, Any] = runtime.call("GetConfiguration", {"componentName": "test.Interp", "keyPath": []})[
        "value"
    ]
    return value


def deploy(runtime: RuntimeProcess, recipes: Path, *, interpolate: bool | None) -> None:
    roots = {"test.Interp": "1.0.0"}
    config: dict[str, Any] = {"test.Interp": {"MERGE": {"base": "{iot:thingName}-merged"}}}
    if interpolate is not None:
        roots[NUCLEUS] = GREENGRASS_COMPATIBILITY_VERSION
        config[NUCLEUS] = {"MERGE": {"interpolateComponentConfiguration": interpolate}}
    result = runtime.wait_deployment(
        runtime.deploy(recipes, rootComponentVersionsToAdd=roots, componentToConfiguration=config)
    )
    assert result["status"] == "SUCCEEDED", result


def test_configuration_is_left_as_written_by_default(
    runtime: RuntimeProcess, recipes: Path, tmp_path: Path
) -> None:
    write_component(recipes, tmp_path / "out")

    deploy(runtime, recipes, interpolate=None)

    assert configuration(runtime) == {**DEFAULTS, "base": "{iot:thingName}-merged"}


def test_variables_in_configuration_are_interpolated_when_the_nucleus_asks_for_it(
    runtime: RuntimeProcess, recipes: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    write_component(recipes, output)

    deploy(runtime, recipes, interpolate=True)

    root = runtime.paths.root
    thing = "edgewise-device"
    assert configuration(runtime) == {
        "thing": f"things/{thing}/data",
        "paths": [
            str(root / "work" / "test.Interp"),
            str(root),
            str(root / "packages" / "artifacts" / "test.Interp" / "1.0.0"),
        ],
        # {configuration:...} reads the values as written (defaults with the merge), as Greengrass does.
        "copy": "prefix-{iot:thingName}-merged",
        "whole": '{"deep":"{iot:thingName}"}',
        "nested": {"deep": thing},
        # Greengrass resolves no other component's variables inside configuration.
        "other": "{test.Base:work:path}",
        "unknown": "{nothing:here}",
        "base": f"{thing}-merged",
    }
    runtime.wait_state("test.Interp", "RUNNING")
    assert output.read_text().strip() == f"things/{thing}/data"


def test_turning_interpolation_off_leaves_later_values_as_written(
    runtime: RuntimeProcess, recipes: Path, tmp_path: Path
) -> None:
    write_component(recipes, tmp_path / "out")
    deploy(runtime, recipes, interpolate=True)

    deploy(runtime, recipes, interpolate=False)

    stored = configuration(runtime)
    assert stored["base"] == "{iot:thingName}-merged"
    assert stored["thing"] == "things/edgewise-device/data"

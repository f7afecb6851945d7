"""Recipe variable interpolation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgewise.recipe import (
    ComponentVariables,
    Lifecycle,
    LifecycleStep,
    Skipif,
    VariableContext,
    interpolate,
    interpolate_configuration,
    interpolate_lifecycle,
    load_recipe,
    select_lifecycle,
    select_manifest,
)

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = "/greengrass/v2"

CONFIGURATION: dict[str, Any] = {
    "text": "hello",
    "number": 5,
    "ratio": 0.25,
    "flag": True,
    "off": False,
    "nothing": None,
    "list": [1, "two", {"three": 3}],
    "object": {"b": [True, None], "a": "x"},
    "a/b": "slash",
    "m~n": "tilde",
    "": "empty key",
    "MixedCase": "found",
    "braces": "{artifacts:path}",
    "unicode": {"k": "é"},
}


def context(**overrides: Any) -> VariableContext:
    values: dict[str, Any] = {
        "component": ComponentVariables.from_root(ROOT, "com.example.App", "1.0.0", CONFIGURATION),
        "dependencies": {
            "com.example.Lib": ComponentVariables.from_root(ROOT, "com.example.Lib", "2.0.0", {"level": 3}),
        },
        "kernel_root_path": ROOT,
        "thing_name": "MyThing",
    }
    values.update(overrides)
    return VariableContext(**values)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{artifacts:path}", "/greengrass/v2/packages/artifacts/com.example.App/1.0.0"),
        (
            "{artifacts:decompressedPath}",
            "/greengrass/v2/packages/artifacts-unarchived/com.example.App/1.0.0",
        ),
        ("{work:path}", "/greengrass/v2/work/com.example.App"),
        ("{kernel:rootPath}", "/greengrass/v2"),
        ("{iot:thingName}", "MyThing"),
        ("{configuration:/text}", "hello"),
        ("{configuration:/number}", "5"),
        ("{configuration:/ratio}", "0.25"),
        ("{configuration:/flag}/{configuration:/off}", "true/false"),
        ("{configuration:/nothing}", "null"),
        ("{configuration:/list}", '[1,"two",{"three":3}]'),
        ("{configuration:/list/1}", "two"),
        ("{configuration:/list/2/three}", "3"),
        ("{configuration:/object}", '{"b":[true,null],"a":"x"}'),
        ("{configuration:/a~1b}", "slash"),
        ("{configuration:/m~0n}", "tilde"),
        ("{configuration:/}", "empty key"),
        ("{configuration:/mixedcase}", "found"),
        ("{configuration:/unicode}", '{"k":"é"}'),
        ("{configuration:/braces}", "{artifacts:path}"),
        ("{com.example.Lib:artifacts:path}", "/greengrass/v2/packages/artifacts/com.example.Lib/2.0.0"),
        (
            "{com.example.Lib:artifacts:decompressedPath}",
            "/greengrass/v2/packages/artifacts-unarchived/com.example.Lib/2.0.0",
        ),
        ("{com.example.Lib:work:path}", "/greengrass/v2/work/com.example.Lib"),
        ("{com.example.Lib:configuration:/level}", "3"),
        (
            "run {work:path}/x --n {configuration:/number}!",
            "run /greengrass/v2/work/com.example.App/x --n 5!",
        ),
    ],
)
def test_variables_resolve_to_their_values(text: str, expected: str) -> None:
    assert interpolate(text, context()) == expected


@pytest.mark.parametrize(
    "text",
    [
        "{configuration:/missing}",
        "{configuration:/list/3}",
        "{configuration:/list/01}",
        "{configuration:/list/-}",
        "{configuration:/text/deeper}",
        "{configuration:text}",
        "{artifacts:other}",
        "{unknown:path}",
        "{Artifacts:path}",
        "{com.example.Other:artifacts:path}",
        "{com.example.App:artifacts:path}",
        "{com.example.Lib:kernel:rootPath}",
        "{com.example.Lib:configuration:/missing}",
        "{not a variable}",
        "{}",
        "{artifacts:path",
        "{configuration:/a:b}",
    ],
)
def test_unresolvable_placeholders_are_left_as_written(text: str) -> None:
    assert interpolate(text, context()) == text


def test_the_thing_name_stays_unresolved_without_a_thing() -> None:
    assert interpolate("{iot:thingName}", context(thing_name=None)) == "{iot:thingName}"


def test_a_configuration_that_is_not_json_is_left_unresolved() -> None:
    variables = ComponentVariables("/a", "/d", "/w", configuration={"odd": {1, 2}})

    assert interpolate("{configuration:/odd}", context(component=variables)) == "{configuration:/odd}"


def test_interpolate_lifecycle_covers_scripts_skipif_and_every_setenv() -> None:
    lifecycle = Lifecycle(
        steps={
            "Install": LifecycleStep(
                script="cp {artifacts:path}/a {work:path}",
                timeout=10.0,
                requires_privilege=True,
                setenv={"T": "{iot:thingName}"},
                skipif=Skipif(check="exists", target="{work:path}/done", negate=True),
            ),
            "Run": LifecycleStep(script="run {configuration:/text}"),
        },
        setenv={"ROOT": "{kernel:rootPath}", "{work:path}": "key is not interpolated"},
        error_reset_time=5.0,
    )

    assert interpolate_lifecycle(lifecycle, context()) == Lifecycle(
        steps={
            "Install": LifecycleStep(
                script="cp /greengrass/v2/packages/artifacts/com.example.App/1.0.0/a /greengrass/v2/work/com.example.App",
                timeout=10.0,
                requires_privilege=True,
                setenv={"T": "MyThing"},
                skipif=Skipif(check="exists", target="/greengrass/v2/work/com.example.App/done", negate=True),
            ),
            "Run": LifecycleStep(script="run hello"),
        },
        setenv={"ROOT": "/greengrass/v2", "{work:path}": "key is not interpolated"},
        error_reset_time=5.0,
    )


def test_cross_component_recipe_resolves_only_its_direct_dependency() -> None:
    recipe = load_recipe(FIXTURES / "cross_component.yaml")
    manifest = select_manifest(recipe, {"os": "linux"})
    assert manifest is not None
    library = ComponentVariables.from_root(
        ROOT, "com.example.Library", "1.2.3", {"settings": {"level": "debug", "port": 8080}}
    )
    variables = VariableContext(
        component=ComponentVariables.from_root(
            ROOT, recipe.name, recipe.version, recipe.default_configuration
        ),
        dependencies={name: library for name in recipe.dependencies},
        kernel_root_path=ROOT,
        thing_name="Gateway-7",
    )

    lifecycle = interpolate_lifecycle(select_lifecycle(recipe, manifest), variables)

    assert lifecycle.setenv == {"LIB_CONFIG": '{"level":"debug","port":8080}', "THING": "Gateway-7"}
    assert lifecycle.steps["Run"].script == (
        "python3 /greengrass/v2/packages/artifacts/com.example.Consumer/1.0.0/consumer.py"
        " --lib /greengrass/v2/packages/artifacts-unarchived/com.example.Library/1.2.3/lib"
        " --lib-work /greengrass/v2/work/com.example.Library"
        " --level debug"
        " --topic sensors/{iot:thingName}/temperature"
        " --root /greengrass/v2"
        " --other {com.example.Unrelated:artifacts:path}"
    )


def test_interpolate_configuration_replaces_strings_at_any_depth_but_never_keys() -> None:
    context = VariableContext(
        component=ComponentVariables.from_root(ROOT, "com.example.App", "1.0.0", {"name": "{iot:thingName}"}),
        kernel_root_path=ROOT,
        thing_name="thing-1",
    )
    value = {
        "{iot:thingName}": "key stays",
        "list": ["{work:path}", 3, None, ["{iot:thingName}"], {"x": "{configuration:/name}"}],
        "flag": True,
        "number": 1.5,
    }

    assert interpolate_configuration(value, context) == {
        "{iot:thingName}": "key stays",
        "list": [f"{ROOT}/work/com.example.App", 3, None, ["thing-1"], {"x": "{iot:thingName}"}],
        "flag": True,
        "number": 1.5,
    }

"""Parsing and validating recipes: real-world shapes, case rules, YAML quirks, every problem with its path."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgewise.recipe import (
    STEP_NAMES,
    Artifact,
    ArtifactPermission,
    ComponentDependency,
    ComponentType,
    DependencyType,
    PermissionLevel,
    Recipe,
    RecipeError,
    RecipeProblem,
    Unarchive,
    load_recipe,
    parse_recipe,
    select_lifecycle,
    select_manifest,
)

FIXTURES = Path(__file__).parent / "fixtures"


def base_document() -> dict[str, Any]:
    """A small valid recipe that each validation case breaks in one place."""
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.Base",
        "ComponentVersion": "1.0.0",
        "Manifests": [
            {
                "Platform": {"os": "linux"},
                "Lifecycle": {"Run": {"Script": "echo run"}},
                "Artifacts": [{"Uri": "s3://bucket/app.zip"}],
            }
        ],
    }


def problems_of(document: Any) -> list[RecipeProblem]:
    with pytest.raises(RecipeError) as caught:
        parse_recipe(document)
    return caught.value.problems


# --- recipes shaped like the public examples -------------------------------------------------


def test_hello_world_yaml_and_json_give_the_same_recipe() -> None:
    from_yaml = load_recipe(FIXTURES / "hello_world.yaml")
    from_json = load_recipe(FIXTURES / "hello_world.json")

    assert from_yaml == from_json
    assert from_yaml.name == "com.example.HelloWorld"
    assert from_yaml.version == "1.0.0"
    assert from_yaml.publisher == "Amazon"
    assert from_yaml.description == "My first AWS IoT Greengrass component."
    assert from_yaml.component_type is ComponentType.GENERIC
    assert from_yaml.default_configuration == {"Message": "world"}
    assert [manifest.platform for manifest in from_yaml.manifests] == [{"os": "linux"}, {"os": "windows"}]
    artifact = from_yaml.manifests[0].artifacts[0]
    assert artifact == Artifact(
        uri="s3://DOC-EXAMPLE-BUCKET/artifacts/com.example.HelloWorld/1.0.0/hello_world.py"
    )
    assert artifact.file_name == "hello_world.py"
    assert from_yaml.raw["ComponentName"] == "com.example.HelloWorld"


def test_json_indented_with_tabs_is_accepted() -> None:
    text = (FIXTURES / "hello_world.json").read_text()
    assert "\t" in text

    assert parse_recipe(text).name == "com.example.HelloWorld"


def test_zip_artifacts_and_permissions_are_read_case_insensitively() -> None:
    recipe = load_recipe(FIXTURES / "zip_artifacts.yaml")

    app, model, image, sidecar = recipe.manifests[0].artifacts
    assert app.unarchive is Unarchive.ZIP
    assert app.digest == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    assert app.algorithm == "SHA-256"
    assert app.permission == ArtifactPermission(read=PermissionLevel.ALL, execute=PermissionLevel.OWNER)
    assert model.file_name == "model.onnx"
    assert model.permission == ArtifactPermission(read=PermissionLevel.ALL, execute=PermissionLevel.NONE)
    assert model.unarchive is Unarchive.NONE
    assert (image.uri, sidecar.uri) == (
        "docker:public.ecr.aws/example/app:latest",
        "docker:public.ecr.aws/example/sidecar:latest",
    )


def test_dependencies_are_read_with_their_types() -> None:
    recipe = load_recipe(FIXTURES / "multi_platform.yaml")

    assert recipe.dependencies == {
        "aws.greengrass.Nucleus": ComponentDependency(
            "aws.greengrass.Nucleus", ">=2.5.0 <3.0.0", DependencyType.SOFT
        ),
        "com.example.Library": ComponentDependency("com.example.Library", "^1.2", DependencyType.HARD),
    }
    assert recipe.component_type is ComponentType.GENERIC


def test_prerelease_and_build_versions_are_kept_as_written() -> None:
    assert load_recipe(FIXTURES / "global_lifecycle.yaml").version == "2.1.0-beta.1+build.7"


def test_a_recipe_without_manifests_is_accepted() -> None:
    document = base_document()
    del document["Manifests"]
    document["Lifecycle"] = {"Run": "echo global"}

    recipe = parse_recipe(document)

    assert recipe.manifests == ()
    assert recipe.global_lifecycle == {"Run": "echo global"}


# --- case and YAML rules ---------------------------------------------------------------------


def test_recipe_keys_and_enum_values_match_case_insensitively() -> None:
    shouting = {
        "RECIPEFORMATVERSION": "2020-01-25",
        "componentname": "com.example.Base",
        "ComponentVERSION": "1.0.0",
        "componenttype": "AWS.GREENGRASS.PLUGIN",
        "componentDependencies": {
            "com.example.Dep": {"versionrequirement": "^1.0.0", "DEPENDENCYTYPE": "soft"}
        },
        "MANIFESTS": [
            {
                "platform": {"os": "linux"},
                "LIFECYCLE": {"run": "echo run"},
                "artifacts": [
                    {"URI": "s3://bucket/app.zip", "unarchive": "zip", "PERMISSION": {"read": "all"}}
                ],
            }
        ],
    }

    recipe = parse_recipe(shouting)

    assert recipe.name == "com.example.Base"
    assert recipe.component_type is ComponentType.PLUGIN
    assert recipe.dependencies["com.example.Dep"].dependency_type is DependencyType.SOFT
    assert recipe.manifests[0].artifacts[0].unarchive is Unarchive.ZIP
    assert recipe.manifests[0].artifacts[0].permission.read is PermissionLevel.ALL


def test_unknown_keys_are_ignored() -> None:
    document = base_document()
    document["ComponentSource"] = "arn:aws:lambda:region:account:function:name"
    document["SomethingNew"] = {"nested": [1, 2]}
    document["Manifests"][0]["Future"] = True
    document["Manifests"][0]["Artifacts"][0]["Size"] = 10

    assert parse_recipe(document) == parse_recipe(base_document())


def test_default_configuration_is_user_data_kept_verbatim() -> None:
    text = """
RecipeFormatVersion: 2020-01-25
ComponentName: com.example.Config
ComponentVersion: 1.0.0
componentconfiguration:
  defaultconfiguration:
    CamelCase: {Nested: [1, 2.5, true, null]}
    "on": yes
    off: on
    when: 2024-01-01
    mode: 0755
    hex: 0x1F
    1: one
    empty:
"""
    recipe = parse_recipe(text)

    assert recipe.default_configuration == {
        "CamelCase": {"Nested": [1, 2.5, True, None]},
        "on": "yes",
        "off": "on",
        "when": "2024-01-01",
        "mode": 755,
        "hex": 31,
        "1": "one",
        "empty": None,
    }


def test_default_configuration_is_a_copy_of_the_input() -> None:
    document = base_document()
    document["ComponentConfiguration"] = {"DefaultConfiguration": {"list": [1, 2], "map": {"a": "b"}}}

    recipe = parse_recipe(document)
    document["ComponentConfiguration"]["DefaultConfiguration"]["list"].append(3)

    assert recipe.default_configuration == {"list": [1, 2], "map": {"a": "b"}}


def test_bytes_with_a_byte_order_mark_are_accepted() -> None:
    data = "\ufeff".encode() + (FIXTURES / "hello_world.yaml").read_bytes()

    assert parse_recipe(data).name == "com.example.HelloWorld"


def test_syntax_errors_are_one_problem_with_the_position() -> None:
    with pytest.raises(RecipeError) as caught:
        parse_recipe("ComponentName: [unclosed\n", source_name="broken.yaml")

    assert len(caught.value.problems) == 1
    problem = caught.value.problems[0]
    assert problem.path == ""
    assert problem.message.startswith("the document is not valid YAML or JSON")
    assert "line 2" in problem.message
    assert caught.value.source_name == "broken.yaml"
    assert str(caught.value).splitlines()[0] == "Recipe broken.yaml is invalid (1 problem):"


def test_text_that_is_not_utf8_is_a_problem() -> None:
    assert problems_of(b"ComponentName: \xff\xfe\n")[0].message.startswith("the document is not UTF-8 text")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the document is empty"),
        ("# only a comment\n", "the document is empty"),
        ("- a\n- b\n", "the document must be a mapping of recipe fields, got a list"),
        ("just text", "the document must be a mapping of recipe fields, got 'just text'"),
        ("a: 1\n---\nb: 2\n", "the document is not valid YAML or JSON"),
        ("!!python/object:os.system {}", "the document is not valid YAML or JSON"),
    ],
)
def test_documents_that_are_not_recipes_are_rejected(text: str, message: str) -> None:
    (problem,) = problems_of(text)

    assert problem.path == ""
    assert problem.message.startswith(message)


def test_load_recipe_reports_an_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"

    with pytest.raises(RecipeError, match="the file cannot be read") as caught:
        load_recipe(missing)

    assert caught.value.source_name == str(missing)


@pytest.mark.parametrize("document", [None, [1, 2], 5, True])
def test_loaded_documents_that_are_not_mappings_are_a_problem(document: Any) -> None:
    (problem,) = problems_of(document)

    assert problem.message.startswith(("the document must be a mapping", "the document is empty"))


# --- validation: each problem with its path ---------------------------------------------------

_DELETE = object()


def change(*path_and_value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting (or deleting, with _DELETE) the value at a path of keys and indexes."""
    *path, value = path_and_value

    def apply(document: dict[str, Any]) -> None:
        node: Any = document
        for key in path[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return apply


M0 = ("Manifests", 0)
RUN = (*M0, "Lifecycle", "Run")
A0 = (*M0, "Artifacts", 0)

VALIDATION_CASES = [
    ("format missing", change("RecipeFormatVersion", _DELETE), "RecipeFormatVersion", "is required"),
    (
        "format wrong",
        change("RecipeFormatVersion", "2021-01-01"),
        "RecipeFormatVersion",
        "expected '2020-01-25', got '2021-01-01'",
    ),
    ("name missing", change("ComponentName", _DELETE), "ComponentName", "is required"),
    ("name null", change("ComponentName", None), "ComponentName", "is required"),
    ("name not text", change("ComponentName", 5), "ComponentName", "expected a string, got 5"),
    (
        "name characters",
        change("ComponentName", "com example"),
        "ComponentName",
        "may only hold letters, digits, '-', '_' and '.', got 'com example'",
    ),
    (
        "name too long",
        change("ComponentName", "a" * 129),
        "ComponentName",
        "is longer than 128 characters (129)",
    ),
    ("name is a directory", change("ComponentName", ".."), "ComponentName", "names a directory"),
    ("name is this directory", change("ComponentName", "."), "ComponentName", "names a directory"),
    ("version missing", change("ComponentVersion", _DELETE), "ComponentVersion", "is required"),
    ("version short", change("ComponentVersion", "1.0"), "ComponentVersion", "is not a semantic version"),
    ("version v", change("ComponentVersion", "v1.0.0"), "ComponentVersion", "must not start with 'v'"),
    ("version number", change("ComponentVersion", 1.5), "ComponentVersion", "expected a string, got 1.5"),
    (
        "description",
        change("ComponentDescription", ["x"]),
        "ComponentDescription",
        "expected a string, got a list",
    ),
    ("publisher", change("ComponentPublisher", 3), "ComponentPublisher", "expected a string, got 3"),
    (
        "type",
        change("ComponentType", "aws.greengrass.docker"),
        "ComponentType",
        "expected one of aws.greengrass.generic, aws.greengrass.lambda",
    ),
    (
        "configuration section",
        change("ComponentConfiguration", "x"),
        "ComponentConfiguration",
        "expected a mapping, got 'x'",
    ),
    (
        "default configuration",
        change("ComponentConfiguration", {"DefaultConfiguration": [1]}),
        "ComponentConfiguration.DefaultConfiguration",
        "expected a mapping, got a list",
    ),
    (
        "configuration value",
        change("ComponentConfiguration", {"DefaultConfiguration": {"a": [{"b": {1, 2}}]}}),
        "ComponentConfiguration.DefaultConfiguration.a[0].b",
        "expected a JSON value, got a set",
    ),
    (
        "configuration key",
        change("ComponentConfiguration", {"DefaultConfiguration": {"a": {3: "x"}}}),
        "ComponentConfiguration.DefaultConfiguration.a",
        "configuration keys must be strings, got 3",
    ),
    (
        "dependencies section",
        change("ComponentDependencies", ["com.example.B"]),
        "ComponentDependencies",
        "expected a mapping, got a list",
    ),
    (
        "dependency not a mapping",
        change("ComponentDependencies", {"com.example.B": "1.0.0"}),
        "ComponentDependencies.com.example.B",
        "expected a mapping, got '1.0.0'",
    ),
    (
        "dependency requirement missing",
        change("ComponentDependencies", {"com.example.B": {"DependencyType": "HARD"}}),
        "ComponentDependencies.com.example.B.VersionRequirement",
        "is required",
    ),
    (
        "dependency requirement invalid",
        change("ComponentDependencies", {"com.example.B": {"VersionRequirement": "newest"}}),
        "ComponentDependencies.com.example.B.VersionRequirement",
        "Version requirement 'newest' is not a valid npm-style range",
    ),
    (
        "dependency requirement number",
        change("ComponentDependencies", {"com.example.B": {"VersionRequirement": 1.0}}),
        "ComponentDependencies.com.example.B.VersionRequirement",
        "expected a string, got 1.0",
    ),
    (
        "dependency type",
        change(
            "ComponentDependencies",
            {"com.example.B": {"VersionRequirement": "*", "DependencyType": "STRONG"}},
        ),
        "ComponentDependencies.com.example.B.DependencyType",
        "expected one of HARD, SOFT, got 'STRONG'",
    ),
    (
        "dependency name",
        change("ComponentDependencies", {"bad/name": {"VersionRequirement": "*"}}),
        "ComponentDependencies.bad/name",
        "may only hold letters",
    ),
    (
        "dependency on itself",
        change("ComponentDependencies", {"com.example.Base": {"VersionRequirement": "*"}}),
        "ComponentDependencies.com.example.Base",
        "a component cannot depend on itself",
    ),
    (
        "manifests not a list",
        change("Manifests", {"os": "linux"}),
        "Manifests",
        "expected a list, got a mapping",
    ),
    ("manifest not a mapping", change("Manifests", [5]), "Manifests[0]", "expected a mapping, got 5"),
    ("manifest name", change(*M0, "Name", 7), "Manifests[0].Name", "expected a string, got 7"),
    (
        "platform",
        change(*M0, "Platform", "linux"),
        "Manifests[0].Platform",
        "expected a mapping, got 'linux'",
    ),
    (
        "platform value type",
        change(*M0, "Platform", {"os": 5}),
        "Manifests[0].Platform.os",
        "expected a string, got 5",
    ),
    (
        "platform value syntax",
        change(*M0, "Platform", {"os": "-linux"}),
        "Manifests[0].Platform.os",
        "expected '*', a /regex/ or a value starting with a letter or digit, got '-linux'",
    ),
    (
        "platform empty value",
        change(*M0, "Platform", {"os": ""}),
        "Manifests[0].Platform.os",
        "starting with a letter or digit, got ''",
    ),
    (
        "platform regex",
        change(*M0, "Platform", {"architecture": "/(arm/"}),
        "Manifests[0].Platform.architecture",
        "regular expression '/(arm/' does not compile",
    ),
    (
        "selections type",
        change(*M0, "Selections", "linux"),
        "Manifests[0].Selections",
        "expected a list, got 'linux'",
    ),
    (
        "selection item",
        change(*M0, "Selections", ["ok", 1]),
        "Manifests[0].Selections[1]",
        "expected a string, got 1",
    ),
    (
        "lifecycle type",
        change(*M0, "Lifecycle", "run"),
        "Manifests[0].Lifecycle",
        "expected a mapping, got 'run'",
    ),
    (
        "step type",
        change(*RUN, 5),
        "Manifests[0].Lifecycle.Run",
        "expected a script or a mapping with Script, got 5",
    ),
    (
        "script type",
        change(*RUN, "Script", ["a"]),
        "Manifests[0].Lifecycle.Run.Script",
        "expected a string, got a list",
    ),
    (
        "script NUL",
        change(*RUN, "Script", "echo \0"),
        "Manifests[0].Lifecycle.Run.Script",
        "contains a NUL character",
    ),
    (
        "timeout text",
        change(*RUN, "Timeout", "abc"),
        "Manifests[0].Lifecycle.Run.Timeout",
        "expected a number, got 'abc'",
    ),
    (
        "timeout zero",
        change(*RUN, "Timeout", 0),
        "Manifests[0].Lifecycle.Run.Timeout",
        "expected a number greater than 0, got 0",
    ),
    (
        "timeout negative text",
        change(*RUN, "Timeout", "-5"),
        "Manifests[0].Lifecycle.Run.Timeout",
        "expected a number greater than 0, got '-5'",
    ),
    (
        "timeout bool",
        change(*RUN, "Timeout", True),
        "Manifests[0].Lifecycle.Run.Timeout",
        "expected a number, got true",
    ),
    (
        "timeout infinite",
        change(*RUN, "Timeout", float("inf")),
        "Manifests[0].Lifecycle.Run.Timeout",
        "expected a number greater than 0, got inf",
    ),
    (
        "privilege",
        change(*RUN, "RequiresPrivilege", "maybe"),
        "Manifests[0].Lifecycle.Run.RequiresPrivilege",
        "expected true or false, got 'maybe'",
    ),
    (
        "step setenv type",
        change(*RUN, "Setenv", "A=1"),
        "Manifests[0].Lifecycle.Run.Setenv",
        "expected a mapping",
    ),
    (
        "step setenv value",
        change(*RUN, "Setenv", {"A": {"b": 1}}),
        "Manifests[0].Lifecycle.Run.Setenv.A",
        "expected a string, number or boolean, got a mapping",
    ),
    (
        "step setenv name",
        change(*RUN, "Setenv", {"A=B": "1"}),
        "Manifests[0].Lifecycle.Run.Setenv",
        "'A=B' is not a valid environment variable name",
    ),
    (
        "step setenv NUL",
        change(*RUN, "Setenv", {"A": "x\0"}),
        "Manifests[0].Lifecycle.Run.Setenv.A",
        "contains a NUL character",
    ),
    (
        "skipif grammar",
        change(*RUN, "Skipif", "whenever python3"),
        "Manifests[0].Lifecycle.Run.Skipif",
        "expected 'onpath <executable>' or 'exists <path>', optionally after '!', got 'whenever python3'",
    ),
    (
        "skipif target",
        change(*RUN, "Skipif", "onpath"),
        "Manifests[0].Lifecycle.Run.Skipif",
        "expected 'onpath",
    ),
    (
        "skipif type",
        change(*RUN, "Skipif", 5),
        "Manifests[0].Lifecycle.Run.Skipif",
        "expected a string, got 5",
    ),
    (
        "lifecycle setenv",
        change(*M0, "Lifecycle", "Setenv", [1]),
        "Manifests[0].Lifecycle.Setenv",
        "expected a mapping, got a list",
    ),
    (
        "error reset time",
        change(*M0, "Lifecycle", "errorResetTime", "soon"),
        "Manifests[0].Lifecycle.errorResetTime",
        "expected a number, got 'soon'",
    ),
    (
        "duplicate step",
        change(*M0, "Lifecycle", "run", "echo again"),
        "Manifests[0].Lifecycle.run",
        "duplicates key 'Run' (recipe keys are case-insensitive)",
    ),
    (
        "duplicate field",
        change("componentName", "com.example.Other"),
        "componentName",
        "duplicates key 'ComponentName'",
    ),
    (
        "artifacts type",
        change(*M0, "Artifacts", "a.zip"),
        "Manifests[0].Artifacts",
        "expected a list, got 'a.zip'",
    ),
    (
        "artifact type",
        change(*M0, "Artifacts", [None]),
        "Manifests[0].Artifacts[0]",
        "expected a mapping, got null",
    ),
    ("uri missing", change(*A0, "Uri", _DELETE), "Manifests[0].Artifacts[0].Uri", "is required"),
    ("uri empty", change(*A0, "Uri", " "), "Manifests[0].Artifacts[0].Uri", "must not be empty"),
    ("uri no file", change(*A0, "Uri", "s3://bucket/dir/"), "Manifests[0].Artifacts[0].Uri", "names no file"),
    (
        "digest",
        change(*A0, "Digest", "not base64!"),
        "Manifests[0].Artifacts[0].Digest",
        "expected padded base64 text, got 'not base64!'",
    ),
    (
        "digest unpadded",
        change(*A0, "Digest", "YWI"),
        "Manifests[0].Artifacts[0].Digest",
        "expected padded base64",
    ),
    ("algorithm", change(*A0, "Algorithm", ""), "Manifests[0].Artifacts[0].Algorithm", "must not be empty"),
    (
        "unarchive",
        change(*A0, "Unarchive", "TAR"),
        "Manifests[0].Artifacts[0].Unarchive",
        "expected one of NONE, ZIP, got 'TAR'",
    ),
    (
        "permission type",
        change(*A0, "Permission", "rwx"),
        "Manifests[0].Artifacts[0].Permission",
        "expected a mapping",
    ),
    (
        "permission read",
        change(*A0, "Permission", {"Read": "EVERYONE"}),
        "Manifests[0].Artifacts[0].Permission.Read",
        "expected one of NONE, OWNER, ALL, got 'EVERYONE'",
    ),
    (
        "permission execute",
        change(*A0, "Permission", {"Execute": 1}),
        "Manifests[0].Artifacts[0].Permission.Execute",
        "expected one of NONE, OWNER, ALL, got 1",
    ),
    (
        "duplicate file name",
        change(
            *M0,
            "Artifacts",
            [{"Uri": "s3://one/app.zip"}, {"Uri": "greengrass:x"}, {"Uri": "s3://two/app.zip"}],
        ),
        "Manifests[0].Artifacts[2].Uri",
        "file name 'app.zip' is already used by Artifacts[0]",
    ),
    ("global lifecycle type", change("Lifecycle", ["Run"]), "Lifecycle", "expected a mapping, got a list"),
]


@pytest.mark.parametrize(
    ("mutate", "path", "message"),
    [case[1:] for case in VALIDATION_CASES],
    ids=[case[0] for case in VALIDATION_CASES],
)
def test_each_validation_problem_names_its_field(
    mutate: Callable[[dict[str, Any]], None], path: str, message: str
) -> None:
    document = base_document()
    mutate(document)

    problems = problems_of(document)

    assert [problem.path for problem in problems] == [path], problems
    assert message in problems[0].message


def test_the_base_document_of_the_validation_cases_is_valid() -> None:
    recipe = parse_recipe(base_document())

    assert isinstance(recipe, Recipe)


def test_every_problem_is_reported_at_once_one_per_line() -> None:
    document = base_document()
    document["ComponentVersion"] = "one"
    document["Manifests"][0]["Lifecycle"]["Run"]["Timeout"] = "abc"
    document["Manifests"][0]["Artifacts"][0]["Unarchive"] = "RAR"

    with pytest.raises(RecipeError) as caught:
        parse_recipe(document, source_name="three.yaml")

    assert str(caught.value).splitlines() == [
        "Recipe three.yaml is invalid (3 problems):",
        "ComponentVersion: Version 'one' is not a semantic version major.minor.patch[-prerelease][+build]",
        "Manifests[0].Lifecycle.Run.Timeout: expected a number, got 'abc'",
        "Manifests[0].Artifacts[0].Unarchive: expected one of NONE, ZIP, got 'RAR'",
    ]


def test_global_lifecycle_problems_carry_the_selection_in_their_path() -> None:
    document = base_document()
    document["Manifests"] = [{"Platform": {"os": "linux"}, "Selections": ["linux"]}]
    document["Lifecycle"] = {"linux": {"Install": {"Timeout": "x"}}, "Run": {"all": 5}}

    problems = problems_of(document)

    assert [(problem.path, problem.message) for problem in problems] == [
        ("Lifecycle.linux.Install.Timeout", "expected a number, got 'x'"),
    ]


def test_step_level_selection_problems_are_found_for_every_manifest_using_them() -> None:
    document = base_document()
    document["Manifests"] = [{"Selections": ["linux"]}, {"Selections": ["windows"]}]
    document["Lifecycle"] = {"Run": {"linux": {"Timeout": "x"}, "windows": 5}}

    problems = problems_of(document)

    assert [problem.path for problem in problems] == ["Lifecycle.Run.linux.Timeout", "Lifecycle.Run.windows"]


def test_global_lifecycle_branches_no_manifest_uses_are_not_checked() -> None:
    document = base_document()
    document["Manifests"] = [
        {"Platform": {"os": "linux"}, "Selections": ["linux"]},
        {"Platform": {"os": "windows"}, "Selections": ["windows"], "Lifecycle": {"Run": "run.cmd"}},
    ]
    document["Lifecycle"] = {"linux": {"Run": "./run"}, "windows": {"Run": {"Timeout": "never"}}}

    assert parse_recipe(document).manifests[1].selections == ("windows",)


def test_docker_images_may_share_a_tag() -> None:
    document = base_document()
    document["Manifests"][0]["Artifacts"] = [{"Uri": "docker:redis:latest"}, {"Uri": "docker:nginx:latest"}]

    assert len(parse_recipe(document).manifests[0].artifacts) == 2


def test_deeply_nested_configuration_is_a_problem() -> None:
    nested: Any = "leaf"
    for _ in range(150):
        nested = {"n": nested}
    document = base_document()
    document["ComponentConfiguration"] = {"DefaultConfiguration": nested}

    (problem,) = problems_of(document)

    assert problem.message == "is nested more than 100 levels deep"
    assert problem.path.startswith("ComponentConfiguration.DefaultConfiguration.n.n.")


def test_yaml_aliases_cannot_blow_up_the_configuration() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    text = (
        "RecipeFormatVersion: 2020-01-25\nComponentName: com.example.Bomb\nComponentVersion: 1.0.0\n"
        "ComponentConfiguration:\n  DefaultConfiguration:\n" + "".join(f"    {line}\n" for line in lines)
    )

    problems = problems_of(text)

    assert [problem.message for problem in problems] == ["the configuration holds more than 1000000 values"]


@pytest.mark.parametrize(
    "text",
    [
        "RecipeFormatVersion: 2020-01-25\nLifecycle: &a {all: *a}\n",
        "ComponentConfiguration: {DefaultConfiguration: &c {x: [1, *c]}}\n",
    ],
)
def test_yaml_aliases_that_make_a_node_contain_itself_are_rejected(text: str) -> None:
    (problem,) = problems_of(text)

    assert problem.message == "the document contains itself through a YAML alias"


def test_shared_yaml_aliases_are_fine() -> None:
    text = (FIXTURES / "hello_world.yaml").read_text() + "x-defaults: &d {a: 1}\nx-one: *d\nx-two: [*d, *d]\n"

    assert parse_recipe(text).name == "com.example.HelloWorld"


# --- fuzzing -----------------------------------------------------------------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)


def spelled(*names: str) -> st.SearchStrategy[str]:
    """Field names in the usual, lower and upper case."""
    return st.sampled_from([variant for name in names for variant in (name, name.lower(), name.upper())])


STEPS = st.one_of(
    st.text(max_size=12),
    st.dictionaries(
        spelled("Script", "Timeout", "RequiresPrivilege", "Setenv", "Skipif", "all", "linux"),
        st.sampled_from(["onpath sh", "!exists /x", "10", "true", "echo", {"A": 1}, {"all": "x"}])
        | JSON_VALUES,
        max_size=4,
    ),
    JSON_VALUES,
)
LIFECYCLES = st.dictionaries(
    spelled(*STEP_NAMES, "Setenv", "errorResetTime", "all", "linux"),
    STEPS | st.dictionaries(st.sampled_from(["all", "linux", "A"]), STEPS, max_size=2),
    max_size=4,
)
ARTIFACTS = st.dictionaries(
    spelled("Uri", "Digest", "Algorithm", "Unarchive", "Permission"),
    st.sampled_from(["s3://b/a.zip", "s3://b/", "docker:x:y", "zip", "YQ==", {"Read": "all", "Execute": "x"}])
    | JSON_VALUES,
    max_size=5,
)
MANIFESTS = st.dictionaries(
    spelled("Name", "Platform", "Lifecycle", "Selections", "Artifacts"),
    st.one_of(
        LIFECYCLES,
        st.lists(ARTIFACTS, max_size=3),
        st.lists(st.sampled_from(["linux", "all", "windows"]), max_size=2),
        st.dictionaries(
            st.sampled_from(["os", "architecture", "x"]),
            st.sampled_from(["linux", "*", "/a|b/", "/[/", "-x", "all"]) | JSON_VALUES,
            max_size=2,
        ),
        JSON_VALUES,
    ),
    max_size=5,
)
RECIPE_SHAPED = st.fixed_dictionaries(
    {
        "RecipeFormatVersion": st.just("2020-01-25") | JSON_VALUES,
        "ComponentName": st.sampled_from(["com.example.Fuzz", "bad name"]) | JSON_VALUES,
        "ComponentVersion": st.sampled_from(["1.0.0", "1.0.0-rc.1+b", "1.0"]) | JSON_VALUES,
    },
    optional={
        "Manifests": st.lists(MANIFESTS, max_size=3) | JSON_VALUES,
        "Lifecycle": LIFECYCLES | JSON_VALUES,
        "ComponentType": st.sampled_from(["aws.greengrass.generic", "AWS.GREENGRASS.NUCLEUS", "x"]),
        "ComponentDependencies": st.dictionaries(
            st.sampled_from(["com.example.B", "bad name", "com.example.Fuzz"]),
            st.dictionaries(
                spelled("VersionRequirement", "DependencyType"),
                st.sampled_from(["^1.0.0", ">=1 <2", "x y z", "hard", "SOFT"]) | JSON_VALUES,
                max_size=2,
            )
            | JSON_VALUES,
            max_size=2,
        )
        | JSON_VALUES,
        "ComponentConfiguration": st.dictionaries(st.just("DefaultConfiguration"), JSON_VALUES) | JSON_VALUES,
    },
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_parse_contract(source: Any) -> None:
    """parse_recipe returns a usable Recipe or raises RecipeError; nothing else, ever."""
    problems: list[RecipeProblem] | None = None
    try:
        recipe = parse_recipe(source)
    except RecipeError as exc:
        problems = exc.problems
    if problems is not None:
        assert problems
        assert all(isinstance(problem, RecipeProblem) for problem in problems)
        return
    for manifest in (*recipe.manifests, select_manifest(recipe, {"os": "linux", "architecture": "amd64"})):
        if manifest is not None:
            select_lifecycle(recipe, manifest)  # validated by the parse: must not raise


@FUZZ
@given(JSON_VALUES)
def test_arbitrary_json_data_is_a_recipe_or_a_recipe_error(document: Any) -> None:
    check_parse_contract(document)


@FUZZ
@given(RECIPE_SHAPED)
def test_recipe_shaped_data_is_a_recipe_or_a_recipe_error(document: dict[str, Any]) -> None:
    check_parse_contract(document)
    check_parse_contract(yaml.safe_dump(document))


@FUZZ
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_arbitrary_text_is_a_recipe_or_a_recipe_error(text: str | bytes) -> None:
    check_parse_contract(text)


def test_parsing_does_not_modify_its_input() -> None:
    document = base_document()
    before = copy.deepcopy(document)

    parse_recipe(document)

    assert document == before

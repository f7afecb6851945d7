"""The verify command a model component's Install step runs, and the inference component's recipe: the exact
step, rendered by the recipe variables and run by ``sh -c``, passes a good package and refuses a tampered one
with one line naming the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgewise.components import RECIPES_DIR
from edgewise.components.inference.verify import INSTALL_SCRIPT, main
from edgewise.protocol.model_package import MODEL_FILE, key_id, public_key_text
from edgewise.recipe import ComponentVariables, VariableContext, interpolate, load_recipe
from tests.components.inference.packages import KEY, write_hot_package

KEY_TEXT = public_key_text(KEY.public_key())


@pytest.fixture
def package(tmp_path: Path, hot_at_30: bytes) -> Path:
    directory = tmp_path / "packages" / "artifacts" / "edgewise.models.hot" / "1.0.0"
    write_hot_package(directory, hot_at_30)
    return directory


def test_a_good_package_verifies_with_a_key_list_or_one_key(
    package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(package), "--keys", json.dumps(["ed25519:" + "A" * 43 + "=", KEY_TEXT])]) == 0
    assert main(["--package", str(package), "--keys", KEY_TEXT]) == 0
    out = capsys.readouterr().out
    assert (
        out.count(f"model package hot version 1 verified (key {key_id(KEY.public_key())}) in {package}") == 2
    )


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ("[]", "configuration trustedKeys: is empty"),
        (
            "{edgewise.ml.Inference:configuration:/trustedKeys}",
            "must declare edgewise.ml.Inference as a dependency",
        ),
        ("[not json", "--keys is not a JSON list"),
        ('["rsa:x"]', "configuration trustedKeys[0]: public key 'rsa:x': must start with"),
    ],
)
def test_unusable_keys_are_one_line_and_exit_1(
    package: Path, capsys: pytest.CaptureFixture[str], keys: str, problem: str
) -> None:
    assert main([str(package), "--keys", keys]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("model package refused: ")
    assert problem in err


def test_a_missing_argument_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--keys", KEY_TEXT])
    assert caught.value.code == 1
    assert capsys.readouterr().err == "model package refused: the package directory is required\n"


def run_install_step(package: Path, trusted_keys: list[str]) -> subprocess.CompletedProcess[str]:
    """The Install step as the runtime runs it: variables rendered, then ``sh -c`` with EDGEWISE_PYTHON set."""
    context = VariableContext(
        component=ComponentVariables(str(package), "", "", {}),
        kernel_root_path=str(package.parents[3]),
        dependencies={"edgewise.ml.Inference": ComponentVariables("", "", "", {"trustedKeys": trusted_keys})},
    )
    script = interpolate(INSTALL_SCRIPT, context)
    environment = {**os.environ, "EDGEWISE_PYTHON": sys.executable}
    return subprocess.run(
        ["/bin/sh", "-c", script], env=environment, capture_output=True, text=True, check=False
    )


def test_the_install_step_passes_a_good_package_and_names_the_tampered_file(package: Path) -> None:
    assert run_install_step(package, [KEY_TEXT]).returncode == 0

    (package / MODEL_FILE).write_bytes((package / MODEL_FILE).read_bytes() + b"\x00")
    refused = run_install_step(package, [KEY_TEXT])

    assert refused.returncode == 1
    assert refused.stderr.startswith(f"model package refused: {MODEL_FILE}: SHA-256 ")
    assert refused.stderr.count("\n") == 1


def test_the_inference_recipe_runs_the_component_with_the_runtime_python_and_may_use_any_topic() -> None:
    recipe = load_recipe(RECIPES_DIR / "edgewise.ml.Inference-1.0.0.yaml")

    assert (recipe.name, str(recipe.version)) == ("edgewise.ml.Inference", "1.0.0")
    manifest = recipe.manifests[0]
    assert manifest.artifacts == ()
    run = manifest.lifecycle["Run"]
    assert run == '"$EDGEWISE_PYTHON" -m edgewise.components.inference --root {kernel:rootPath}'
    defaults = recipe.default_configuration
    assert (defaults["trustedKeys"], defaults["models"]) == ([], {})
    policies = defaults["accessControl"]
    pubsub = next(iter(policies["aws.greengrass.ipc.pubsub"].values()))
    assert set(pubsub["operations"]) == {"aws.greengrass#PublishToTopic", "aws.greengrass#SubscribeToTopic"}
    assert pubsub["resources"] == ["*"]
    mqtt = next(iter(policies["aws.greengrass.ipc.mqttproxy"].values()))
    assert (mqtt["operations"], mqtt["resources"]) == (["aws.greengrass#PublishToIoTCore"], ["*"])

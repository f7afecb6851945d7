"""Artifacts of local deployments through a real runtime: recipes written as the public tutorials write them
(no ``Artifacts`` section), links out of an artifact folder, and a ZIP bomb against a configured limit."""

from __future__ import annotations

import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.support.runtime_process import RuntimeProcess, running, write_recipe
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

#: The getting-started tutorial's recipe, as the tutorial writes it (``recipes/com.example.HelloWorld-1.0.0.yaml``).
HELLO_WORLD_RECIPE = """\
---
RecipeFormatVersion: '2020-01-25'
ComponentName: com.example.HelloWorld
ComponentVersion: '1.0.0'
ComponentDescription: My first AWS IoT Greengrass component.
ComponentPublisher: Amazon
ComponentConfiguration:
  DefaultConfiguration:
    Message: world
Manifests:
  - Platform:
      os: linux
    Lifecycle:
      Run: |
        python3 -u {artifacts:path}/hello_world.py "{configuration:/Message}"
  - Platform:
      os: windows
    Lifecycle:
      Run: |
        py -3 -u {artifacts:path}/hello_world.py "{configuration:/Message}"
"""

#: The tutorial's ``artifacts/com.example.HelloWorld/1.0.0/hello_world.py``.
HELLO_WORLD_SCRIPT = """\
import sys

message = "Hello, %s!" % sys.argv[1]

# Print the message to stdout, which Greengrass saves in a log file.
print(message)
"""


def test_the_getting_started_hello_world_runs_from_its_artifact_folder(
    runtime: RuntimeProcess, recipes: Path, artifacts: Path
) -> None:
    (recipes / "com.example.HelloWorld-1.0.0.yaml").write_text(HELLO_WORLD_RECIPE)
    folder = artifacts / "com.example.HelloWorld" / "1.0.0"
    folder.mkdir(parents=True)
    (folder / "hello_world.py").write_text(HELLO_WORLD_SCRIPT)

    deployment = runtime.deploy(
        recipes,
        artifacts=artifacts,
        rootComponentVersionsToAdd={"com.example.HelloWorld": "1.0.0"},
        componentToConfiguration={"com.example.HelloWorld": {"MERGE": {"Message": "Edgewise"}}},
    )

    result = runtime.wait_deployment(deployment)
    assert result["status"] == "SUCCEEDED", result
    wait_until(lambda: "Hello, Edgewise!" in runtime.log("com.example.HelloWorld"), what="the greeting")
    installed = runtime.paths.component_artifacts("com.example.HelloWorld", "1.0.0") / "hello_world.py"
    assert installed.read_text() == HELLO_WORLD_SCRIPT


def test_unlisted_files_keep_their_modes_beside_listed_artifacts(
    runtime: RuntimeProcess, recipes: Path, artifacts: Path
) -> None:
    folder = artifacts / "com.example.Tools" / "1.0.0"
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "greet.sh").write_text('#!/bin/sh\necho "unlisted $(cat "$1")"\n')
    (folder / "bin" / "greet.sh").chmod(0o755)
    (folder / "name.txt").write_text("tool")
    (folder / "main.py").write_text("print('listed main ran')\n")
    write_recipe(
        recipes,
        "com.example.Tools",
        "1.0.0",
        f"""\
        Manifests:
          - Platform:
              os: linux
            Artifacts:
              - Uri: s3://bucket/tools/main.py
            Lifecycle:
              Run: {sys.executable} {{artifacts:path}}/main.py && {{artifacts:path}}/bin/greet.sh {{artifacts:path}}/name.txt && exec sleep 600
        """,
    )

    deployment = runtime.deploy(
        recipes, artifacts=artifacts, rootComponentVersionsToAdd={"com.example.Tools": "1.0.0"}
    )

    result = runtime.wait_deployment(deployment)
    assert result["status"] == "SUCCEEDED", result
    wait_until(lambda: "unlisted tool" in runtime.log("com.example.Tools"), what="the unlisted script")
    assert "listed main ran" in runtime.log("com.example.Tools")
    installed = runtime.paths.component_artifacts("com.example.Tools", "1.0.0")
    assert (installed / "main.py").stat().st_mode & 0o777 == 0o600  # Read: OWNER, the default permission
    assert (installed / "bin" / "greet.sh").stat().st_mode & 0o777 == 0o755


def test_a_link_to_the_runtime_key_in_the_artifact_folder_fails_the_deployment(
    runtime: RuntimeProcess, recipes: Path, artifacts: Path, tmp_path: Path
) -> None:
    key = tmp_path / "private.pem.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n")
    key.chmod(0o600)
    folder = artifacts / "com.example.Leaky" / "1.0.0"
    folder.mkdir(parents=True)
    (folder / "run.sh").write_text("echo run\n")
    (folder / "device.key").symlink_to(key)
    write_recipe(
        recipes,
        "com.example.Leaky",
        "1.0.0",
        """\
        Manifests:
          - Lifecycle:
              Run: sh {artifacts:path}/run.sh
        """,
    )

    deployment = runtime.deploy(
        recipes, artifacts=artifacts, rootComponentVersionsToAdd={"com.example.Leaky": "1.0.0"}
    )

    result = runtime.wait_deployment(deployment)
    assert result["status"] == "FAILED"
    details = result["deploymentStatusDetails"]
    assert details["detailedDeploymentStatus"] == "FAILED_NO_STATE_CHANGE"
    assert (
        f"{folder / 'device.key'} is a link to {key}, outside the artifact folder"
        in details["deploymentFailureCause"]
    )
    assert "com.example.Leaky" not in runtime.states()
    assert not (runtime.paths.artifacts_dir / "com.example.Leaky").exists()


def test_a_zip_bomb_fails_the_deployment_at_the_configured_limit_and_leaves_nothing(
    tmp_path: Path, recipes: Path, artifacts: Path
) -> None:
    config = tmp_path / "edgewise.yaml"
    config.write_text(
        textwrap.dedent("""\
        artifacts:
          maxExpandedBytes: 1048576
        """)
    )
    folder = artifacts / "com.example.Bomb" / "1.0.0"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "payload.zip", "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for index in range(4):
            bundle.writestr(f"data/{index}.bin", bytes(1 << 20))
    write_recipe(
        recipes,
        "com.example.Bomb",
        "1.0.0",
        """\
        Manifests:
          - Artifacts:
              - Uri: s3://bucket/payload.zip
                Unarchive: ZIP
            Lifecycle:
              Run: ls {artifacts:decompressedPath}/payload/data
        """,
    )
    with running(tmp_path / "root", "--config", str(config)) as runtime:
        deployment = runtime.deploy(
            recipes, artifacts=artifacts, rootComponentVersionsToAdd={"com.example.Bomb": "1.0.0"}
        )

        result = runtime.wait_deployment(deployment)
        assert result["status"] == "FAILED"
        details = result["deploymentStatusDetails"]
        assert details["detailedDeploymentStatus"] == "FAILED_NO_STATE_CHANGE"
        assert details["deploymentFailureCause"] == (
            "Artifact 'payload.zip' of com.example.Bomb 1.0.0 expands to more than 1 MiB (1048576 bytes), the "
            "limit set by artifacts.maxExpandedBytes; it was not installed"
        )
        assert "com.example.Bomb" not in runtime.states()
        assert list(runtime.paths.unarchived_dir.iterdir()) == []
        assert list(runtime.paths.artifacts_dir.iterdir()) == []

"""AWS-provided components in local deployments, against a real runtime: a built-in serves the older version of
its major line a deployment pins and says so; an AWS component Edgewise does not provide fails the deployment up
front, naming it, with nothing changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.runtime_process import RuntimeProcess, write_recipe

pytestmark = pytest.mark.integration

CLI = "aws.greengrass.Cli"
LOG_MANAGER = "aws.greengrass.DockerApplicationManager"


def edgewise(*args: str) -> str:
    """Run the ``edgewise`` command as a user would; its output with line wrapping undone."""
    result = subprocess.run(
        [sys.executable, "-m", "edgewise.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"edgewise {' '.join(args)} exited {result.returncode}: {result.stderr}"
    return " ".join(result.stdout.split())


def test_a_deployment_pinning_an_older_cli_succeeds_and_reports_requested_and_served_versions(
    runtime: RuntimeProcess, recipes: Path
) -> None:
    root = str(runtime.paths.root)

    deployment = runtime.wait_deployment(
        runtime.deploy(recipes, rootComponentVersionsToAdd={CLI: "2.4.0", "aws.greengrass.Nucleus": "2.5.6"})
    )

    assert deployment["status"] == "SUCCEEDED", deployment
    details = runtime.call("GetComponentDetails", {"componentName": CLI})["componentDetails"]
    assert (details["version"], details["requestedVersion"], details["state"]) == (
        "2.12.0",
        "2.4.0",
        "RUNNING",
    )
    listed = {
        c["componentName"]: c
        for c in json.loads(edgewise("runtime", "component", "list", "--root", root, "--json"))
    }
    assert (listed[CLI]["version"], listed[CLI]["requestedVersion"]) == ("2.12.0", "2.4.0")
    assert listed["aws.greengrass.Nucleus"]["requestedVersion"] == "2.5.6"
    assert "2.12.0 (requested 2.4.0)" in edgewise("runtime", "component", "list", "--root", root)


def test_a_cli_of_another_major_version_fails_naming_the_request_and_what_is_served(
    runtime: RuntimeProcess, recipes: Path
) -> None:
    deployment = runtime.wait_deployment(runtime.deploy(recipes, rootComponentVersionsToAdd={CLI: "3.0.0"}))

    assert deployment["status"] == "FAILED"
    assert deployment["deploymentStatusDetails"]["deploymentFailureCause"] == (
        "Cannot resolve aws.greengrass.Cli: the deployment needs aws.greengrass.Cli 3.0.0 "
        "(built in: 2.12.0, which serves major version 2 only)"
    )
    assert CLI not in runtime.states()


def test_a_component_that_depends_on_stream_manager_fails_up_front_with_nothing_changed(
    runtime: RuntimeProcess, recipes: Path
) -> None:
    root = str(runtime.paths.root)
    write_recipe(
        recipes,
        "test.Keep",
        "1.0.0",
        """\
        Manifests:
          - Lifecycle:
              Run: echo keep-up && exec sleep 600
        """,
    )
    write_recipe(
        recipes,
        "test.Exporter",
        "1.0.0",
        f"""\
        ComponentDependencies:
          {LOG_MANAGER}:
            VersionRequirement: ^2.0.0
            DependencyType: SOFT
        Manifests:
          - Lifecycle:
              Run: exec sleep 600
        """,
    )
    first = runtime.wait_deployment(
        runtime.deploy(recipes, rootComponentVersionsToAdd={"test.Keep": "1.0.0"})
    )
    assert first["status"] == "SUCCEEDED", first
    effective = runtime.paths.effective_config.read_bytes()
    states = runtime.states()

    failed = runtime.wait_deployment(
        runtime.deploy(recipes, rootComponentVersionsToAdd={"test.Exporter": "1.0.0"})
    )

    details = failed["deploymentStatusDetails"]
    assert (failed["status"], details["detailedDeploymentStatus"]) == ("FAILED", "FAILED_NO_STATE_CHANGE")
    assert details["deploymentFailureCause"].startswith(
        f"Cannot resolve {LOG_MANAGER}: test.Exporter 1.0.0 needs {LOG_MANAGER} ^2.0.0, "
        f"but {LOG_MANAGER} is an AWS-provided component that Edgewise does not provide"
    )
    assert details["deploymentErrorTypes"] == ["DEPENDENCY_RESOLUTION_ERROR"]
    assert runtime.states() == states
    assert runtime.paths.effective_config.read_bytes() == effective
    assert runtime.log("test.Keep").count("keep-up") == 1
    shown = edgewise("runtime", "deployment", "status", failed["deploymentId"], "--root", root)
    assert "FAILED (FAILED_NO_STATE_CHANGE)" in shown
    assert f"{LOG_MANAGER} is an AWS-provided component that Edgewise does not provide" in shown

"""The configuration IPC operations, called from component processes with the real awsiotsdk clients."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.runtime_process import RuntimeProcess, script_component, write_recipe
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def read_json(path: Path, what: str) -> Any:
    """The JSON a client script wrote to ``path`` (scripts write to a temporary name, then rename)."""
    wait_until(path.exists, timeout=60, what=what)
    return json.loads(path.read_text())


def test_configuration_is_read_updated_and_watched_from_the_awsiotsdk_clients(
    runtime: RuntimeProcess, tmp_path: Path, recipes: Path, artifacts: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    write_recipe(
        recipes,
        "test.Other",
        "1.0.0",
        """\
        ComponentConfiguration:
          DefaultConfiguration:
            shared: {x: 1}
        Manifests:
          - Lifecycle:
              Run: exec sleep 600
        """,
    )
    configuration = {"settings": {"level": 1, "names": ["a", "b"]}}
    script_component(
        recipes,
        artifacts,
        "test.Config",
        "config_operations.py",
        f"{out} test.Other",
        configuration=configuration,
    )
    roots = {"test.Other": "1.0.0", "test.Config": "1.0.0"}
    assert (
        runtime.wait_deployment(
            runtime.deploy(recipes, artifacts=artifacts, rootComponentVersionsToAdd=roots)
        )["status"]
        == "SUCCEEDED"
    )

    phase1 = read_json(out / "phase1.json", "the client's own calls")
    assert phase1["whole"]["ok"] == {"settings": {"level": 1, "names": ["a", "b"]}}
    assert phase1["leaf"]["ok"] == {"level": 1}
    assert phase1["missing"]["error"] == "ResourceNotFoundError"
    assert phase1["other"]["ok"] == {"x": 1}
    assert phase1["update"]["ok"] == "done"
    assert phase1["update_event"]["ok"] == ["settings", "level"]
    assert phase1["after_update"]["ok"] == {"level": 2}
    assert phase1["stale"]["error"] == "FailedUpdateConditionCheckError"
    assert phase1["access_control"]["error"] == "InvalidArgumentsError"
    assert phase1["v1_settings"]["ok"] == {"level": 2, "names": ["a", "b"]}

    update = {"test.Config": {"MERGE": {"settings": {"mode": "fast"}}}}
    deployment = runtime.deploy(
        recipes, artifacts=artifacts, rootComponentVersionsToAdd=roots, componentToConfiguration=update
    )
    assert runtime.wait_deployment(deployment)["status"] == "SUCCEEDED"

    phase2 = read_json(out / "phase2.json", "the event of the deployment's change")
    assert phase2["deployment_event"]["ok"] == ["settings", "mode"]
    assert phase2["after_deployment"]["ok"] == {"mode": "fast"}
    details = runtime.call("GetComponentDetails", {"componentName": "test.Config"})["componentDetails"]
    assert details["configuration"]["settings"] == {"level": 2, "names": ["a", "b"], "mode": "fast"}


def test_a_component_rejecting_its_configuration_fails_the_deployment_and_accepting_lets_it_pass(
    runtime: RuntimeProcess, tmp_path: Path, recipes: Path, artifacts: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    script_component(
        recipes,
        artifacts,
        "test.Validator",
        "config_validator.py",
        str(out),
        configuration={"mode": "normal"},
    )
    roots = {"test.Validator": "1.0.0"}
    assert (
        runtime.wait_deployment(
            runtime.deploy(recipes, artifacts=artifacts, rootComponentVersionsToAdd=roots)
        )["status"]
        == "SUCCEEDED"
    )
    wait_until(lambda: (out / "ready").exists(), timeout=60, what="the validator to subscribe")

    def deploy_mode(mode: str) -> dict[str, Any]:
        deployment = runtime.deploy(
            recipes,
            artifacts=artifacts,
            rootComponentVersionsToAdd=roots,
            componentToConfiguration={"test.Validator": {"MERGE": {"mode": mode}}},
            configurationValidationPolicy={"timeoutInSeconds": 30},
        )
        return runtime.wait_deployment(deployment)

    rejected = deploy_mode("bad")

    assert rejected["status"] == "FAILED"
    details = rejected["deploymentStatusDetails"]
    assert details["detailedDeploymentStatus"] == "FAILED_NO_STATE_CHANGE"
    assert "test.Validator" in details["deploymentFailureCause"]
    assert "mode bad is not supported" in details["deploymentFailureCause"]
    configuration = runtime.call("GetComponentDetails", {"componentName": "test.Validator"})[
        "componentDetails"
    ]
    assert configuration["configuration"]["mode"] == "normal"

    accepted = deploy_mode("good")

    assert accepted["status"] == "SUCCEEDED"
    configuration = runtime.call("GetComponentDetails", {"componentName": "test.Validator"})[
        "componentDetails"
    ]
    assert configuration["configuration"]["mode"] == "good"
    validations = [json.loads(line) for line in (out / "validations").read_text().splitlines()]
    assert [(v["deploymentId"], v["mode"], v["status"]) for v in validations] == [
        (rejected["deploymentId"], "bad", "REJECTED"),
        (accepted["deploymentId"], "good", "ACCEPTED"),
    ]

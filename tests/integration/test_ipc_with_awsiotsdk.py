"""The CLI IPC operations, called from component processes with the real awsiotsdk client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.runtime_process import RuntimeProcess, script_component, write_recipe
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def test_every_cli_operation_works_from_the_awsiotsdk_client(
    runtime: RuntimeProcess, tmp_path: Path, recipes: Path, artifacts: Path
) -> None:
    late_recipes = tmp_path / "late-recipes"
    write_recipe(
        late_recipes,
        "test.Late",
        "1.0.0",
        """\
        Manifests:
          - Lifecycle:
              Run: exec sleep 600
        """,
    )
    write_recipe(
        recipes,
        "test.Target",
        "1.0.0",
        """\
        ComponentConfiguration:
          DefaultConfiguration:
            answer: 42
        Manifests:
          - Lifecycle:
              Run: exec sleep 600
        """,
    )
    out = tmp_path / "results.json"
    policy = {
        "aws.greengrass.Cli": {
            "test.Operator:cli:1": {
                "policyDescription": "everything the CLI does",
                "operations": ["*"],
                "resources": ["*"],
            }
        }
    }
    script_component(
        recipes,
        artifacts,
        "test.Operator",
        "cli_operations.py",
        f"{out} {late_recipes} test.Target",
        configuration={"accessControl": policy},
    )
    roots = {"test.Target": "1.0.0", "test.Operator": "1.0.0"}
    deployment = runtime.deploy(recipes, artifacts=artifacts, rootComponentVersionsToAdd=roots)
    assert runtime.wait_deployment(deployment)["status"] == "SUCCEEDED"
    results = json.loads(
        wait_until(lambda: out.exists() and out.read_text(), timeout=90, what="the client results")
    )

    components = dict(map(tuple, results["list_components"]["ok"]))
    assert components["test.Target"] == "RUNNING"
    assert components["aws.greengrass.Nucleus"] == "RUNNING"
    assert results["get_component_details"]["ok"] == ["test.Target", "1.0.0", "RUNNING", {"answer": 42}]
    assert results["get_missing_component"]["error"] == "ResourceNotFoundError"
    assert results["restart_component"]["ok"] == "SUCCEEDED"
    deployment_id = results["create_local_deployment"]["ok"]
    assert results["get_local_deployment_status"]["ok"] == [deployment_id, "SUCCEEDED", "SUCCESSFUL"]
    assert deployment_id in results["list_local_deployments"]["ok"]
    assert "already ended" in results["cancel_finished_deployment"]["ok"]
    assert results["stop_component"]["ok"] == "SUCCEEDED"
    assert results["unsupported_operation"]["error"] == "ServiceError"
    assert "not supported" in results["unsupported_operation"]["message"]
    runtime.wait_state("test.Target", "FINISHED")
    assert runtime.states()["test.Late"] == "RUNNING"


def test_component_without_a_policy_is_refused(
    runtime: RuntimeProcess, tmp_path: Path, recipes: Path, artifacts: Path
) -> None:
    out = tmp_path / "denied.json"
    policy = {
        "aws.greengrass.ipc.pubsub": {
            "test.Denied:pubsub:1": {"operations": ["aws.greengrass#PublishToTopic"], "resources": ["*"]}
        }
    }
    script_component(
        recipes, artifacts, "test.Denied", "denied.py", str(out), configuration={"accessControl": policy}
    )
    runtime.wait_deployment(
        runtime.deploy(recipes, artifacts=artifacts, rootComponentVersionsToAdd={"test.Denied": "1.0.0"})
    )
    outcome = json.loads(
        wait_until(lambda: out.exists() and out.read_text(), timeout=60, what="the client outcome")
    )
    assert outcome["error"] == "UnauthorizedError"
    assert "test.Denied" in outcome["message"]
    assert "ListComponents" in outcome["message"]

"""Fleet deployments end to end: a real ``edgewise cloud up`` and real runtime processes bootstrapped with
``edgewise device bootstrap``, components published with ``edgewise component publish`` and rolled out with
``edgewise deployment create``.

One cloud serves the module; each test uses its own thing group and component names, so tests do not see each
other's deployments.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cloud.test_cli_registry import ok, run
from tests.support.cloud_process import CloudProcess
from tests.support.runtime_process import RuntimeProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

SLEEPER = "import time\nwhile True:\n    time.sleep(60)\n"
FAILER = "raise SystemExit(3)\n"
_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("fleet-e2e") / "data") as process:
        yield process.wait_ready()


class Fleet:
    """Devices of one test: their runtimes, started from the files ``edgewise device bootstrap`` wrote."""

    def __init__(self, cloud: CloudProcess, directory: Path) -> None:
        self.cloud = cloud
        self.directory = directory
        self.runtimes: dict[str, RuntimeProcess] = {}

    def enroll(self, thing: str) -> RuntimeProcess:
        out = self.directory / thing / "identity"
        result = run(
            self.cloud,
            "device",
            "bootstrap",
            "--thing",
            thing,
            "--out",
            str(out),
            "--data",
            str(self.cloud.data_dir),
        )
        assert result.exit_code == 0, result.stderr
        runtime = RuntimeProcess(
            self.directory / thing / "root", "--thing-name", thing, "--config", str(out / "edgewise.yaml")
        )
        self.runtimes[thing] = runtime
        return runtime

    def stop(self) -> None:
        for runtime in self.runtimes.values():
            if runtime.process is not None and runtime.process.poll() is None:
                runtime.stop()


@pytest.fixture
def fleet(cloud: CloudProcess, tmp_path: Path) -> Iterator[Fleet]:
    devices = Fleet(cloud, tmp_path)
    try:
        yield devices
    finally:
        devices.stop()


def done(cloud: CloudProcess, *args: str) -> None:
    """Run a CLI command that must succeed."""
    result = run(cloud, *args)
    assert result.exit_code == 0, result.stderr


def publish(cloud: CloudProcess, directory: Path, name: str, version: str, script: str) -> None:
    """Publish a component whose Run step runs ``script`` (an artifact) with this Python."""
    artifacts = directory / f"{name}-{version}"
    artifacts.mkdir(parents=True)
    (artifacts / "main.py").write_text(script)
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentConfiguration": {"DefaultConfiguration": {"greeting": "hello"}},
        "Manifests": [
            {
                "Platform": {"os": "*"},
                "Artifacts": [{"Uri": f"s3://bucket/{name}/{version}/main.py"}],
                "Lifecycle": {"Run": f"{sys.executable} {{artifacts:path}}/main.py"},
            }
        ],
    }
    recipe_file = directory / f"{name}-{version}.json"
    recipe_file.write_text(json.dumps(recipe))
    result = run(cloud, "component", "publish", "--recipe", str(recipe_file), "--artifacts", str(artifacts))
    assert result.exit_code == 0, result.stderr


def deploy(cloud: CloudProcess, target: str, components: dict[str, str], **extra: Any) -> str:
    body = {
        "targetArn": target,
        "components": {name: {"componentVersion": version} for name, version in components.items()},
        **extra,
    }
    answer = ok(
        cloud,
        "deployment",
        "create",
        "--file",
        _write_json(cloud.data_dir.parent / f"{target}-deployment.json", body),
    )
    return str(answer["deploymentId"])


def _write_json(path: Path, body: dict[str, Any]) -> str:
    path.write_text(json.dumps(body))
    return str(path)


def devices(cloud: CloudProcess, deployment_id: str) -> dict[str, dict[str, Any]]:
    """Each thing's latest execution of the deployment."""
    with cloud.api(cloud.admin_token) as api:
        answer = api.get(f"/deployments/{deployment_id}/devices", params={"limit": 1000})
    assert answer.status_code == 200, answer.text
    latest: dict[str, dict[str, Any]] = {}
    for execution in answer.json()["data"]:
        latest[execution["thingName"]] = execution
    return latest


def wait_statuses(
    cloud: CloudProcess, deployment_id: str, expected: dict[str, str]
) -> dict[str, dict[str, Any]]:
    def reached() -> dict[str, dict[str, Any]] | None:
        latest = devices(cloud, deployment_id)
        statuses = {thing: execution["status"] for thing, execution in latest.items()}
        return latest if statuses == expected else None

    return wait_until(reached, timeout=_TIMEOUT, what=f"deployment {deployment_id} to reach {expected}")


def deployment_status(cloud: CloudProcess, deployment_id: str) -> str:
    with cloud.api(cloud.admin_token) as api:
        return str(api.get(f"/deployments/{deployment_id}").json()["deploymentStatus"])


def test_a_group_deployment_reaches_every_device_and_a_thing_added_later(
    cloud: CloudProcess, fleet: Fleet, tmp_path: Path
) -> None:
    publish(cloud, tmp_path, "e2e.Hello", "1.0.0", SLEEPER)
    ok(cloud, "group", "create", "plant-a")
    for thing in ("a-1", "a-2", "a-3"):
        fleet.enroll(thing).start()
        done(cloud, "group", "add-thing", "plant-a", thing)
    deployment = deploy(cloud, "plant-a", {"e2e.Hello": "1.0.0"})
    executions = wait_statuses(cloud, deployment, dict.fromkeys(("a-1", "a-2", "a-3"), "SUCCEEDED"))
    assert {e["statusDetails"]["detailed-deployment-status"] for e in executions.values()} == {"SUCCESSFUL"}
    for thing in ("a-1", "a-2", "a-3"):
        assert fleet.runtimes[thing].states()["e2e.Hello"] == "RUNNING"

    # A fourth device joins the group: the continuous deployment reaches it without a new deployment.
    fleet.enroll("a-4").start()
    done(cloud, "group", "add-thing", "plant-a", "a-4")
    wait_statuses(cloud, deployment, dict.fromkeys(("a-1", "a-2", "a-3", "a-4"), "SUCCEEDED"))
    fleet.runtimes["a-4"].wait_state("e2e.Hello", "RUNNING")

    # Fleet status reaches the cloud: every device reports its components.
    def reported() -> bool:
        listed = ok(cloud, "core-device", "get", "a-4")
        return any(
            c["componentName"] == "e2e.Hello" and c["lifecycleState"] == "RUNNING"
            for c in listed["installedComponents"]
        )

    wait_until(reported, timeout=_TIMEOUT, what="a-4's fleet status")


def test_a_failing_version_rolls_back_on_each_device_and_the_rollout_aborts(
    cloud: CloudProcess, fleet: Fleet, tmp_path: Path
) -> None:
    publish(cloud, tmp_path, "e2e.Service", "1.0.0", SLEEPER)
    publish(cloud, tmp_path, "e2e.Service", "2.0.0", FAILER)
    ok(cloud, "group", "create", "plant-b")
    things = ("b-1", "b-2", "b-3")
    for thing in things:
        fleet.enroll(thing).start()
        done(cloud, "group", "add-thing", "plant-b", thing)
    good = deploy(cloud, "plant-b", {"e2e.Service": "1.0.0"})
    wait_statuses(cloud, good, dict.fromkeys(things, "SUCCEEDED"))

    # One device a minute, abort when half of at least one executed device failed: the first failure stops it.
    bad = deploy(
        cloud,
        "plant-b",
        {"e2e.Service": "2.0.0"},
        iotJobConfiguration={
            "jobExecutionsRolloutConfig": {"maximumPerMinute": 1},
            "abortConfig": {
                "criteriaList": [
                    {
                        "failureType": "FAILED",
                        "action": "CANCEL",
                        "thresholdPercentage": 50,
                        "minNumberOfExecutedThings": 1,
                    }
                ]
            },
        },
    )
    seen: list[Any] = []

    def aborted() -> bool:
        seen[:] = [deployment_status(cloud, bad), devices(cloud, bad)]
        return seen[0] == "FAILED"

    try:
        wait_until(aborted, timeout=_TIMEOUT, what="the rollout to abort")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen {seen}") from None
    latest = devices(cloud, bad)
    failed = [thing for thing, execution in latest.items() if execution["status"] == "FAILED"]
    assert len(failed) == 1, latest
    details = latest[failed[0]]["statusDetails"]
    assert details["detailed-deployment-status"] == "FAILED_ROLLBACK_COMPLETE"
    assert "e2e.Service" in details["deployment-failure-cause"]
    assert all(execution["status"] in ("FAILED", "CANCELED") for execution in latest.values())
    for thing in things:
        runtime = fleet.runtimes[thing]
        runtime.wait_state("e2e.Service", "RUNNING")
        versions = {c["componentName"]: c["version"] for c in runtime.call("ListComponents")["components"]}
        assert versions["e2e.Service"] == "1.0.0"


def test_an_offline_device_catches_up_and_a_killed_one_finishes_after_restart(
    cloud: CloudProcess, fleet: Fleet, tmp_path: Path
) -> None:
    publish(cloud, tmp_path, "e2e.Late", "1.0.0", SLEEPER)
    ok(cloud, "group", "create", "plant-c")
    for thing in ("c-1", "c-2"):
        fleet.enroll(thing).start()
        done(cloud, "group", "add-thing", "plant-c", thing)
    offline = fleet.runtimes["c-1"]
    offline.stop()
    deployment = deploy(cloud, "plant-c", {"e2e.Late": "1.0.0"})
    wait_statuses(cloud, deployment, {"c-1": "QUEUED", "c-2": "SUCCEEDED"})
    offline.start()
    wait_statuses(cloud, deployment, {"c-1": "SUCCEEDED", "c-2": "SUCCEEDED"})

    # kill -9 while the next deployment is being applied: after a restart the device finishes and reports.
    publish(cloud, tmp_path, "e2e.Late", "1.1.0", SLEEPER)
    killed = fleet.runtimes["c-2"]
    second = deploy(cloud, "plant-c", {"e2e.Late": "1.1.0"})
    wait_until(
        lambda: devices(cloud, second).get("c-2", {}).get("status") in ("IN_PROGRESS", "SUCCEEDED"),
        timeout=_TIMEOUT,
        what="c-2 to start the second deployment",
    )
    killed.kill9()
    killed.start()
    wait_statuses(cloud, second, {"c-1": "SUCCEEDED", "c-2": "SUCCEEDED"})
    versions = {c["componentName"]: c["version"] for c in killed.call("ListComponents")["components"]}
    assert versions["e2e.Late"] == "1.1.0"
    # With no cloud at all (API, workers and broker frozen), a restarted device runs its last good deployment.
    killed.stop()
    frozen = [cloud.process.pid, *cloud.mosquitto_pids()]
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        killed.start()
        killed.wait_state("e2e.Late", "RUNNING")
        versions = {c["componentName"]: c["version"] for c in killed.call("ListComponents")["components"]}
        assert versions["e2e.Late"] == "1.1.0"
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)


def test_a_device_in_two_groups_runs_both_and_a_version_conflict_names_both_groups(
    cloud: CloudProcess, fleet: Fleet, tmp_path: Path
) -> None:
    publish(cloud, tmp_path, "e2e.Shared", "1.0.0", SLEEPER)
    publish(cloud, tmp_path, "e2e.Shared", "2.0.0", SLEEPER)
    publish(cloud, tmp_path, "e2e.Extra", "1.0.0", SLEEPER)
    for group in ("site-x", "site-y"):
        ok(cloud, "group", "create", group)
    device = fleet.enroll("d-1").start()
    for group in ("site-x", "site-y"):
        done(cloud, "group", "add-thing", group, "d-1")
    first = deploy(cloud, "site-x", {"e2e.Shared": "1.0.0"})
    wait_statuses(cloud, first, {"d-1": "SUCCEEDED"})
    second = deploy(cloud, "site-y", {"e2e.Extra": "1.0.0"})
    wait_statuses(cloud, second, {"d-1": "SUCCEEDED"})
    assert {name: state for name, state in device.states().items() if name.startswith("e2e.")} == {
        "e2e.Shared": "RUNNING",
        "e2e.Extra": "RUNNING",
    }

    conflicting = deploy(cloud, "site-y", {"e2e.Extra": "1.0.0", "e2e.Shared": "2.0.0"})
    failed = wait_statuses(cloud, conflicting, {"d-1": "FAILED"})["d-1"]["statusDetails"]
    assert failed["detailed-deployment-status"] == "FAILED_NO_STATE_CHANGE"
    cause = failed["deployment-failure-cause"]
    assert "site-x" in cause, cause
    assert "site-y" in cause, cause
    versions = {c["componentName"]: c["version"] for c in device.call("ListComponents")["components"]}
    assert versions["e2e.Shared"] == "1.0.0"

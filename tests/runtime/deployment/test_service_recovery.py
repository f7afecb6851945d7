"""Crash safety: an activation interrupted by a crash is finished from ``current.json``; a Bootstrap step that
asks for a restart leaves the deployment to the next run, which skips the steps already run."""

from __future__ import annotations

import asyncio
import json

from tests.runtime.deployment.conftest import Device

from edgewise.runtime.deployment import DeploymentStatus, DetailedStatus
from edgewise.runtime.lifecycle.bootstrap import BootstrapAction


async def test_an_interrupted_activation_is_finished_from_current_json(device: Device) -> None:
    device.recipe("A", "1.0.0")
    first = device.service()
    first.recover()
    first.start()
    first.submit(device.document("d-1", {"A": "1.0.0"}))
    await first.wait_final("d-1")
    planned = device.tree()
    await first.close()
    # What a runtime killed just after storing the planned tree of d-2 leaves behind.
    document = device.document("d-2", {"A": "1.0.0"})
    previous = {"services": {}, "groups": {}}
    current = {"document": document.to_json(), "previous": previous, "planned": planned}
    (device.paths.deployments_dir / "current.json").write_text(json.dumps(current))
    record = {
        "deploymentId": "d-2",
        "createdMs": 0,
        "status": "IN_PROGRESS",
        "document": document.to_json(),
    }
    (device.paths.deployments_dir / "history" / "d-2.json").write_text(json.dumps(record))
    device.store.replace_all({"services": {}, "groups": {}})

    second = device.service()
    second.recover()
    assert device.tree() == planned  # re-activated before anything runs
    second.start()
    finished = await second.wait_final("d-2")

    assert finished is not None
    assert (finished.status, finished.detailed_status) == (
        DeploymentStatus.SUCCEEDED,
        DetailedStatus.SUCCESSFUL,
    )
    assert device.tree() == planned


async def test_a_bootstrap_restart_is_taken_up_after_the_restart_without_running_the_step_again(
    device: Device,
) -> None:
    device.recipe("A", "1.0.0", bootstrap=True)
    device.supervisor.bootstrap_actions["A"] = BootstrapAction.RESTART
    first = device.service()
    first.recover()
    first.start()

    first.submit(device.document("d-1", {"A": "1.0.0"}))
    async with asyncio.timeout(5):
        while not device.restarts:
            await asyncio.sleep(0)
    await first.close()  # the runtime stops
    record = first.get("d-1")
    assert record is not None
    assert record.status is DeploymentStatus.IN_PROGRESS
    assert "A" not in device.versions()

    second = device.service()
    second.recover()
    second.start()
    finished = await second.wait_final("d-1")

    assert device.restarts == [BootstrapAction.RESTART]
    assert device.supervisor.bootstrapped == ["A"]
    assert finished is not None
    assert finished.status is DeploymentStatus.SUCCEEDED
    assert device.versions()["A"] == "1.0.0"


async def test_a_failing_bootstrap_step_fails_the_deployment_with_no_state_change(device: Device) -> None:
    device.recipe("A", "1.0.0", bootstrap=True)
    device.supervisor.bootstrap_actions["A"] = BootstrapAction.FAIL
    service = device.service()
    service.recover()
    service.start()

    service.submit(device.document("d-1", {"A": "1.0.0"}))
    record = await service.wait_final("d-1")

    assert record is not None
    assert (record.status, record.detailed_status) == (
        DeploymentStatus.FAILED,
        DetailedStatus.FAILED_NO_STATE_CHANGE,
    )
    assert record.error_types == ("COMPONENT_BOOTSTRAP_ERROR",)
    assert "A" not in device.versions()

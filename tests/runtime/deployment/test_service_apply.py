"""The deployment service's stages over a fake supervisor: success, rollback to the exact previous tree,
DO_NOTHING, and the resolution error naming the groups."""

from __future__ import annotations

from tests.runtime.deployment.conftest import Device

from edgewise.runtime.deployment import DeploymentStatus, DetailedStatus, FailureHandlingPolicy


async def test_a_deployment_stores_the_planned_tree_and_succeeds_once_every_component_runs(
    device: Device,
) -> None:
    device.recipe("A", "1.0.0", dependencies={"B": "^1.0.0"})
    device.recipe("B", "1.0.0")
    service = device.service()
    service.recover()
    service.start()

    service.submit(device.document("d-1", {"A": "1.0.0"}))
    record = await service.wait_final("d-1")

    assert record is not None
    assert (record.status, record.detailed_status) == (DeploymentStatus.SUCCEEDED, DetailedStatus.SUCCESSFUL)
    assert device.versions() == {"aws.greengrass.Nucleus": "2.12.0", "A": "1.0.0", "B": "1.0.0"}
    assert device.tree()["groups"] == {"LOCAL_DEPLOYMENT": {"A": "1.0.0"}}
    assert (device.paths.recipes_dir / "A@1.0.0.recipe.yaml").is_file()


async def test_a_broken_component_rolls_back_to_the_exact_previous_tree(device: Device) -> None:
    device.recipe("A", "1.0.0")
    device.recipe("A", "2.0.0")
    device.supervisor.breaks.add(("A", "2.0.0"))
    service = device.service()
    service.recover()
    service.start()
    service.submit(device.document("d-1", {"A": "1.0.0"}))
    await service.wait_final("d-1")
    before = device.tree()

    service.submit(device.document("d-2", {"A": "2.0.0"}))
    record = await service.wait_final("d-2")

    assert record is not None
    assert (record.status, record.detailed_status) == (
        DeploymentStatus.FAILED,
        DetailedStatus.FAILED_ROLLBACK_COMPLETE,
    )
    assert record.failure_cause == "A is BROKEN (Run exited with code 1)"
    assert record.error_types == ("COMPONENT_BROKEN",)
    assert device.tree() == before
    assert device.supervisor.states()["A"].value == "RUNNING"


async def test_do_nothing_leaves_the_failed_tree_in_place(device: Device) -> None:
    device.recipe("A", "1.0.0")
    device.supervisor.breaks.add(("A", "1.0.0"))
    service = device.service()
    service.recover()
    service.start()

    service.submit(device.document("d-1", {"A": "1.0.0"}, failure_policy=FailureHandlingPolicy.DO_NOTHING))
    record = await service.wait_final("d-1")

    assert record is not None
    assert record.detailed_status is DetailedStatus.FAILED_ROLLBACK_NOT_REQUESTED
    assert device.versions()["A"] == "1.0.0"
    assert device.tree()["groups"] == {"LOCAL_DEPLOYMENT": {"A": "1.0.0"}}


async def test_a_resolution_conflict_between_groups_names_them_and_changes_nothing(device: Device) -> None:
    device.recipe("App", "1.0.0", dependencies={"Lib": "^1.0.0"})
    device.recipe("Lib", "1.0.0")
    device.recipe("Lib", "2.0.0")
    service = device.service()
    service.recover()
    service.start()
    service.submit(device.document("d-1", {"App": "1.0.0"}, group="thinggroup/apps"))
    await service.wait_final("d-1")
    before = device.tree()

    service.submit(device.document("d-2", {"Lib": "2.0.0"}, group="thinggroup/libs"))
    record = await service.wait_final("d-2")

    assert record is not None
    assert (record.status, record.detailed_status) == (
        DeploymentStatus.FAILED,
        DetailedStatus.FAILED_NO_STATE_CHANGE,
    )
    assert record.failure_cause is not None
    assert record.failure_cause.startswith("Cannot resolve Lib: ")
    assert record.failure_cause.endswith(
        "; Lib is required through thinggroup/apps (App 1.0.0) and thinggroup/libs (Lib 2.0.0)"
    )
    assert record.error_types == ("DEPENDENCY_RESOLUTION_ERROR",)
    assert device.tree() == before


async def test_a_resolution_error_on_a_device_with_one_group_names_no_group(device: Device) -> None:
    service = device.service()
    service.recover()
    service.start()

    service.submit(device.document("d-1", {"Nowhere": "1.0.0"}))
    record = await service.wait_final("d-1")

    assert record is not None
    assert (
        record.failure_cause
        == "Cannot resolve Nowhere: the deployment needs Nowhere 1.0.0, but no recipe for Nowhere is available"
    )
    assert record.error_types == ("DEPENDENCY_RESOLUTION_ERROR",)

"""Cancelling a deployment while it is queued or being prepared, and a source that fails: nothing changes."""

from __future__ import annotations

import asyncio

from tests.runtime.deployment.conftest import Device, ScriptedSource

from edgewise.recipe import parse_recipe
from edgewise.runtime.deployment import DeploymentError, DeploymentStatus, DetailedStatus

ARN = "arn:aws:greengrass:region:account:configurations:thinggroup/site:1"


async def test_a_deployment_cancelled_while_queued_is_never_applied(device: Device) -> None:
    device.recipe("A", "1.0.0")
    device.recipe("B", "1.0.0")
    service = device.service()
    service.recover()
    service.submit(device.document("d-1", {"A": "1.0.0"}))

    message = service.cancel("d-1")
    service.start()
    service.submit(device.document("d-2", {"B": "1.0.0"}))
    await service.wait_final("d-2")

    assert message == "Deployment d-1 cancelled"
    record = service.get("d-1")
    assert record is not None
    assert record.status is DeploymentStatus.CANCELED
    assert "A" not in device.versions()
    assert device.versions()["B"] == "1.0.0"


async def test_a_deployment_cancelled_while_its_source_fetches_is_interrupted_and_changes_nothing(
    device: Device,
) -> None:
    source = ScriptedSource()
    service = device.service()
    service.attach_source(source)
    service.recover()
    service.start()
    before = device.tree()

    service.submit(device.document("d-1", {"A": "1.0.0"}, configuration_arn=ARN, recipe_dir=None))
    await asyncio.wait_for(source.asked.wait(), timeout=5)
    message = service.cancel("d-1")
    record = await asyncio.wait_for(service.wait_final("d-1"), timeout=5)

    assert message == "Deployment d-1 cancelled"
    assert record is not None
    assert (record.status, record.failure_cause) == (DeploymentStatus.CANCELED, "Cancelled before activation")
    assert source.abandoned
    assert device.tree() == before


async def test_a_fleet_deployment_takes_its_recipes_from_the_attached_source(device: Device) -> None:
    recipe = parse_recipe(
        b'{"RecipeFormatVersion": "2020-01-25", "ComponentName": "A", "ComponentVersion": "1.0.0",'
        b' "Manifests": [{"Lifecycle": {"Run": "sleep 600"}}]}'
    )
    source = ScriptedSource({"A": [recipe]})
    source.release.set()
    service = device.service()
    service.attach_source(source)
    service.recover()
    service.start()

    service.submit(
        device.document(
            "d-1", {"A": "1.0.0"}, configuration_arn=ARN, group="thinggroup/site", replace_group_roots=True
        )
    )
    record = await service.wait_final("d-1")

    assert record is not None
    assert record.status is DeploymentStatus.SUCCEEDED
    assert device.tree()["groups"] == {"thinggroup/site": {"A": "1.0.0"}}


async def test_a_source_that_fails_ends_the_deployment_with_no_state_change(device: Device) -> None:
    source = ScriptedSource(error=DeploymentError("The cloud did not answer", error_types=("NETWORK_ERROR",)))
    service = device.service()
    service.attach_source(source)
    service.recover()
    service.start()
    before = device.tree()

    service.submit(device.document("d-1", {"A": "1.0.0"}, configuration_arn=ARN))
    record = await service.wait_final("d-1")

    assert record is not None
    assert (record.status, record.detailed_status) == (
        DeploymentStatus.FAILED,
        DetailedStatus.FAILED_NO_STATE_CHANGE,
    )
    assert (record.failure_cause, record.error_types) == ("The cloud did not answer", ("NETWORK_ERROR",))
    assert device.tree() == before

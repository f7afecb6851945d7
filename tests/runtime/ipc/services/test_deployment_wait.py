"""Waiting for a deployment to end: the record comes back as soon as it is final, however it ended."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.runtime.ipc.services.harness import submit, wait_deployment
from tests.support.runtime_process import write_recipe

from edgewise.runtime.deployment import DeploymentStatus
from edgewise.runtime.kernel import Kernel


async def test_a_cancelled_queued_deployment_ends_the_wait(kernel: Kernel, recipes: Path) -> None:
    write_recipe(recipes, "test.Slow", "1.0.0", "Manifests:\n  - Lifecycle:\n      Run: sleep 30\n")
    first = submit(kernel, recipes, {"test.Slow": "1.0.0"})
    queued = submit(kernel, recipes, {"test.Slow": "1.0.0"})
    waiting = asyncio.create_task(wait_deployment(kernel, queued))

    kernel.deployments.cancel(queued)

    assert (await waiting).status is DeploymentStatus.CANCELED
    assert (await wait_deployment(kernel, first)).status is DeploymentStatus.SUCCEEDED


async def test_an_unknown_deployment_is_none(kernel: Kernel) -> None:
    assert await kernel.deployments.wait_final("no-such-deployment") is None

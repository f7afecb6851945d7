"""One execution at a time, in as few requests as the protocol allows: a notification that arrives while the agent
applies a deployment is remembered and acted on when that deployment ends, and nothing is asked after a report
that no notification called for.

The agent runs on a real cloud link to a real Mosquitto; the test plays the jobs service (as in
test_fleet_reports.py) and the deployment service, whose deployments end when the test says.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest.mock import create_autospec

import pytest
from tests.runtime.fleet.test_fleet_reports import Device, JobsService, execution, start_device
from tests.support.cloudlink_settings import SettingsFactory
from tests.support.mosquitto import Mosquitto

from edgewise.runtime.deployment import DeploymentRecord, DeploymentService, DeploymentStatus, DetailedStatus


def document(job_id: str) -> dict[str, Any]:
    return {
        "deploymentId": f"deployment-{job_id}",
        "configurationArn": "arn:aws:greengrass:edgewise:edgewise:configuration:thinggroup/fleet:1",
        "creationTimestamp": 1764100000000,
        "components": {},
    }


class Deployments:
    """The deployment service's side: each submitted deployment ends SUCCEEDED once ``finish`` is set."""

    def __init__(self) -> None:
        self.service = create_autospec(DeploymentService, instance=True)
        self.finish = asyncio.Event()
        self.service.wait_final.side_effect = self._wait_final

    async def _wait_final(self, deployment_id: str) -> DeploymentRecord:
        await self.finish.wait()
        return DeploymentRecord(deployment_id, 0, DeploymentStatus.IN_PROGRESS).with_status(
            DeploymentStatus.SUCCEEDED, DetailedStatus.SUCCESSFUL
        )

    def submitted(self) -> list[str]:
        return [call.args[0].deployment_id for call in self.service.submit.call_args_list]


@pytest.fixture
def jobs(broker: Mosquitto) -> Any:
    with broker.client("jobs-service") as client:
        yield JobsService(client)


@pytest.fixture
def deployments() -> Deployments:
    return Deployments()


@pytest.fixture
async def device(
    settings_for: SettingsFactory, tmp_path: Path, jobs: JobsService, deployments: Deployments
) -> AsyncIterator[Device]:
    device = await start_device(
        settings_for, tmp_path / "root", confirm_interval=60.0, deployments=deployments.service
    )
    yield device
    await device.close()


async def start_job_1(jobs: JobsService, deployments: Deployments) -> None:
    """Answer the start-next the agent sends on connecting with job-1; the agent submits its deployment."""
    await jobs.wait(lambda: jobs.starts(), "the start-next on connection")
    jobs.answer_start(jobs.starts()[0], execution=execution("IN_PROGRESS", 2, document=document("job-1")))
    await jobs.wait(deployments.submitted, "the deployment of job-1")


def sent(jobs: JobsService) -> list[str]:
    """What the agent asked, in order: start-next, or the job and operation."""
    return [
        name.split("/")[-1]
        if name.endswith("start-next")
        else f"{name.split('/')[0]} {body.get('status', 'get')}"
        for name, body in jobs.arrived()
    ]


async def test_a_notification_while_busy_starts_the_next_execution_only_when_the_current_one_ends(
    device: Device, jobs: JobsService, deployments: Deployments
) -> None:
    await start_job_1(jobs, deployments)

    jobs.notify("job-1", "job-2")  # job-2 was queued meanwhile
    jobs.notify("job-2", "job-1")  # and the list changed again: the latest one counts
    deployments.finish.set()
    await jobs.wait(lambda: len(jobs.starts()) == 2, "the start-next after job-1 ended")
    jobs.answer_start(
        jobs.starts()[1], execution=execution("IN_PROGRESS", 2, job_id="job-2", document=document("job-2"))
    )
    await jobs.wait(lambda: len(deployments.submitted()) == 2, "the deployment of job-2")
    await jobs.wait(lambda: jobs.requests("job-2", "update"), "the report of job-2")
    await jobs.drained()

    # Nothing between the notifications and the end of job-1; nothing after job-2 but the drain's start-next.
    assert sent(jobs) == ["start-next", "job-1 SUCCEEDED", "start-next", "job-2 SUCCEEDED", "start-next"]
    assert deployments.submitted() == ["deployment-job-1", "deployment-job-2"]


async def test_a_retry_of_the_job_being_handled_is_started_when_the_first_execution_ends(
    device: Device, jobs: JobsService, deployments: Deployments
) -> None:
    await start_job_1(jobs, deployments)

    # The cloud lists job-1 again, its second execution: the first one, no longer listed, is asked about
    # (cancelled?), and the retry is remembered while the first execution is applied.
    jobs.notify("job-1", execution_number=2)
    await jobs.wait(lambda: jobs.requests("job-1", "get"), "the question about job-1's first execution")
    deployments.finish.set()
    await jobs.wait(lambda: len(jobs.starts()) == 2, "the start-next after job-1's first execution ended")

    assert sent(jobs) == ["start-next", "job-1 get", "job-1 SUCCEEDED", "start-next"]


async def test_nothing_is_asked_after_a_report_until_a_notification_lists_a_pending_execution(
    device: Device, jobs: JobsService, deployments: Deployments
) -> None:
    await start_job_1(jobs, deployments)
    deployments.finish.set()
    await jobs.wait(lambda: jobs.reports("SUCCEEDED"), "the SUCCEEDED report")
    jobs.answer("job-1", "update", "accepted", jobs.reports("SUCCEEDED")[0])
    jobs.notify()  # job-1 left the pending list, and nothing else is pending
    await jobs.drained()

    assert sent(jobs) == ["start-next", "job-1 SUCCEEDED", "start-next"]  # the last one is the drain's
    assert device.ledger()["job-1"]["confirmed"] is True


async def test_a_restart_while_applying_asks_describe_next_and_starts_nothing_until_that_deployment_ends(
    settings_for: SettingsFactory, tmp_path: Path, jobs: JobsService, deployments: Deployments
) -> None:
    first = await start_device(
        settings_for, tmp_path / "root", confirm_interval=60.0, deployments=deployments.service
    )
    await start_job_1(jobs, deployments)
    await first.close()
    asked = len(jobs.arrived())

    # The deployment service recovered job-1's deployment (``get`` finds it) and has not finished it yet.
    second = await start_device(
        settings_for, tmp_path / "root", confirm_interval=60.0, deployments=deployments.service
    )
    try:
        await jobs.wait(lambda: jobs.requests("$next", "get"), "the describe on connection")
        jobs.answer(
            "$next",
            "get",
            "accepted",
            jobs.requests("$next", "get")[0],
            execution=execution("IN_PROGRESS", 2),
        )
        deployments.finish.set()
        await jobs.wait(lambda: jobs.reports("SUCCEEDED"), "the report of job-1")
        await jobs.drained()
    finally:
        await second.close()

    assert sent(jobs)[asked:] == ["$next get", "job-1 SUCCEEDED", "start-next"]  # the last one is the drain's
    assert deployments.submitted() == ["deployment-job-1"]

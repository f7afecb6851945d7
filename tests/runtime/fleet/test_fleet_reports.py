"""Final job reports of the device agent: made once, confirmed, and made again only when the cloud lacks them.

The agent runs on a real cloud link to a real Mosquitto; the test plays the jobs service with a paho client, so
that it decides the order of the answers, as a jobs service answering requests concurrently may.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest.mock import create_autospec

import pytest
from tests.support.cloudlink_settings import SettingsFactory
from tests.support.mosquitto import Mosquitto, MqttClient
from tests.support.waiting import wait_until

from edgewise.runtime.cloudlink import CloudLink
from edgewise.runtime.config import ConfigStore
from edgewise.runtime.deployment import DeploymentService
from edgewise.runtime.fleet import FleetAgent
from edgewise.runtime.lifecycle import LifecycleSupervisor
from edgewise.runtime.paths import RootPaths

THING = "dev-1"
JOBS = f"$aws/things/{THING}/jobs"
NAMESPACE = "namespace-aws-gg-deployment"
START_NEXT = f"{JOBS}/{NAMESPACE}/start-next"
#: A document the agent refuses before doing anything: the job fails at once.
BAD_DOCUMENT = {"deploymentId": "not a deployment document"}


def topic(job_id: str, operation: str) -> str:
    return f"{JOBS}/{job_id}/{NAMESPACE}/{operation}"


def execution(
    status: str, version: int = 1, *, job_id: str = "job-1", document: Any = BAD_DOCUMENT
) -> dict[str, Any]:
    return {
        "jobId": job_id,
        "status": status,
        "versionNumber": version,
        "executionNumber": 1,
        "jobDocument": document,
    }


class JobsService:
    """The test's side of the jobs topics: it sees every request and answers only when told."""

    def __init__(self, client: MqttClient) -> None:
        self.client = client
        client.subscribe(START_NEXT)
        client.subscribe(topic("+", "get"))
        client.subscribe(topic("+", "update"))

    def requests(self, job_id: str, operation: str) -> list[dict[str, Any]]:
        return [json.loads(payload) for payload in self.client.payloads(topic(job_id, operation))]

    def starts(self) -> list[dict[str, Any]]:
        """The start-next requests, in order."""
        return [json.loads(m.payload) for m in self.client.received(START_NEXT) if m.topic == START_NEXT]

    def arrived(self) -> list[tuple[str, dict[str, Any]]]:
        """Every request, in order: (its topic after ``J/``, its body)."""
        return [
            (message.topic.removeprefix(f"{JOBS}/"), json.loads(message.payload))
            for message in self.client.received(JOBS)
        ]

    def answer_start(self, request: dict[str, Any], **body: Any) -> None:
        reply = {"clientToken": request["clientToken"], "timestamp": 1, **body}
        self.client.publish(f"{START_NEXT}/accepted", json.dumps(reply).encode())

    def notify(self, *pending: str, execution_number: int = 1) -> None:
        """A notification listing ``pending`` job ids as QUEUED (none: nothing is pending), each with
        ``execution_number``."""
        summaries = [
            {"jobId": job_id, "queuedAt": 1, "executionNumber": execution_number} for job_id in pending
        ]
        jobs = {"QUEUED": summaries} if pending else {}
        self.client.publish(f"{JOBS}/notify-{NAMESPACE}", json.dumps({"jobs": jobs, "timestamp": 2}).encode())

    def reports(self, status: str = "FAILED") -> list[dict[str, Any]]:
        return [request for request in self.requests("job-1", "update") if request["status"] == status]

    async def wait(self, condition: Callable[[], object], what: str) -> None:
        await asyncio.to_thread(wait_until, condition, timeout=20, what=what)

    def answer(self, job_id: str, operation: str, outcome: str, request: dict[str, Any], **body: Any) -> None:
        reply = {"clientToken": request["clientToken"], "timestamp": 1, **body}
        self.client.publish(f"{topic(job_id, operation)}/{outcome}", json.dumps(reply).encode())

    async def drained(self) -> None:
        """Return once the agent, idle with every start-next answered, has handled everything sent to it so far.

        The agent reads its messages in order and asks in order: the start-next a notification of a pending job
        makes comes after whatever the earlier answers made it send. That job is gone when it asks.
        """
        asked = len(self.starts())
        self.notify("gone")
        await self.wait(lambda: len(self.starts()) > asked, "the start-next after a notification")
        self.answer_start(self.starts()[-1])


@dataclass
class Device:
    link: CloudLink
    agent: FleetAgent
    paths: RootPaths

    async def close(self) -> None:
        await self.agent.close()
        await self.link.close()

    def ledger(self) -> dict[str, Any]:
        entries = json.loads((self.paths.deployments_dir / "fleet.json").read_text())["jobs"]
        return {entry["job_id"]: entry for entry in entries}


@pytest.fixture
def jobs(broker: Mosquitto) -> Any:
    with broker.client("jobs-service") as client:
        yield JobsService(client)


async def start_device(
    settings_for: SettingsFactory,
    root: Path,
    *,
    confirm_interval: float,
    deployments: DeploymentService | None = None,
) -> Device:
    paths = RootPaths.at(root)
    paths.deployments_dir.mkdir(parents=True, exist_ok=True)
    link = CloudLink(settings_for(), client_id=THING, spool_dir=root / "spool")
    await link.start()
    supervisor = create_autospec(LifecycleSupervisor, instance=True)
    supervisor.subscribe.side_effect = lambda callback: lambda: None
    agent = FleetAgent(
        link,
        thing=THING,
        settings=settings_for(),
        paths=paths,
        store=await asyncio.to_thread(ConfigStore.open, paths.config_dir),
        supervisor=supervisor,
        deployments=deployments or create_autospec(DeploymentService, instance=True),
        platform={"os": "linux", "architecture": "amd64"},
        confirm_interval=confirm_interval,
    )
    await agent.start()
    return Device(link, agent, paths)


@pytest.fixture
async def device(settings_for: SettingsFactory, tmp_path: Path, jobs: JobsService) -> AsyncIterator[Device]:
    """A device whose first job fails at once; its report confirmations wait far longer than a test."""
    device = await start_device(settings_for, tmp_path / "root", confirm_interval=60.0)
    yield device
    await device.close()


async def fail_the_first_job(jobs: JobsService) -> None:
    """Start job-1 for the start-next the agent sends on connecting; the agent reports it FAILED."""
    await jobs.wait(lambda: jobs.starts(), "the start-next on connection")
    jobs.answer_start(jobs.starts()[0], execution=execution("IN_PROGRESS", 2))
    await jobs.wait(lambda: jobs.reports(), "the FAILED report")


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The WARNING and worse lines, cut at their first colon."""
    return [
        record.getMessage().split(":")[0] for record in caplog.records if record.levelno >= logging.WARNING
    ]


@pytest.mark.parametrize("confirmation_first", [False, True])
async def test_an_answer_made_before_the_failed_report_arrived_does_not_make_it_again(
    device: Device, jobs: JobsService, caplog: pytest.LogCaptureFixture, confirmation_first: bool
) -> None:
    await fail_the_first_job(jobs)
    (report,) = jobs.reports()
    # A notification made before the report was applied: still pending.
    jobs.notify("job-1")
    await jobs.wait(lambda: len(jobs.starts()) == 2, "the start-next the notification makes")

    # The jobs service read the execution for the start-next before it applied the report.
    if confirmation_first:
        jobs.answer("job-1", "update", "accepted", report)
    jobs.answer_start(jobs.starts()[1], execution=execution("IN_PROGRESS", 2))
    if not confirmation_first:
        jobs.answer("job-1", "update", "accepted", report)
    await jobs.drained()

    assert len(jobs.reports()) == 1
    assert warnings(caplog) == ["Deployment job job-1 failed before activation"]
    assert device.ledger()["job-1"]["confirmed"] is True


async def test_an_invalid_state_transition_for_the_state_reported_confirms_the_report_quietly(
    device: Device, jobs: JobsService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edgewise.runtime.fleet")
    await fail_the_first_job(jobs)
    (report,) = jobs.reports()

    jobs.answer(
        "job-1",
        "update",
        "rejected",
        report,
        code="InvalidStateTransition",
        message="Execution is in FAILED and cannot move to FAILED",
        executionState={"status": "FAILED", "versionNumber": 2},
    )
    await jobs.drained()

    assert warnings(caplog) == ["Deployment job job-1 failed before activation"]
    assert "Job job-1 is final in the cloud already: its FAILED report is confirmed" in caplog.text
    assert device.ledger()["job-1"]["confirmed"] is True
    assert len(jobs.reports()) == 1


async def test_a_report_the_cloud_refused_is_made_again_at_once_when_the_job_shows_pending(
    device: Device, jobs: JobsService, caplog: pytest.LogCaptureFixture
) -> None:
    await fail_the_first_job(jobs)
    (report,) = jobs.reports()

    jobs.answer("job-1", "update", "rejected", report, code="RequestThrottled", message="Slow down")
    await jobs.wait(lambda: jobs.requests("job-1", "get"), "the agent asking about the refused report")
    jobs.answer(
        "job-1", "get", "accepted", jobs.requests("job-1", "get")[0], execution=execution("IN_PROGRESS", 2)
    )
    await jobs.wait(lambda: len(jobs.reports()) == 2, "the report made again")
    jobs.answer("job-1", "update", "accepted", jobs.reports()[1])
    await jobs.drained()

    assert warnings(caplog) == [
        "Deployment job job-1 failed before activation",
        "The jobs service rejected the FAILED report of job job-1 (RequestThrottled Slow down); asking for its "
        "status to report again",
    ]
    assert device.ledger()["job-1"]["confirmed"] is True


async def test_a_report_the_cloud_never_answered_is_made_again_once_it_shows_the_job_pending(
    settings_for: SettingsFactory, tmp_path: Path, jobs: JobsService
) -> None:
    device = await start_device(settings_for, tmp_path / "root", confirm_interval=0.5)
    await fail_the_first_job(jobs)

    await jobs.wait(lambda: jobs.requests("job-1", "get"), "the agent asking about its report")
    jobs.answer(
        "job-1", "get", "accepted", jobs.requests("job-1", "get")[0], execution=execution("IN_PROGRESS", 2)
    )
    await jobs.wait(lambda: len(jobs.reports()) == 2, "the report made again")
    jobs.answer("job-1", "update", "accepted", jobs.reports()[1])
    await jobs.drained()

    assert jobs.reports()[0]["statusDetails"] == jobs.reports()[1]["statusDetails"]
    assert device.ledger()["job-1"]["confirmed"] is True
    await device.close()


async def test_a_report_unconfirmed_at_a_restart_is_made_again_by_the_next_run(
    settings_for: SettingsFactory, tmp_path: Path, jobs: JobsService
) -> None:
    first = await start_device(settings_for, tmp_path / "root", confirm_interval=60.0)
    await fail_the_first_job(jobs)
    await first.close()
    assert first.ledger()["job-1"]["confirmed"] is False

    asked = len(jobs.starts())
    second = await start_device(settings_for, tmp_path / "root", confirm_interval=0.5)
    await jobs.wait(lambda: len(jobs.starts()) > asked, "the start-next of the new run")
    jobs.answer_start(jobs.starts()[asked], execution=execution("IN_PROGRESS", 2))
    await jobs.wait(
        lambda: jobs.requests("job-1", "get") or len(jobs.reports()) == 2, "a question or a report"
    )
    if len(jobs.reports()) == 1:  # the answer came within the interval: the agent asked again after it
        jobs.answer(
            "job-1",
            "get",
            "accepted",
            jobs.requests("job-1", "get")[0],
            execution=execution("IN_PROGRESS", 2),
        )
    await jobs.wait(lambda: len(jobs.reports()) == 2, "the report made again")
    jobs.answer("job-1", "update", "accepted", jobs.reports()[1])
    await jobs.drained()

    assert len(jobs.reports()) == 2
    assert second.ledger()["job-1"]["confirmed"] is True
    await second.close()

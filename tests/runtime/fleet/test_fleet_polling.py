"""A device whose question about the next execution got no answer asks again after ``confirm_interval`` seconds,
so a lost answer does not leave a deployment waiting for the next notification or reconnection; an answered one is
not repeated."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.runtime.fleet.test_fleet_reports import JobsService, execution, start_device
from tests.support.cloudlink_settings import SettingsFactory
from tests.support.mosquitto import Mosquitto


@pytest.fixture
def jobs_service(broker: Mosquitto) -> Iterator[JobsService]:
    with broker.client("jobs-service") as client:
        yield JobsService(client)


async def test_an_idle_agent_asks_for_the_next_execution_again_when_an_answer_was_lost(
    settings_for: SettingsFactory, tmp_path: Path, jobs_service: JobsService
) -> None:
    jobs = jobs_service
    device = await start_device(settings_for, tmp_path / "root", confirm_interval=0.2)
    try:
        await jobs.wait(lambda: jobs.starts(), "the start-next on connection")
        # Its answer is lost: no notification and no reconnection follow.
        await jobs.wait(lambda: len(jobs.starts()) >= 2, "a start-next asked again")
        jobs.answer_start(jobs.starts()[-1], execution=execution("IN_PROGRESS", 2))

        await jobs.wait(lambda: jobs.reports(), "the report of the execution offered by the later answer")
    finally:
        await device.close()

    assert [report["status"] for report in jobs.reports()] == ["FAILED"]


async def test_an_answered_start_next_is_not_asked_again(
    settings_for: SettingsFactory, tmp_path: Path, jobs_service: JobsService
) -> None:
    jobs = jobs_service
    device = await start_device(settings_for, tmp_path / "root", confirm_interval=0.1)
    try:
        await jobs.wait(lambda: jobs.starts(), "the start-next on connection")
        jobs.answer_start(jobs.starts()[-1])
        # The answer may cross a repeat already due; once that one is answered too, nothing more is asked.
        await asyncio.sleep(0.3)
        for request in jobs.starts()[1:]:
            jobs.answer_start(request)
        asked = len(jobs.starts())
        # An absence is observed over a window: ten confirm intervals in which a poll would have asked ten times.
        await asyncio.sleep(1.0)
        assert len(jobs.starts()) == asked
    finally:
        await device.close()

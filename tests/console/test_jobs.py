"""The Jobs pages over HTTP: the list (the seeded deployment's job among them) and a job with its live part."""

from __future__ import annotations

import re

import httpx

from tests.console.conftest import THING, ConsoleCloud, log_in


async def test_the_jobs_list_and_a_jobs_executions(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    await log_in(console_client, console_cloud.read_only_token)
    page = await console_client.get("/console/jobs")
    assert page.status_code == 200
    row = re.search(r'<th scope="row"><a href="/console/jobs/([^"]+)">.*?</tr>', page.text, re.S)
    assert row is not None
    assert "aws-gg-deployment" in row.group(0)
    assert "IN_PROGRESS" in row.group(0)

    job_id = row.group(1)
    job = await console_client.get(f"/console/jobs/{job_id}")
    assert job.status_code == 200
    assert f'hx-get="/console/jobs/{job_id}/partial"' in job.text
    assert "aws.greengrass.Cli" in job.text
    live = await console_client.get(f"/console/jobs/{job_id}/partial", headers={"HX-Request": "true"})
    assert "<html" not in live.text
    execution = re.search(rf'<a href="/console/things/{THING}">{THING}</a>.*?</tr>', live.text, re.S)
    assert execution is not None
    assert "QUEUED" in execution.group(0)


async def test_an_unknown_job_shows_the_api_message(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    await log_in(console_client, console_cloud.read_only_token)
    page = await console_client.get("/console/jobs/no-such-job")
    assert page.status_code == 404
    assert "no-such-job" in page.text

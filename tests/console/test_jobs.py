"""The Jobs pages over HTTP: the list (the seeded deployment's job among them), a job with its live part, and
the create form: a job made from it, and refusals (bad JSON, no CSRF token, a read-only token) shown with the
input kept and nothing created."""

from __future__ import annotations

import html
import json
import re

import httpx

from edgewise.cloud.jobs.targets import ARN_PREFIX
from tests.console.conftest import GROUP, OFFLINE_THING, THING, ConsoleCloud, log_in

DOCUMENT = {"operation": "firmware-update", "url": "https://example.com/fw-2.1.bin"}


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


def _alert(page: str) -> str:
    found = re.search(r'<p class="error" role="alert">(.*?)</p>', page, re.S)
    assert found is not None, "the page shows no error"
    return html.unescape(found.group(1))


async def _job_ids(client: httpx.AsyncClient, cloud: ConsoleCloud) -> list[str]:
    answer = await client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {cloud.admin_token}"})
    return [job["jobId"] for job in answer.json()["data"]]


def _form(csrf: str, job_id: str) -> dict[str, str | list[str]]:
    return {
        "csrf_token": csrf,
        "job_id": job_id,
        "target": [f"{ARN_PREFIX}thinggroup/{GROUP}", f"{ARN_PREFIX}thing/{OFFLINE_THING}"],
        "document": json.dumps(DOCUMENT),
        "description": "firmware 2.1",
        "rate": "5",
        "timeout": "30",
    }


async def test_create_a_job_from_the_form(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    csrf = await log_in(console_client, console_cloud.admin_token)
    form = await console_client.get("/console/jobs")
    assert f'<option value="{ARN_PREFIX}thinggroup/{GROUP}">{GROUP} (group)</option>' in form.text
    assert f'<option value="{ARN_PREFIX}thing/{OFFLINE_THING}">{OFFLINE_THING}</option>' in form.text

    created = await console_client.post("/console/jobs", data=_form(csrf, "firmware-21"))
    assert created.status_code == 303, created.text
    assert created.headers["location"] == "/console/jobs/firmware-21"
    answer = await console_client.get(
        "/api/v1/jobs/firmware-21", headers={"Authorization": f"Bearer {console_cloud.admin_token}"}
    )
    job = answer.json()
    assert job["document"] == DOCUMENT
    assert job["description"] == "firmware 2.1"
    assert job["jobExecutionsRolloutConfig"]["maximumPerMinute"] == 5
    assert job["timeoutConfig"]["inProgressTimeoutInMinutes"] == 30
    assert sorted(job["targets"]) == [f"{ARN_PREFIX}thing/{OFFLINE_THING}", f"{ARN_PREFIX}thinggroup/{GROUP}"]
    page = await console_client.get(created.headers["location"])
    assert page.status_code == 200
    assert "fw-2.1.bin" in page.text


async def test_refusals_show_the_message_keep_the_input_and_create_nothing(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient
) -> None:
    csrf = await log_in(console_client, console_cloud.admin_token)
    bad_json = await console_client.post(
        "/console/jobs", data={**_form(csrf, "broken-json"), "document": '{"operation": '}
    )
    assert bad_json.status_code == 422
    assert _alert(bad_json.text).startswith("Field 'document' is not valid JSON")
    assert '>{"operation": </textarea>' in html.unescape(bad_json.text)
    not_an_object = await console_client.post(
        "/console/jobs", data={**_form(csrf, "broken-json"), "document": "[]"}
    )
    assert _alert(not_an_object.text) == "Field 'document' must be a JSON object"
    bad_rate = await console_client.post("/console/jobs", data={**_form(csrf, "broken-json"), "rate": "fast"})
    assert _alert(bad_rate.text).startswith("Field 'rate'")
    assert "broken-json" not in await _job_ids(console_client, console_cloud)

    no_csrf = {name: value for name, value in _form(csrf, "no-csrf").items() if name != "csrf_token"}
    forbidden = await console_client.post("/console/jobs", data=no_csrf)
    assert forbidden.status_code == 403
    assert "no-csrf" not in await _job_ids(console_client, console_cloud)

    console_client.cookies.clear()
    viewer_csrf = await log_in(console_client, console_cloud.read_only_token)
    read_only = await console_client.post("/console/jobs", data=_form(viewer_csrf, "viewer-job"))
    assert read_only.status_code == 403
    api_answer = await console_client.post(
        "/api/v1/jobs",
        json={"jobId": "viewer-job", "targets": [GROUP], "document": DOCUMENT},
        headers={"Authorization": f"Bearer {console_cloud.read_only_token}"},
    )
    assert api_answer.status_code == 403
    assert _alert(read_only.text) == api_answer.json()["message"]
    assert 'value="viewer-job"' in read_only.text
    assert f'<option value="{ARN_PREFIX}thinggroup/{GROUP}" selected>' in read_only.text
    assert "fw-2.1.bin" in html.unescape(read_only.text)
    assert "viewer-job" not in await _job_ids(console_client, console_cloud)

"""Jobs pages: every job (deployments' jobs included), and one job with its document, rollout settings and each
thing's execution, polled live, and a form that creates a job (what ``edgewise job create`` does): its id,
targets from the registry, the document as JSON, and the rollout rate, timeout, description and continuous
selection. The API checks the job; a refusal (a read-only token, an unknown target) re-shows the form with its
message and what was typed."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from edgewise.cloud.console.pages import ConsoleApi, ConsoleApiDep, ConsoleApiError, gather, render
from edgewise.cloud.console.pages.deployments import target_choices

router = APIRouter()

PAGE_SIZE = 100
EXECUTIONS_PAGE_SIZE = 1000
#: The job's settings shown as JSON on its page.
SETTINGS = ("jobExecutionsRolloutConfig", "abortConfig", "timeoutConfig", "jobExecutionsRetryConfig")
DOCUMENT_MAX_LENGTH = 64 * 1024


async def _jobs_page(
    request: Request,
    api: ConsoleApi,
    *,
    error: str | None = None,
    status_code: int = 200,
    entered: dict[str, Any] | None = None,
) -> Response:
    page, choices = await gather(api.get("/jobs", limit=PAGE_SIZE), target_choices(api))
    return render(
        request,
        "jobs/index.html",
        status_code=status_code,
        title="Jobs",
        page=page,
        choices=choices,
        error=error,
        entered=entered or {},
    )


@router.get("/jobs")
async def jobs(request: Request, api: ConsoleApiDep) -> Response:
    """Jobs, newest first, and the form that creates one."""
    return await _jobs_page(request, api)


class FormProblem(ValueError):
    """A field of the job form that cannot become a job; the message names the field."""


def _whole_number(field: str, text: str, meaning: str) -> int | None:
    if not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise FormProblem(f"Field '{field}': {text!r} is not a whole number of {meaning}") from None


def form_job(
    *,
    job_id: str,
    targets: list[str],
    document: str,
    description: str,
    rate: str,
    timeout: str,
    continuous: bool,
) -> dict[str, Any]:
    """The ``POST /jobs`` body the form describes (the one ``edgewise job create`` sends); :class:`FormProblem`
    naming the field if it cannot be one. The API checks the rest."""
    if not targets:
        raise FormProblem("Field 'target': choose at least one thing or thing group")
    try:
        parsed = json.loads(document)
    except ValueError as exc:
        raise FormProblem(f"Field 'document' is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise FormProblem("Field 'document' must be a JSON object")
    body: dict[str, Any] = {
        "jobId": job_id,
        "targets": targets,
        "document": parsed,
        "description": description,
        "targetSelection": "CONTINUOUS" if continuous else "SNAPSHOT",
    }
    per_minute = _whole_number("rate", rate, "things a minute")
    if per_minute is not None:
        body["jobExecutionsRolloutConfig"] = {"maximumPerMinute": per_minute}
    minutes = _whole_number("timeout", timeout, "minutes")
    if minutes is not None:
        body["timeoutConfig"] = {"inProgressTimeoutInMinutes": minutes}
    return body


@router.post("/jobs")
async def create_job(
    request: Request,
    api: ConsoleApiDep,
    job_id: Annotated[str, Form(max_length=256)],
    document: Annotated[str, Form(max_length=DOCUMENT_MAX_LENGTH)],
    target: Annotated[list[str] | None, Form()] = None,
    description: Annotated[str, Form(max_length=4096)] = "",
    rate: Annotated[str, Form(max_length=16)] = "",
    timeout: Annotated[str, Form(max_length=16)] = "",
    continuous: Annotated[bool, Form()] = False,
) -> Response:
    """Create a job from the form; a refusal re-shows the form with the message and what was typed."""
    targets = target or []
    entered = {
        "job_id": job_id,
        "targets": targets,
        "document": document,
        "description": description,
        "rate": rate,
        "timeout": timeout,
        "continuous": continuous,
    }
    try:
        body = form_job(
            job_id=job_id,
            targets=targets,
            document=document,
            description=description,
            rate=rate,
            timeout=timeout,
            continuous=continuous,
        )
        created = await api.post("/jobs", body)
    except FormProblem as exc:
        return await _jobs_page(request, api, error=str(exc), status_code=422, entered=entered)
    except ConsoleApiError as exc:
        return await _jobs_page(request, api, error=exc.message, status_code=exc.status, entered=entered)
    return RedirectResponse(f"/console/jobs/{quote(created['jobId'], safe='')}", status_code=303)


async def job_live(api: ConsoleApi, job_id: str) -> dict[str, Any]:
    """What the job page refreshes: the job with its counts, and every execution."""
    path = quote(job_id, safe="")
    job, executions = await gather(
        api.get(f"/jobs/{path}"), api.get(f"/jobs/{path}/things", limit=EXECUTIONS_PAGE_SIZE)
    )
    return {"job": job, "executions": executions["data"]}


@router.get("/jobs/{job_id}")
async def job(request: Request, api: ConsoleApiDep, job_id: str) -> Response:
    """One job: its document and settings, and its executions (polled live)."""
    live = await job_live(api, job_id)
    described = live["job"]
    settings = {name: described[name] for name in SETTINGS if described.get(name)}
    return render(
        request,
        "jobs/job.html",
        title=job_id,
        live=live,
        document=json.dumps(described["document"], indent=2, sort_keys=True),
        settings=json.dumps(settings, indent=2, sort_keys=True) if settings else None,
    )


@router.get("/jobs/{job_id}/partial")
async def job_partial(request: Request, api: ConsoleApiDep, job_id: str) -> Response:
    """The job page's live part: its status, counts and executions."""
    return render(request, "jobs/_executions.html", live=await job_live(api, job_id))

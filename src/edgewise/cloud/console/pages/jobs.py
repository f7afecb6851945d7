"""Jobs pages: every job (deployments' jobs included), and one job with its document, rollout settings and each
thing's execution, polled live. Jobs are created with ``edgewise job create``; the console shows them."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from edgewise.cloud.console.pages import ConsoleApi, ConsoleApiDep, gather, render

router = APIRouter()

PAGE_SIZE = 100
EXECUTIONS_PAGE_SIZE = 1000
#: The job's settings shown as JSON on its page.
SETTINGS = ("jobExecutionsRolloutConfig", "abortConfig", "timeoutConfig", "jobExecutionsRetryConfig")


@router.get("/jobs")
async def jobs(request: Request, api: ConsoleApiDep) -> Response:
    """Jobs, newest first."""
    page = await api.get("/jobs", limit=PAGE_SIZE)
    return render(request, "jobs/index.html", title="Jobs", page=page)


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

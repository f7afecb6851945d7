"""Models pages: the model registry, a model's versions, aliases, drift checks and deployment, and a training
job's live leaderboard.

The registry page lists the models (newest version, aliases) and the training jobs. A model's page shows each
version's metrics and what its training found (learner, score, ONNX size, p50 latency), a form to point an
alias at a version, the drift checks with each feature's PSI drawn as a meter against the threshold, and a form
that deploys a version (or an alias) with the inference component to a thing group or thing. A training job's
page polls the job: status, phase, time against its search budget and the leaderboard, as
``edgewise model job ID --follow`` shows it. Everything goes through the REST API as the session's token, so a
read-only token's change is refused with the API's message.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from edgewise.cloud.console.pages import ConsoleApi, ConsoleApiDep, ConsoleApiError, gather, render

router = APIRouter()

#: How many of a model's newest versions the page describes in full (one API call each).
DETAILED_VERSIONS = 20
DRIFT_EVENTS = 20
TRAINING_JOBS = 50
#: The training job statuses after which the leaderboard stops changing.
FINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
#: The status that tells htmx to stop polling (the fragment is still swapped in).
STOP_POLLING = 286


def _segment(name: str) -> str:
    return quote(name, safe="")


def _seconds_since(start: str | None, end: str | None) -> float | None:
    if not start:
        return None
    began = datetime.datetime.fromisoformat(start)
    ended = datetime.datetime.fromisoformat(end) if end else datetime.datetime.now(datetime.UTC)
    return max(0.0, (ended - began).total_seconds())


@router.get("/models")
async def models(request: Request, api: ConsoleApiDep) -> Response:
    """The registry: every model with its newest version and aliases, and the training jobs."""
    registered, jobs = await gather(api.get("/models"), api.get("/training-jobs", limit=TRAINING_JOBS))
    return render(request, "models/index.html", title="Models", models=registered["data"], jobs=jobs["data"])


def drift_rows(event: dict[str, Any]) -> list[dict[str, Any]]:
    """An event's per-feature comparison, most drifted first, each with the meter's scale."""
    report = event["report"]
    features = list(report.get("features") or [])
    threshold = float(report.get("psiThreshold") or 0.2)
    top = max([threshold * 2, *(float(row.get("psi") or 0) for row in features)])
    rows = [{**row, "scale": top, "threshold": threshold} for row in features]
    return sorted(rows, key=lambda row: -float(row.get("psi") or 0))


async def _model_context(api: ConsoleApi, name: str) -> dict[str, Any]:
    path = _segment(name)
    model, events, jobs = await gather(
        api.get(f"/models/{path}"),
        api.get(f"/models/{path}/drift-events", limit=DRIFT_EVENTS),
        api.get("/training-jobs", model=name, limit=TRAINING_JOBS),
    )
    shown = model["versions"][:DETAILED_VERSIONS]
    details = await gather(*(api.get(f"/models/{path}/versions/{_segment(v['version'])}") for v in shown))
    for event in events["data"]:
        event["rows_by_feature"] = drift_rows(event)
    return {
        "title": f"Model {name}",
        "model": model,
        "versions": details + model["versions"][DETAILED_VERSIONS:],
        "events": events["data"],
        "jobs": jobs["data"],
    }


async def _model_page(
    request: Request,
    api: ConsoleApi,
    name: str,
    *,
    status_code: int = 200,
    alias_error: str | None = None,
    deploy_error: str | None = None,
    deployed: dict[str, Any] | None = None,
) -> Response:
    context = await _model_context(api, name)
    return render(
        request,
        "models/model.html",
        status_code=status_code,
        alias_error=alias_error,
        deploy_error=deploy_error,
        deployed=deployed,
        **context,
    )


@router.get("/models/{name}")
async def model(request: Request, api: ConsoleApiDep, name: str) -> Response:
    """A model: versions with their training results, aliases, drift checks and the deploy form."""
    return await _model_page(request, api, name)


@router.post("/models/{name}/aliases")
async def move_alias(
    request: Request,
    api: ConsoleApiDep,
    name: str,
    alias: Annotated[str, Form(max_length=64)],
    version: Annotated[str, Form(max_length=16)],
) -> Response:
    """Point an alias at a version through the API; the page shows the API's refusal."""
    if not alias.strip():
        return await _model_page(
            request, api, name, status_code=422, alias_error="Field 'alias' must not be empty"
        )
    try:
        await api.put(f"/models/{_segment(name)}/aliases/{_segment(alias.strip())}", {"version": version})
    except ConsoleApiError as exc:
        return await _model_page(request, api, name, status_code=exc.status, alias_error=exc.message)
    return RedirectResponse(f"/console/models/{_segment(name)}#aliases", status_code=303)


@router.post("/models/{name}/deploy")
async def deploy(
    request: Request,
    api: ConsoleApiDep,
    name: str,
    target_kind: Annotated[Literal["group", "thing"], Form()],
    target: Annotated[str, Form(max_length=128)],
    choice: Annotated[str, Form(max_length=80)],
    input_topic: Annotated[str, Form(max_length=256)],
    output_topic: Annotated[str, Form(max_length=256)],
) -> Response:
    """Deploy a version (``version:N``) or an alias (``alias:NAME``) to a group or thing through the API."""
    kind, _, value = choice.partition(":")
    if kind not in {"version", "alias"} or not value:
        problem = f"Field 'choice' must be version:N or alias:NAME, not {choice!r}"
        return await _model_page(request, api, name, status_code=422, deploy_error=problem)
    body = {target_kind: target, kind: value, "inputTopic": input_topic, "outputTopic": output_topic}
    try:
        deployed = await api.post(f"/models/{_segment(name)}/deploy", body)
    except ConsoleApiError as exc:
        return await _model_page(request, api, name, status_code=exc.status, deploy_error=exc.message)
    return await _model_page(request, api, name, status_code=201, deployed=deployed)


async def _job(api: ConsoleApi, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = await api.get(f"/training-jobs/{_segment(job_id)}")
    job["elapsed"] = _seconds_since(job["startedAt"], job["finishedAt"])
    job["final"] = job["status"] in FINAL_STATUSES
    return job


@router.get("/models/jobs/{job_id}")
async def training_job(request: Request, api: ConsoleApiDep, job_id: str) -> Response:
    """A training job's live leaderboard: status, phase, time against the budget, the candidates."""
    job = await _job(api, job_id)
    return render(request, "models/job.html", title=f"Training job {job_id}", job=job)


@router.get("/models/jobs/{job_id}/partial")
async def training_job_partial(request: Request, api: ConsoleApiDep, job_id: str) -> Response:
    """The job's live part, which its page polls until the job ends (htmx stops polling on status 286)."""
    job = await _job(api, job_id)
    return render(request, "models/_job.html", status_code=STOP_POLLING if job["final"] else 200, job=job)

"""Deployments pages: the list, one deployment with its rollout per device (polled live), cancelling, and
creating one from a form (target and components from the registries) or from pasted Greengrass JSON.

Both ways of creating send the document ``POST /deployments`` takes (the one ``edgewise deployment create
--file`` sends), so the API's checks and its messages are the only ones; a refusal re-shows the form with it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from edgewise.cloud.console.pages import ConsoleApi, ConsoleApiDep, ConsoleApiError, gather, render
from edgewise.cloud.jobs.targets import Target

router = APIRouter()

#: How many component rows the form offers (a deployment with more is pasted as JSON).
FORM_COMPONENT_ROWS = 3
PAGE_SIZE = 100
REGISTRY_PAGE_SIZE = 1000
DOCUMENT_MAX_LENGTH = 256 * 1024
MERGE_MAX_LENGTH = 64 * 1024
#: A device's execution still under way.
PENDING = ("QUEUED", "IN_PROGRESS")


def _segment(name: str) -> str:
    return quote(name, safe="")


@router.get("/deployments")
async def deployments(request: Request, api: ConsoleApiDep) -> Response:
    """Deployments, newest first: target, status, revision, devices and when each was created."""
    page = await api.get("/deployments", limit=PAGE_SIZE)
    return render(request, "deployments/index.html", title="Deployments", page=page)


@router.get("/deployments/partial")
async def deployments_partial(request: Request, api: ConsoleApiDep) -> Response:
    """The deployments table alone, which the list page polls."""
    page = await api.get("/deployments", limit=PAGE_SIZE)
    return render(request, "deployments/_rows.html", page=page)


async def target_choices(api: ConsoleApi) -> dict[str, list[Target]]:
    """The registry's things and thing groups a form may target (by ARN), each sorted by name; the Jobs form
    uses it too."""
    things, groups = await gather(
        api.get("/things", limit=REGISTRY_PAGE_SIZE), api.get("/thing-groups", limit=REGISTRY_PAGE_SIZE)
    )
    return {
        "things": [Target("thing", name) for name in sorted(thing["thingName"] for thing in things["data"])],
        "groups": [
            Target("group", name) for name in sorted(group["thingGroupName"] for group in groups["data"])
        ],
    }


async def _choices(api: ConsoleApi) -> dict[str, Any]:
    """What the form offers: things and thing groups to target, and every component's versions."""
    targets, components = await gather(target_choices(api), api.get("/components", limit=REGISTRY_PAGE_SIZE))
    names = [component["componentName"] for component in components["data"]]
    versions = await gather(*(api.get(f"/components/{_segment(name)}/versions") for name in names))
    return {
        **targets,
        "components": [
            {"name": name, "versions": [item["componentVersion"] for item in answer["data"]]}
            for name, answer in zip(names, versions, strict=True)
        ],
    }


async def _form_page(
    request: Request,
    api: ConsoleApi,
    *,
    error: str | None = None,
    status_code: int = 200,
    entered: dict[str, Any] | None = None,
) -> Response:
    return render(
        request,
        "deployments/new.html",
        status_code=status_code,
        title="New deployment",
        choices=await _choices(api),
        rows=range(FORM_COMPONENT_ROWS),
        error=error,
        entered=entered or {},
    )


@router.get("/deployments/new")
async def new_deployment(request: Request, api: ConsoleApiDep) -> Response:
    """The form that creates a deployment, and the box that takes a pasted Greengrass deployment."""
    return await _form_page(request, api)


class FormProblem(ValueError):
    """A field of the deployment form that cannot become a deployment; the message names the field."""


def form_document(
    *, target: str, name: str, components: list[str], merges: list[str], rate: str
) -> dict[str, Any]:
    """The CreateDeployment document the form describes; :class:`FormProblem` naming the field if it cannot."""
    if not target:
        raise FormProblem("Field 'target': choose a thing or thing group")
    chosen: dict[str, Any] = {}
    for row, (component, merge) in enumerate(zip(components, merges, strict=False), start=1):
        if not component:
            if merge.strip():
                raise FormProblem(f"Field 'merge' of component row {row}: choose the component it configures")
            continue
        component_name, _, version = component.rpartition("=")
        if not component_name or not version:
            raise FormProblem(f"Field 'component' of row {row}: {component!r} is not NAME=VERSION")
        if component_name in chosen:
            raise FormProblem(f"Field 'component' of row {row}: {component_name} is chosen twice")
        specification: dict[str, Any] = {"componentVersion": version}
        if merge.strip():
            try:
                value = json.loads(merge)
            except ValueError as exc:
                raise FormProblem(f"Field 'merge' of row {row} is not valid JSON: {exc}") from None
            if not isinstance(value, dict):
                raise FormProblem(f"Field 'merge' of row {row} must be a JSON object")
            specification["configurationUpdate"] = {"merge": json.dumps(value)}
        chosen[component_name] = specification
    if not chosen:
        raise FormProblem("Field 'component': choose at least one component version")
    document: dict[str, Any] = {"targetArn": target, "deploymentName": name, "components": chosen}
    if rate.strip():
        try:
            per_minute = int(rate)
        except ValueError:
            raise FormProblem(f"Field 'rate': {rate!r} is not a whole number of devices a minute") from None
        document["iotJobConfiguration"] = {"jobExecutionsRolloutConfig": {"maximumPerMinute": per_minute}}
    return document


async def _create(request: Request, api: ConsoleApi, document: Any, entered: dict[str, Any]) -> Response:
    try:
        created = await api.post("/deployments", document)
    except ConsoleApiError as exc:
        return await _form_page(request, api, error=exc.message, status_code=exc.status, entered=entered)
    return RedirectResponse(f"/console/deployments/{_segment(created['deploymentId'])}", status_code=303)


@router.post("/deployments")
async def create_from_form(
    request: Request,
    api: ConsoleApiDep,
    target: Annotated[str, Form(max_length=2048)] = "",
    name: Annotated[str, Form(max_length=256)] = "",
    component: Annotated[list[str] | None, Form()] = None,
    merge: Annotated[list[str] | None, Form()] = None,
    rate: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    """Create a deployment from the form's target, component versions, configuration merges and rate."""
    components = component or []
    merges = (merge or []) + [""] * max(0, len(components) - len(merge or []))
    if any(len(item) > MERGE_MAX_LENGTH for item in merges):
        problem = f"Field 'merge' is longer than {MERGE_MAX_LENGTH} characters"
        return await _form_page(request, api, error=problem, status_code=422)
    entered = {"target": target, "name": name, "components": components, "merges": merges, "rate": rate}
    try:
        document = form_document(target=target, name=name, components=components, merges=merges, rate=rate)
    except FormProblem as exc:
        return await _form_page(request, api, error=str(exc), status_code=422, entered=entered)
    return await _create(request, api, document, entered)


@router.post("/deployments/json")
async def create_from_json(
    request: Request, api: ConsoleApiDep, document: Annotated[str, Form(max_length=DOCUMENT_MAX_LENGTH)]
) -> Response:
    """Create a deployment from a pasted Greengrass CreateDeployment document."""
    entered = {"document": document}
    try:
        body = json.loads(document)
    except ValueError as exc:
        problem = f"Field 'document' is not valid JSON: {exc}"
        return await _form_page(request, api, error=problem, status_code=422, entered=entered)
    if not isinstance(body, dict):
        problem = "Field 'document' must be a JSON object (a CreateDeployment request)"
        return await _form_page(request, api, error=problem, status_code=422, entered=entered)
    return await _create(request, api, body, entered)


async def rollout(api: ConsoleApi, deployment_id: str) -> dict[str, Any]:
    """What the deployment page refreshes: the deployment, each device's latest execution, and the totals."""
    path = _segment(deployment_id)
    deployment, devices = await gather(
        api.get(f"/deployments/{path}"), api.get(f"/deployments/{path}/devices", limit=1000)
    )
    latest: dict[str, dict[str, Any]] = {}
    for execution in devices["data"]:
        known = latest.get(execution["thingName"])
        if known is None or execution["executionNumber"] > known["executionNumber"]:
            latest[execution["thingName"]] = execution
    rows = [latest[thing] for thing in sorted(latest)]
    done = sum(1 for row in rows if row["status"] not in PENDING)
    return {"deployment": deployment, "devices": rows, "done": done}


async def _deployment_page(
    request: Request, api: ConsoleApi, deployment_id: str, *, error: str | None = None, status_code: int = 200
) -> Response:
    live = await rollout(api, deployment_id)
    deployment = live["deployment"]
    components = [
        {
            "name": name,
            "version": specification.get("componentVersion", ""),
            "configuration": json.dumps(specification.get("configurationUpdate"), indent=2, sort_keys=True)
            if specification.get("configurationUpdate")
            else None,
        }
        for name, specification in sorted(deployment["components"].items())
    ]
    return render(
        request,
        "deployments/deployment.html",
        status_code=status_code,
        title=deployment["deploymentName"] or deployment["deploymentId"],
        live=live,
        components=components,
        policies=json.dumps(deployment["deploymentPolicies"], indent=2, sort_keys=True),
        job_configuration=json.dumps(deployment["iotJobConfiguration"], indent=2, sort_keys=True),
        error=error,
    )


@router.get("/deployments/{deployment_id}")
async def deployment(request: Request, api: ConsoleApiDep, deployment_id: str) -> Response:
    """One deployment: its components and policies, and its rollout per device (polled live)."""
    return await _deployment_page(request, api, deployment_id)


@router.get("/deployments/{deployment_id}/partial")
async def deployment_partial(request: Request, api: ConsoleApiDep, deployment_id: str) -> Response:
    """The deployment page's live part: status, counts and each device's execution."""
    return render(request, "deployments/_rollout.html", live=await rollout(api, deployment_id))


@router.post("/deployments/{deployment_id}/cancel")
async def cancel(request: Request, api: ConsoleApiDep, deployment_id: str) -> Response:
    """Cancel a deployment through the API; a refusal shows the API's message on the deployment's page."""
    try:
        await api.post(f"/deployments/{_segment(deployment_id)}/cancel")
    except ConsoleApiError as exc:
        return await _deployment_page(request, api, deployment_id, error=exc.message, status_code=exc.status)
    return RedirectResponse(f"/console/deployments/{_segment(deployment_id)}", status_code=303)

"""Fleet pages: every thing with its presence, health, groups and last report, and one device's drill-down.

The device page shows the device's status and components and its recent logs (polled live), its shadows with
a form to change a shadow's desired state, a chart of its recent telemetry, and its deployment history (the
executions of deployment jobs on it). Everything comes from the REST API as the session's token.
"""

from __future__ import annotations

import datetime
import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from edgewise.cloud.console.pages import ConsoleApi, ConsoleApiDep, ConsoleApiError, gather, render

router = APIRouter()

#: The jobs namespace of deployments (Greengrass's), which tells a deployment's job executions from other jobs.
DEPLOYMENT_NAMESPACE = "aws-gg-deployment"
#: How far back the device page looks for logs and telemetry.
RECENT = datetime.timedelta(hours=1)
CHART_BUCKET = "1m"
MAX_CHART_FIELDS = 4
FLEET_PAGE_SIZE = 500


def _segment(name: str) -> str:
    return quote(name, safe="")


def _since(now: datetime.datetime) -> str:
    return (now - RECENT).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _optional(call: Any) -> Any:
    """The answer of an API call, or None when the API says it does not exist (404)."""
    try:
        return await call
    except ConsoleApiError as exc:
        if exc.status == 404:
            return None
        raise


def _presence(device: dict[str, Any] | None) -> str:
    connected = None if device is None else device["connectivity"]["connected"]
    if connected is None:
        return "unknown"
    return "online" if connected else "offline"


def _last_seen(device: dict[str, Any] | None) -> str | None:
    if device is None:
        return None
    times = [device.get("lastStatusUpdateTimestamp"), device["connectivity"].get("updatedAt")]
    present = [time for time in times if time]
    return max(present) if present else None


async def fleet_rows(api: ConsoleApi) -> list[dict[str, Any]]:
    """One row per thing (and per reporting device not registered as a thing), by name."""
    things, devices = await gather(
        api.get("/things", limit=FLEET_PAGE_SIZE), api.get("/core-devices", limit=FLEET_PAGE_SIZE)
    )
    by_name = {device["coreDeviceThingName"]: device for device in devices["data"]}
    names = sorted({thing["thingName"] for thing in things["data"]} | set(by_name))
    groups = await gather(*(_optional(api.get(f"/things/{_segment(name)}/groups")) for name in names))
    return [
        {
            "name": name,
            "presence": _presence(by_name.get(name)),
            "health": by_name[name]["status"] if name in by_name else "not reported",
            "groups": [group["thingGroupName"] for group in (found or {"data": []})["data"]],
            "last_seen": _last_seen(by_name.get(name)),
            "version": by_name[name]["coreVersion"] if name in by_name else "",
        }
        for name, found in zip(names, groups, strict=True)
    ]


@router.get("/")
@router.get("/fleet")
async def fleet(request: Request, api: ConsoleApiDep) -> Response:
    """The fleet: every thing's presence, health, groups and last report."""
    return render(request, "fleet/index.html", title="Fleet", rows=await fleet_rows(api))


@router.get("/fleet/partial")
async def fleet_partial(request: Request, api: ConsoleApiDep) -> Response:
    """The fleet table alone, which the fleet page polls."""
    return render(request, "fleet/_things.html", rows=await fleet_rows(api))


async def device_live(api: ConsoleApi, thing: str) -> dict[str, Any]:
    """What the device page refreshes: status, components, recent logs (newest last)."""
    path = _segment(thing)
    device, components, logs = await gather(
        _optional(api.get(f"/core-devices/{path}")),
        _optional(api.get(f"/core-devices/{path}/installed-components")),
        api.get(f"/things/{path}/logs", since=_since(datetime.datetime.now(datetime.UTC)), limit=500),
    )
    return {
        "thing": thing,
        "device": device,
        "presence": _presence(device),
        "last_seen": _last_seen(device),
        "components": [] if components is None else components["installedComponents"],
        "logs": logs["data"][-100:],
    }


async def _shadows(api: ConsoleApi, thing: str) -> list[dict[str, Any]]:
    path = _segment(thing)
    classic, named = await gather(
        _optional(api.get(f"/things/{path}/shadow")),
        _optional(api.get(f"/things/shadow/ListNamedShadowsForThing/{path}", pageSize=100)),
    )
    names = [] if named is None else named["results"]
    documents = await gather(*(_optional(api.get(f"/things/{path}/shadow", name=name)) for name in names))
    shadows = [{"name": "", "document": classic}]
    shadows += [{"name": name, "document": document} for name, document in zip(names, documents, strict=True)]
    for shadow in shadows:
        state = (shadow["document"] or {}).get("state", {})
        shadow["desired"] = json.dumps(state.get("desired"), indent=2, sort_keys=True)
        shadow["reported"] = json.dumps(state.get("reported"), indent=2, sort_keys=True)
        shadow["delta"] = json.dumps(state["delta"], indent=2, sort_keys=True) if "delta" in state else None
    return shadows


def _numeric_fields(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return []
    numbers = [
        name
        for name, value in payload.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    return sorted(numbers)[:MAX_CHART_FIELDS]


async def telemetry_chart(api: ConsoleApi, thing: str) -> dict[str, Any] | None:
    """The device's first stream's numeric fields over the last hour, per minute, as chart data; None if none."""
    now = datetime.datetime.now(datetime.UTC)
    streams = await api.get("/telemetry/streams", thing=thing, since=_since(now), limit=1)
    if not streams["data"]:
        return None
    stream = streams["data"][0]["stream"]
    latest = await api.get("/telemetry/messages", thing=thing, stream=stream, order="newest", limit=1)
    fields = _numeric_fields(latest["data"][0]["payload"]) if latest["data"] else []
    if not fields:
        return None
    answers = await gather(
        *(
            api.get(
                "/telemetry/series",
                thing=thing,
                stream=stream,
                field=name,
                since=_since(now),
                every=CHART_BUCKET,
            )
            for name in fields
        )
    )
    starts = sorted({bucket["start"] for answer in answers for bucket in answer["buckets"]})
    series = []
    for name, answer in zip(fields, answers, strict=True):
        values = {bucket["start"]: bucket["value"] for bucket in answer["buckets"]}
        series.append({"label": name, "values": [values.get(start) for start in starts]})
    return {"stream": stream, "x": [start / 1000 for start in starts], "series": series}


async def deployment_history(api: ConsoleApi, thing: str) -> list[dict[str, Any]]:
    """The device's executions of deployment jobs, newest first, with their deployment where it is known."""
    executions, deployments = await gather(
        _optional(api.get(f"/things/{_segment(thing)}/jobs", namespaceId=DEPLOYMENT_NAMESPACE, limit=50)),
        api.get("/deployments", limit=100),
    )
    by_job = {deployment["iotJobId"]: deployment for deployment in deployments["data"]}
    return [
        {"execution": execution, "deployment": by_job.get(execution["jobId"])}
        for execution in ([] if executions is None else executions["data"])
    ]


async def _device_page(
    request: Request, api: ConsoleApi, thing: str, *, shadow_error: str | None = None, status_code: int = 200
) -> Response:
    described, live, shadows, chart, deployments = await gather(
        api.get(f"/things/{_segment(thing)}"),
        device_live(api, thing),
        _shadows(api, thing),
        telemetry_chart(api, thing),
        deployment_history(api, thing),
    )
    return render(
        request,
        "fleet/thing.html",
        status_code=status_code,
        title=thing,
        described=described,
        live=live,
        shadows=shadows,
        chart=chart,
        deployments=deployments,
        shadow_error=shadow_error,
    )


@router.get("/things/{thing}")
async def device(request: Request, api: ConsoleApiDep, thing: str) -> Response:
    """One device: status, components, logs, shadows, telemetry and deployments."""
    return await _device_page(request, api, thing)


@router.get("/things/{thing}/partial")
async def device_partial(request: Request, api: ConsoleApiDep, thing: str) -> Response:
    """The device page's live part: status, components and recent logs."""
    return render(request, "fleet/_thing_live.html", live=await device_live(api, thing))


@router.post("/things/{thing}/shadow")
async def update_desired(
    request: Request,
    api: ConsoleApiDep,
    thing: str,
    desired: Annotated[str, Form(max_length=64 * 1024)],
    name: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Merge the form's JSON into a shadow's desired state (``null`` clears it), through the shadow API."""
    try:
        value = json.loads(desired)
    except ValueError as exc:
        return await _device_page(
            request, api, thing, shadow_error=f"Field 'desired' is not valid JSON: {exc}", status_code=422
        )
    if value is not None and not isinstance(value, dict):
        problem = f"Field 'desired' must be a JSON object or null, not {type(value).__name__}"
        return await _device_page(request, api, thing, shadow_error=problem, status_code=422)
    try:
        await api.post(f"/things/{_segment(thing)}/shadow", {"state": {"desired": value}}, name=name or None)
    except ConsoleApiError as exc:
        return await _device_page(request, api, thing, shadow_error=exc.message, status_code=exc.status)
    return RedirectResponse(f"/console/things/{_segment(thing)}#shadows", status_code=303)

"""REST routes of device shadows in AWS IoT's data-plane shapes: GetThingShadow, UpdateThingShadow and
DeleteThingShadow on ``/things/{thingName}/shadow?name=`` (no ``name``: the classic shadow), and
ListNamedShadowsForThing on ``/things/shadow/ListNamedShadowsForThing/{thingName}``.

Bodies are the shadow documents themselves, as AWS sends them. An update body is passed on as bytes, so that it
meets exactly the checks and limits an MQTT update meets. A refused request is answered with AWS's status (400,
404, 409, 413) and the cloud's error body. Reads: any role; writes: write access.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from edgewise.cloud.auth import require_access
from edgewise.cloud.db import SessionDep
from edgewise.cloud.errors import ERROR_RESPONSES, ErrorBody
from edgewise.cloud.shadows import service
from edgewise.protocol.shadow.errors import ShadowError

#: The cloud's error code for each AWS shadow status.
_ERROR_CODES = {400: "invalid_request", 404: "not_found", 409: "version_conflict", 413: "payload_too_large"}

_NAME_PATTERN = r"^[a-zA-Z0-9:_-]+$"
ThingName = Annotated[
    str,
    Path(
        alias="thingName",
        min_length=1,
        max_length=128,
        pattern=_NAME_PATTERN,
        description="The shadow's thing.",
    ),
]
ShadowName = Annotated[
    str | None,
    Query(
        alias="name",
        min_length=1,
        max_length=64,
        pattern=_NAME_PATTERN,
        description="Named shadow; none: classic.",
    ),
]
#: The update document's schema as OpenAPI shows it; the body is read as bytes and checked by the protocol.
_UPDATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["state"],
                    "properties": {
                        "state": {
                            "type": ["object", "null"],
                            "properties": {
                                "desired": {"type": ["object", "null"]},
                                "reported": {"type": ["object", "null"]},
                            },
                        },
                        "version": {"type": ["integer", "null"], "minimum": 0},
                        "clientToken": {"type": ["string", "null"], "maxLength": 64},
                    },
                }
            }
        },
    }
}

_SHADOW_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    400: {"model": ErrorBody, "description": "A malformed request or name (AWS's InvalidRequestException)"},
    413: {"model": ErrorBody, "description": "The document is larger than the shadow limit"},
}

router = APIRouter(dependencies=[Depends(require_access())], responses=_SHADOW_RESPONSES, tags=["shadows"])


class NamedShadowList(BaseModel):
    """ListNamedShadowsForThing's answer."""

    results: list[str]
    nextToken: str | None = None  #: AWS's field name
    timestamp: int


def _refused(exc: ShadowError) -> JSONResponse:
    code = _ERROR_CODES.get(exc.code, "error")
    return JSONResponse(ErrorBody(code=code, message=exc.message).model_dump(), status_code=exc.code)


@router.get("/things/{thingName}/shadow", response_model=dict[str, Any])
def get_thing_shadow(session: SessionDep, thing: ThingName, name: ShadowName = None) -> Any:
    """The shadow document: state (with its delta), metadata, version, timestamp."""
    try:
        return service.get_shadow(session, thing, name, now=service.now_seconds())
    except ShadowError as exc:
        return _refused(exc)


@router.post("/things/{thingName}/shadow", response_model=dict[str, Any], openapi_extra=_UPDATE_BODY)
async def update_thing_shadow(
    request: Request,
    session: SessionDep,
    thing: ThingName,
    name: ShadowName = None,
) -> Any:
    """Merge an update document (``{"state": {"desired": ..., "reported": ...}, "version": ...}``); answers what
    ``/update/accepted`` carries, and devices get ``/update/delta`` and ``/update/documents`` over MQTT."""
    payload = await request.body()
    try:
        outcome = await run_in_threadpool(
            service.update_shadow, session, thing, name, payload, now=service.now_seconds(), from_api=True
        )
    except ShadowError as exc:
        return _refused(exc)
    return outcome.accepted


@router.delete("/things/{thingName}/shadow", response_model=dict[str, Any])
def delete_thing_shadow(session: SessionDep, thing: ThingName, name: ShadowName = None) -> Any:
    """Delete the shadow; answers ``{"version": ..., "timestamp": ...}``."""
    try:
        return service.delete_shadow(session, thing, name, now=service.now_seconds(), from_api=True)
    except ShadowError as exc:
        return _refused(exc)


@router.get("/things/shadow/ListNamedShadowsForThing/{thingName}", response_model=NamedShadowList)
def list_named_shadows_for_thing(
    session: SessionDep,
    thing: ThingName,
    page_size: Annotated[
        int, Query(alias="pageSize", ge=1, le=service.MAX_PAGE_SIZE)
    ] = service.DEFAULT_PAGE_SIZE,
    next_token: Annotated[str | None, Query(alias="nextToken", max_length=512)] = None,
) -> Any:
    """The thing's named shadows by name, a page at a time."""
    try:
        page = service.list_named_shadows(
            session, thing, page_size=page_size, next_token=next_token, now=service.now_seconds()
        )
    except ShadowError as exc:
        return _refused(exc)
    return NamedShadowList(results=page.results, nextToken=page.next_token, timestamp=page.timestamp)

"""REST routes of device logs (any role): a thing's lines, in pages, and the components it has logs of.

``since`` and ``until`` are milliseconds since the epoch or ISO 8601; a bad value is a 422 naming the parameter.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from edgewise.cloud.auth import require_access
from edgewise.cloud.db import SessionDep
from edgewise.cloud.errors import ERROR_RESPONSES
from edgewise.cloud.logs import service
from edgewise.cloud.logs.models import DeviceLog
from edgewise.cloud.logs.schemas import LogComponentPublic, LogComponentsPublic, LogLinePublic, LogLinesPublic
from edgewise.cloud.telemetry import query
from edgewise.names import THING_NAME_MAX_LENGTH, THING_NAME_PATTERN

_TIME = "Milliseconds since the epoch, or an ISO 8601 time (UTC without an offset)"
_MAX_ID = 2**63 - 1

ThingName = Annotated[str, Path(min_length=1, max_length=THING_NAME_MAX_LENGTH, pattern=THING_NAME_PATTERN)]
Time = Annotated[str | None, Query(min_length=1, max_length=query.MAX_TIME_TEXT, description=_TIME)]

router = APIRouter(dependencies=[Depends(require_access())], responses=ERROR_RESPONSES, tags=["logs"])


def line_public(line: DeviceLog) -> LogLinePublic:
    """The API shape of ``line``."""
    return LogLinePublic(
        id=line.id,
        thing=line.thing_name,
        component=line.component,
        file=line.file,
        file_id=line.file_id,
        offset=line.offset,
        timestamp=line.timestamp_ms,
        level=line.level,
        message=line.message,
        received_at=line.received_at,
    )


@router.get("/things/{thing}/logs")
def list_logs(
    session: SessionDep,
    thing: ThingName,
    component: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    since: Time = None,
    until: Time = None,
    level: Annotated[
        Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR"] | None,
        Query(description="This level and the more severe ones"),
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, le=_MAX_ID, description="A line id from a previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_LIMIT)] = service.DEFAULT_LIMIT,
) -> LogLinesPublic:
    """The thing's log lines in arrival order, oldest first; continue with after = cursor."""
    start = None if since is None else query.parse_instant("since", since)
    end = None if until is None else query.parse_instant("until", until)
    query.check_range(start, end)
    selection = service.LogFilter(thing=thing, component=component, since=start, until=end, level=level)
    page = service.read_logs(session, selection, after=after, limit=limit)
    return LogLinesPublic(data=[line_public(line) for line in page.lines], cursor=page.cursor, more=page.more)


@router.get("/things/{thing}/logs/components")
def list_log_components(session: SessionDep, thing: ThingName) -> LogComponentsPublic:
    """The components the thing has logs of, by name, with how many lines and their last time."""
    return LogComponentsPublic(
        data=[
            LogComponentPublic(
                component=totals.component,
                lines=totals.lines,
                last_timestamp=totals.last_timestamp,
                last_received_at=totals.last_received_at,
            )
            for totals in service.list_components(session, thing)
        ]
    )

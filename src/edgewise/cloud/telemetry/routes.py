"""REST routes of telemetry: messages, streams, downsampled series, the objects devices uploaded through S3
export tasks (any role) and retention (writes: admin).

Times (``since``, ``until``) are milliseconds since the epoch or ISO 8601; ``every`` is a duration such as
``1m``. A bad value is a 422 naming the parameter.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from edgewise.cloud.auth import require_access
from edgewise.cloud.auth.roles import Access
from edgewise.cloud.components.store import artifact_chunks
from edgewise.cloud.db import SessionDep, utcnow
from edgewise.cloud.errors import ERROR_RESPONSES
from edgewise.cloud.registry import rules
from edgewise.cloud.telemetry import objects, query, retention, series
from edgewise.cloud.telemetry.models import ExportedObject, TelemetryMessage, TelemetryRetention
from edgewise.cloud.telemetry.query import MessageFilter
from edgewise.cloud.telemetry.records import STREAM_MAX_LENGTH
from edgewise.cloud.telemetry.schemas import (
    STREAM_PATTERN,
    ExportedObjectPublic,
    ExportedObjectsPublic,
    RetentionPublic,
    RetentionsPublic,
    RetentionUpdate,
    SeriesBucketPublic,
    TelemetryMessagePublic,
    TelemetryMessagesPublic,
    TelemetrySeriesPublic,
    TelemetryStreamPublic,
    TelemetryStreamsPublic,
)

if TYPE_CHECKING:
    from edgewise.cloud.services import CloudServices

_TIME = "Milliseconds since the epoch, or an ISO 8601 time (UTC without an offset)"
_MAX_ID = 2**63 - 1
ThingFilter = Annotated[
    str | None,
    Query(
        min_length=1, max_length=rules.NAME_MAX_LENGTH, pattern=rules.NAME_PATTERN, description="A thing name"
    ),
]
StreamFilter = Annotated[
    str | None, Query(min_length=1, max_length=STREAM_MAX_LENGTH, pattern=STREAM_PATTERN)
]
StreamRequired = Annotated[str, Query(min_length=1, max_length=STREAM_MAX_LENGTH, pattern=STREAM_PATTERN)]
Since = Annotated[
    str | None, Query(min_length=1, max_length=query.MAX_TIME_TEXT, description=_TIME + "; inclusive")
]
SinceRequired = Annotated[
    str, Query(min_length=1, max_length=query.MAX_TIME_TEXT, description=_TIME + "; inclusive")
]
Until = Annotated[
    str | None, Query(min_length=1, max_length=query.MAX_TIME_TEXT, description=_TIME + "; exclusive")
]
Cursor = Annotated[int | None, Query(ge=0, le=_MAX_ID, description="A message id from a previous page")]
StreamName = Annotated[str, Path(min_length=1, max_length=STREAM_MAX_LENGTH, pattern=STREAM_PATTERN)]

router = APIRouter(
    dependencies=[Depends(require_access(write=Access.ADMIN))], responses=ERROR_RESPONSES, tags=["telemetry"]
)


def _filter(thing: str | None, stream: str | None, since: str | None, until: str | None) -> MessageFilter:
    start = None if since is None else query.parse_instant("since", since)
    end = None if until is None else query.parse_instant("until", until)
    query.check_range(start, end)
    return MessageFilter(thing=thing, stream=stream, since=start, until=end)


def message_public(message: TelemetryMessage, *, always_base64: bool) -> TelemetryMessagePublic:
    """The API shape of ``message``."""
    is_json = message.payload_json is not None
    encoded = not is_json or always_base64
    return TelemetryMessagePublic(
        id=message.id,
        thing=message.thing_name,
        stream=message.stream,
        topic=message.topic,
        sequence_number=message.sequence_number,
        timestamp=message.timestamp_ms,
        received_at=message.received_at,
        encoding="base64" if encoded else "json",
        is_json=is_json,
        payload=base64.b64encode(message.payload).decode("ascii") if encoded else message.payload_json,
    )


@router.get("/telemetry/messages")
def list_messages(
    session: SessionDep,
    thing: ThingFilter = None,
    stream: StreamFilter = None,
    since: Since = None,
    until: Until = None,
    after: Cursor = None,
    before: Cursor = None,
    order: Annotated[Literal["oldest", "newest"], Query(description="Ingest order, by id")] = "oldest",
    limit: Annotated[int, Query(ge=1, le=query.MAX_LIMIT)] = query.DEFAULT_LIMIT,
    payload_encoding: Annotated[Literal["auto", "base64"], Query(alias="payloadEncoding")] = "auto",
) -> TelemetryMessagesPublic:
    """Stored messages in ingest order, oldest first unless asked; page with after (or before) = cursor."""
    selection = _filter(thing, stream, since, until)
    page = query.read_messages(session, selection, order=order, after=after, before=before, limit=limit)
    always_base64 = payload_encoding == "base64"
    return TelemetryMessagesPublic(
        data=[message_public(message, always_base64=always_base64) for message in page.messages],
        order=order,
        cursor=page.cursor,
        more=page.more,
    )


@router.get("/telemetry/streams")
def list_streams(
    session: SessionDep,
    thing: ThingFilter = None,
    stream: StreamFilter = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> TelemetryStreamsPublic:
    """Streams with stored messages, by name, with their count, bytes, first and last time and things."""
    page = query.list_streams(session, _filter(thing, stream, since, until), limit=limit, offset=offset)
    return TelemetryStreamsPublic(
        data=[
            TelemetryStreamPublic(
                stream=totals.stream,
                messages=totals.messages,
                bytes=totals.bytes,
                first_timestamp=totals.first_timestamp,
                last_timestamp=totals.last_timestamp,
                things=totals.things,
            )
            for totals in page.streams
        ],
        count=page.total,
    )


@router.get("/telemetry/series")
def get_series(
    session: SessionDep,
    stream: StreamRequired,
    field: Annotated[
        str, Query(min_length=1, max_length=series.MAX_FIELD_LENGTH, description="e.g. a.b[0].c")
    ],
    since: SinceRequired,
    every: Annotated[
        str, Query(pattern=query.DURATION_PATTERN, description="The bucket size, e.g. 60s, 1m, 1h")
    ],
    thing: ThingFilter = None,
    until: Until = None,
    stat: Annotated[Literal["mean", "min", "max", "count"], Query()] = "mean",
) -> TelemetrySeriesPublic:
    """A numeric JSON field downsampled into buckets of every (until defaults to now)."""
    path = series.parse_field(field)
    step = query.parse_duration("every", every)
    start = query.parse_instant("since", since)
    end = query.parse_instant("until", until) if until is not None else query.to_milliseconds(utcnow())
    query.check_range(start, end)
    series.check_buckets(start, end, step)
    result = series.downsample(
        session, MessageFilter(thing=thing, stream=stream, since=start, until=end), path=path, every=step
    )
    return TelemetrySeriesPublic(
        thing=thing,
        stream=stream,
        field=str(path),
        since=start,
        until=end,
        every=step,
        stat=stat,
        skipped=result.skipped,
        buckets=[
            SeriesBucketPublic(
                start=bucket.start,
                count=bucket.count,
                mean=bucket.mean,
                min=bucket.min,
                max=bucket.max,
                value=bucket.stat(stat),
            )
            for bucket in result.buckets
        ],
    )


def retention_public(rule: TelemetryRetention) -> RetentionPublic:
    """The API shape of ``rule``."""
    return RetentionPublic(
        stream=rule.stream,
        max_age_seconds=rule.max_age_seconds,
        max_bytes=rule.max_bytes,
        updated_at=rule.updated_at,
    )


@router.get("/telemetry/retention")
def list_retention(session: SessionDep, request: Request) -> RetentionsPublic:
    """Every stream's retention, and the default age of the streams without one."""
    services: CloudServices = request.app.state.services
    kept = [retention_public(rule) for rule in retention.list_retention(session)]
    return RetentionsPublic(
        data=kept,
        count=len(kept),
        default_max_age_seconds=services.settings.telemetry_default_max_age_seconds,
    )


@router.put("/telemetry/retention/{stream:path}")
def set_retention(session: SessionDep, stream: StreamName, update: RetentionUpdate) -> RetentionPublic:
    """Set how long and how much of a stream to keep (admin); a limit left out is none (or the default age)."""
    rule = retention.set_retention(
        session, stream, max_age_seconds=update.max_age_seconds, max_bytes=update.max_bytes, now=utcnow()
    )
    return retention_public(rule)


@router.delete("/telemetry/retention/{stream:path}", status_code=status.HTTP_204_NO_CONTENT)
def delete_retention(session: SessionDep, stream: StreamName) -> Response:
    """Remove a stream's retention (admin): the default age applies to it again."""
    retention.delete_retention(session, stream)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _object_public(row: ExportedObject) -> ExportedObjectPublic:
    return ExportedObjectPublic(
        id=row.id,
        thing=row.thing_name,
        bucket=row.bucket,
        key=row.key,
        size=row.size,
        sha256=row.sha256,
        user_metadata=row.user_metadata,
        uploaded_at=row.uploaded_at,
    )


@router.get("/telemetry/objects")
def list_objects(
    session: SessionDep,
    thing: ThingFilter = None,
    bucket: Annotated[
        str | None, Query(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
    ] = None,
    prefix: Annotated[
        str | None, Query(min_length=1, max_length=1024, description="Keys starting with it")
    ] = None,
    after: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=objects.MAX_PAGE)] = 100,
) -> ExportedObjectsPublic:
    """Objects devices uploaded through stream manager S3 export tasks, by id; page with after = cursor."""
    rows = objects.list_objects(
        session, thing_name=thing, bucket=bucket, prefix=prefix, after=after, limit=limit + 1
    )
    page = rows[:limit]
    return ExportedObjectsPublic(
        data=[_object_public(row) for row in page],
        cursor=page[-1].id if page else after,
        more=len(rows) > limit,
    )


@router.get("/telemetry/objects/{object_id}/content", response_class=StreamingResponse)
def download_object(
    session: SessionDep, request: Request, object_id: Annotated[int, Path(ge=1, le=_MAX_ID)]
) -> StreamingResponse:
    """The bytes of an uploaded object."""
    row = session.get(ExportedObject, object_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No uploaded object has id {object_id}")
    services: CloudServices = request.app.state.services
    reader = services.artifact_store.open(row.sha256)

    return StreamingResponse(
        artifact_chunks(reader),
        media_type="application/octet-stream",
        headers={"content-length": str(row.size), "etag": f'"{row.sha256}"'},
    )

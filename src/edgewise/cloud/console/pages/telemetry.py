"""Telemetry page: a chart of one device's stream over a chosen time range, downsampled by the API.

The page lists the devices and streams that have stored telemetry, the numeric fields of the chosen stream's
newest message, a range (the last 15 minutes, hour, 6 hours or day, or a custom since/until in UTC) and a
statistic. The chart asks ``GET /telemetry/series`` for each field with a bucket size that keeps about
:data:`TARGET_BUCKETS` points whatever the range, so a day stays as small as a quarter of an hour. For "last ..."
ranges the chart is a fragment the page polls.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from edgewise.cloud.console.pages import ConsoleApi, ConsoleApiDep, gather, render

router = APIRouter()

#: The "last ..." ranges the page offers, by their query value.
RANGES: dict[str, datetime.timedelta] = {
    "15m": datetime.timedelta(minutes=15),
    "1h": datetime.timedelta(hours=1),
    "6h": datetime.timedelta(hours=6),
    "24h": datetime.timedelta(hours=24),
}
RANGE_LABELS = {"15m": "Last 15 minutes", "1h": "Last hour", "6h": "Last 6 hours", "24h": "Last 24 hours"}
#: About how many points a chart has: the bucket is the range divided by this, rounded up to a STEPS entry.
TARGET_BUCKETS = 120
#: Bucket sizes in seconds, smallest first (the API's limit on buckets is far above TARGET_BUCKETS).
STEPS = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
STATS = ("mean", "min", "max", "count")
MAX_FIELDS = 8
MAX_FIELD_DEPTH = 3
STREAM_PAGE_SIZE = 1000
THING_PAGE_SIZE = 500
CUSTOM_FORMAT = "%Y-%m-%dT%H:%M"

RangeName = Literal["15m", "1h", "6h", "24h", "custom"]
Stat = Literal["mean", "min", "max", "count"]


@dataclass(frozen=True)
class Selection:
    """What the chart shows: one device's stream, some fields, a time range and a statistic."""

    thing: str
    stream: str
    fields: list[str]
    range: str
    since: datetime.datetime
    until: datetime.datetime
    stat: str

    @property
    def live(self) -> bool:
        """Whether the range follows now (and the chart is polled)."""
        return self.range != "custom"

    @property
    def every_seconds(self) -> int:
        """The bucket size that keeps the chart near :data:`TARGET_BUCKETS` points."""
        wanted = (self.until - self.since).total_seconds() / TARGET_BUCKETS
        return next((step for step in STEPS if step >= wanted), STEPS[-1])


def _milliseconds(moment: datetime.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _parse_custom(name: str, text: str) -> datetime.datetime:
    """A ``datetime-local`` value (UTC) or ISO 8601 time; ValueError naming the field."""
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"Field '{name}' is not a date and time (YYYY-MM-DDTHH:MM, UTC): {text!r}") from None
    return moment.replace(tzinfo=datetime.UTC) if moment.tzinfo is None else moment.astimezone(datetime.UTC)


def time_range(
    name: str, since: str, until: str, now: datetime.datetime
) -> tuple[datetime.datetime, datetime.datetime]:
    """The range's start and end; ValueError naming the field for a bad custom range."""
    if name in RANGES:
        return now - RANGES[name], now
    if not since:
        raise ValueError("Field 'since' is required for a custom range")
    start = _parse_custom("since", since)
    end = _parse_custom("until", until) if until else now
    if end <= start:
        raise ValueError("Field 'until' must be after 'since'")
    return start, end


def numeric_fields(payload: Any, prefix: str = "", depth: int = 0) -> list[str]:
    """The paths (``a.b``) of the numbers in a JSON object, in the series API's field syntax."""
    if not isinstance(payload, dict) or depth >= MAX_FIELD_DEPTH:
        return []
    found: list[str] = []
    for key, value in sorted(payload.items()):
        path = f"{prefix}{key}"
        if isinstance(value, int | float) and not isinstance(value, bool):
            found.append(path)
        elif isinstance(value, dict):
            found.extend(numeric_fields(value, f"{path}.", depth + 1))
    return found


async def _choices(api: ConsoleApi, thing: str, stream: str) -> dict[str, Any]:
    """The things, the chosen one's streams (by default the thing that sent the newest message) and the chosen
    stream's numeric fields."""
    registered, newest = await gather(
        api.get("/things", limit=THING_PAGE_SIZE), api.get("/telemetry/messages", order="newest", limit=1)
    )
    things = sorted(
        {row["thingName"] for row in registered["data"]} | {row["thing"] for row in newest["data"]}
    )
    if thing not in things:
        thing = newest["data"][0]["thing"] if newest["data"] else ""
    names: list[str] = []
    if thing:
        streams = await api.get("/telemetry/streams", thing=thing, limit=STREAM_PAGE_SIZE)
        names = [row["stream"] for row in streams["data"]]
    stream = stream if stream in names else (names[0] if names else "")
    fields: list[str] = []
    if stream:
        latest = await api.get("/telemetry/messages", thing=thing, stream=stream, order="newest", limit=1)
        fields = numeric_fields(latest["data"][0]["payload"]) if latest["data"] else []
    return {"things": things, "thing": thing, "streams": names, "stream": stream, "fields": fields}


async def chart_data(api: ConsoleApi, selection: Selection) -> dict[str, Any]:
    """The selected fields as chart data: bucket starts (seconds) and one series per field."""
    answers = await gather(
        *(
            api.get(
                "/telemetry/series",
                thing=selection.thing,
                stream=selection.stream,
                field=field,
                since=_milliseconds(selection.since),
                until=_milliseconds(selection.until),
                every=f"{selection.every_seconds}s",
                stat=selection.stat,
            )
            for field in selection.fields
        )
    )
    starts = sorted({bucket["start"] for answer in answers for bucket in answer["buckets"]})
    series = []
    for field, answer in zip(selection.fields, answers, strict=True):
        values = {bucket["start"]: bucket["value"] for bucket in answer["buckets"]}
        series.append({"label": field, "values": [values.get(start) for start in starts]})
    return {"x": [start / 1000 for start in starts], "series": series}


def _caption(selection: Selection) -> str:
    span = RANGE_LABELS.get(selection.range) or (
        f"{selection.since:%Y-%m-%d %H:%M} to {selection.until:%Y-%m-%d %H:%M} UTC"
    )
    return f"{selection.thing} / {selection.stream}: {span}, {selection.stat} per {selection.every_seconds} s"


async def _chart_context(
    api: ConsoleApi,
    *,
    thing: str,
    stream: str,
    fields: list[str],
    range_name: str,
    since: str,
    until: str,
    stat: str,
) -> dict[str, Any]:
    choices = await _choices(api, thing, stream)
    context: dict[str, Any] = {
        **choices,
        "range": range_name,
        "since": since,
        "until": until,
        "stat": stat,
        "ranges": RANGE_LABELS,
        "stats": STATS,
        "chosen": [],
        "chart": None,
        "selection": None,
        "error": None,
    }
    chosen = [field for field in fields if field in choices["fields"]] or choices["fields"][:1]
    context["chosen"] = chosen[:MAX_FIELDS]
    if not choices["stream"] or not context["chosen"]:
        return context
    try:
        start, end = time_range(range_name, since, until, datetime.datetime.now(datetime.UTC))
    except ValueError as exc:
        context["error"] = str(exc)
        return context
    selection = Selection(
        choices["thing"], choices["stream"], context["chosen"], range_name, start, end, stat
    )
    context["selection"] = selection
    context["caption"] = _caption(selection)
    query = [("thing", selection.thing), ("stream", selection.stream), ("range", range_name), ("stat", stat)]
    query += [("field", field) for field in selection.fields]
    context["chart_url"] = "/console/telemetry/chart?" + urlencode(query)
    context["chart"] = await chart_data(api, selection)
    return context


Fields = Annotated[list[str], Query(max_length=MAX_FIELDS * 4)]


async def _requested_chart(
    api: ConsoleApiDep,
    thing: Annotated[str, Query(max_length=128)] = "",
    stream: Annotated[str, Query(max_length=256)] = "",
    field: Fields = [],  # noqa: B006 - FastAPI copies a query list's default
    range_name: Annotated[RangeName, Query(alias="range")] = "1h",
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
    stat: Stat = "mean",
) -> dict[str, Any]:
    """The chart the query asks for (the page's form and its polled chart share the parameters)."""
    return await _chart_context(
        api,
        thing=thing,
        stream=stream,
        fields=field,
        range_name=range_name,
        since=since,
        until=until,
        stat=stat,
    )


ChartContext = Annotated[dict[str, Any], Depends(_requested_chart)]


@router.get("/telemetry")
async def telemetry(request: Request, context: ChartContext) -> Response:
    """Choose a device, stream, fields and range; see the downsampled chart."""
    status_code = 422 if context["error"] else 200
    return render(request, "telemetry/index.html", status_code=status_code, title="Telemetry", **context)


@router.get("/telemetry/chart")
async def telemetry_chart(request: Request, context: ChartContext) -> Response:
    """The chart alone, which the page polls for "last ..." ranges."""
    status_code = 422 if context["error"] else 200
    return render(request, "telemetry/_chart.html", status_code=status_code, **context)

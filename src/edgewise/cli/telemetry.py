"""``edgewise telemetry ...``: query, tail, list and export what devices sent, and set how long the cloud keeps it.

Reads the cloud's telemetry API (``/api/v1/telemetry``) with the same ``--api`` / ``--data`` options as the other
cloud commands. Times are durations back from now (``15m``, ``1h``, ``7d``), ISO 8601 times
(``2026-12-07T06:30:00Z``) or milliseconds since the epoch.

Parts live beside this module: ``export`` (Parquet, with :func:`export_schema`, the input of the
ML pipeline) in :mod:`edgewise.cli.telemetry_export`, ``objects`` in :mod:`edgewise.cli.telemetry_objects`,
and the time, duration and size options in :mod:`edgewise.cli.telemetry_options`::

    edgewise telemetry export --stream factory/line-1 --since 7d --output line-1.parquet
"""

from __future__ import annotations

import base64
import datetime
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgewise.cli.api import (
    ApiOption,
    DataOption,
    JsonOption,
    api_client,
    api_path,
    list_all,
    print_json,
    request,
    without_none,
)
from edgewise.cli.connection import fail
from edgewise.cli.telemetry_export import EXPORT_FORMAT as EXPORT_FORMAT
from edgewise.cli.telemetry_export import export
from edgewise.cli.telemetry_export import export_schema as export_schema
from edgewise.cli.telemetry_objects import objects_app
from edgewise.cli.telemetry_options import (
    StreamOption,
    ThingOption,
    UntilOption,
    current_ms,
    parse_duration,
    parse_size,
    parse_time,
)

if TYPE_CHECKING:
    import httpx

app = typer.Typer(help="Telemetry in the cloud: query, tail, export, retention.", no_args_is_help=True)
retention_app = typer.Typer(help="How much of each stream the cloud keeps.", no_args_is_help=True)
app.add_typer(retention_app, name="retention")
app.add_typer(objects_app, name="objects")
console = Console()

_PAYLOAD_SHOWN = 100


def _iso(milliseconds: int) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(milliseconds / 1000, datetime.UTC)
    except (OverflowError, ValueError, OSError):
        return str(milliseconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _shown_payload(message: dict[str, Any]) -> str:
    if message["encoding"] == "json":
        text = json.dumps(message["payload"], separators=(",", ":"), ensure_ascii=False)
    else:
        raw = base64.b64decode(message["payload"])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return f"<{len(raw)} bytes>"
        if not text.isprintable():
            return f"<{len(raw)} bytes>"
    return text if len(text) <= _PAYLOAD_SHOWN else text[: _PAYLOAD_SHOWN - 3] + "..."


def _message_table(messages: list[dict[str, Any]]) -> Table:
    table = Table("Time", "Thing", "Stream", "Seq", "Payload")
    for message in messages:
        sequence = message["sequenceNumber"]
        table.add_row(
            _iso(message["timestamp"]),
            escape(message["thing"]),
            escape(message["stream"]),
            "" if sequence is None else str(sequence),
            escape(_shown_payload(message)),
        )
    return table


def _series_table(result: dict[str, Any], stat: str | None) -> Table:
    stats = [stat] if stat else ["count", "mean", "min", "max"]
    table = Table("Start", *[name.capitalize() for name in stats])
    for bucket in result["buckets"]:
        table.add_row(_iso(bucket["start"]), *[f"{bucket[name]:g}" for name in stats])
    return table


@app.command("query")
def query_messages(
    thing: ThingOption = None,
    stream: StreamOption = None,
    since: Annotated[
        str, typer.Option("--since", help="Start (inclusive): a duration ago (1h, 7d), an ISO time or ms.")
    ] = "1h",
    until: UntilOption = None,
    field: Annotated[
        str | None,
        typer.Option(
            "--field", help="A numeric JSON field to downsample, e.g. a.b[0].c.", show_default=False
        ),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option("--every", help="The bucket size with --field, e.g. 1m, 1h.", show_default=False),
    ] = None,
    stat: Annotated[
        str | None,
        typer.Option("--stat", help="With --field: show only mean, min, max or count.", show_default=False),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10_000, help="The most messages to show.")
    ] = 100,
    oldest: Annotated[
        bool, typer.Option("--oldest", help="The oldest messages first, not the newest.")
    ] = False,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Show a range of messages, or with --field and --every a numeric field downsampled into buckets."""
    now = current_ms()
    params: dict[str, Any] = {"since": parse_time("--since", since, now_ms=now)}
    if until is not None:
        params["until"] = parse_time("--until", until, now_ms=now)
    if (field is None) != (every is None):
        fail("--every: required with --field" if every is None else "--field: required with --every")
    if stat is not None and field is None:
        fail("--stat: only with --field and --every")
    if stat is not None and stat not in ("mean", "min", "max", "count"):
        fail(f"--stat: {stat!r} is not one of mean, min, max, count")
    if field is not None and every is not None:
        parse_duration("--every", every)
        if stream is None:
            fail("--stream: required with --field")
        series = {"thing": thing, "stream": stream, "field": field, "every": every, "stat": stat}
        _print_series({"until": now, **params, **without_none(series)}, stat, as_json, api, data)
        return
    params |= without_none({"thing": thing, "stream": stream})
    params |= {"limit": limit, "order": "oldest" if oldest else "newest"}
    with api_client(api, data) as client:
        page = request(client, "GET", "/telemetry/messages", params=params)
    if as_json:
        print_json(page["data"])
        return
    console.print(_message_table(page["data"]))
    if page["more"]:
        typer.echo(f"Showing {len(page['data'])} messages; there are more (raise --limit, or use export)")


def _print_series(
    params: dict[str, Any], stat: str | None, as_json: bool, api: str | None, data: Path | None
) -> None:
    with api_client(api, data) as client:
        result = request(client, "GET", "/telemetry/series", params=params)
    if as_json:
        print_json(result)
        return
    console.print(_series_table(result, stat))
    if result["skipped"]:
        typer.echo(f"{result['skipped']} messages skipped: {params['field']} is missing or not a number")


def _tail_line(message: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(message, sort_keys=True)
    return f"{_iso(message['timestamp'])} {message['thing']} {message['stream']} {_shown_payload(message)}"


@app.command("tail")
def tail(
    thing: ThingOption = None,
    stream: StreamOption = None,
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=0, max=1000, help="Recent messages to show first.")
    ] = 10,
    after: Annotated[
        int | None,
        typer.Option("--after", min=0, help="Start after this message id instead.", show_default=False),
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0.05, max=60.0, help="Seconds between polls.")
    ] = 1.0,
    max_messages: Annotated[
        int | None,
        typer.Option("--max-messages", min=1, help="Stop after this many messages.", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each message as one line of JSON.")] = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Print the newest messages, then messages as they arrive, until Ctrl-C (or --max-messages)."""
    selection = without_none({"thing": thing, "stream": stream})
    try:
        with api_client(api, data) as client:
            if after is None:
                recent, after = _recent(client, selection, lines)
            else:
                recent = []
            arriving = _follow(client, selection, after=after, interval=interval)
            for printed, message in enumerate(itertools.chain(recent, arriving), start=1):
                typer.echo(_tail_line(message, as_json))
                if max_messages is not None and printed >= max_messages:
                    return
    except KeyboardInterrupt:
        return


def _recent(client: httpx.Client, selection: dict[str, Any], lines: int) -> tuple[list[dict[str, Any]], int]:
    """The ``lines`` newest messages, oldest first, and the id of the newest message stored (0 if none)."""
    page = request(
        client, "GET", "/telemetry/messages", params={**selection, "order": "newest", "limit": max(lines, 1)}
    )
    newest = page["data"]
    return list(reversed(newest[:lines])), int(newest[0]["id"]) if newest else 0


def _follow(
    client: httpx.Client, selection: dict[str, Any], *, after: int, interval: float
) -> Iterator[dict[str, Any]]:
    """Every message stored after ``after``, forever: a full page is followed at once, else after ``interval``."""
    while True:
        page = request(
            client, "GET", "/telemetry/messages", params={**selection, "after": after, "limit": 1000}
        )
        yield from page["data"]
        if page["cursor"] is not None:
            after = page["cursor"]
        if not page["more"]:
            time.sleep(interval)


@app.command("streams")
def streams(
    thing: ThingOption = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Count only messages since then.", show_default=False)
    ] = None,
    until: UntilOption = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """List the streams with stored messages: count, bytes, first and last time, things."""
    now = current_ms()
    params = without_none(
        {
            "thing": thing,
            "since": None if since is None else parse_time("--since", since, now_ms=now),
            "until": None if until is None else parse_time("--until", until, now_ms=now),
        }
    )
    with api_client(api, data) as client:
        found = list_all(client, "/telemetry/streams", params)
    if as_json:
        print_json(found)
        return
    table = Table("Stream", "Messages", "Bytes", "First", "Last", "Things")
    for entry in found:
        table.add_row(
            escape(entry["stream"]),
            str(entry["messages"]),
            str(entry["bytes"]),
            _iso(entry["firstTimestamp"]),
            _iso(entry["lastTimestamp"]),
            str(entry["things"]),
        )
    console.print(table)


def _describe_age(seconds: int | None) -> str:
    if seconds is None:
        return ""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@retention_app.command("set")
def retention_set(
    stream: Annotated[str, typer.Argument(help="The stream (for device topics, the topic).")],
    max_age: Annotated[
        str | None,
        typer.Option("--max-age", help="Delete messages older than this, e.g. 7d.", show_default=False),
    ] = None,
    max_bytes: Annotated[
        str | None,
        typer.Option(
            "--max-bytes", help="Keep at most this many payload bytes, e.g. 500MB.", show_default=False
        ),
    ] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Set how long and how much of a stream the cloud keeps (admin token); what is left out is no limit."""
    body: dict[str, Any] = {"maxAgeSeconds": None, "maxBytes": None}
    if max_age is not None:
        milliseconds = parse_duration("--max-age", max_age)
        if milliseconds % 1000:
            fail(f"--max-age: {max_age!r} is not a whole number of seconds")
        body["maxAgeSeconds"] = milliseconds // 1000
    if max_bytes is not None:
        body["maxBytes"] = parse_size("--max-bytes", max_bytes)
    with api_client(api, data) as client:
        rule = request(client, "PUT", api_path("telemetry", "retention", stream), json=body)
    if as_json:
        print_json(rule)
        return
    limits = [f"max age {_describe_age(rule['maxAgeSeconds'])}" if rule["maxAgeSeconds"] else "no max age"]
    limits.append(f"max {rule['maxBytes']} bytes" if rule["maxBytes"] else "no max size")
    typer.echo(f"Retention of {stream}: {', '.join(limits)}")


@retention_app.command("delete")
def retention_delete(
    stream: Annotated[str, typer.Argument(help="The stream.")], api: ApiOption = None, data: DataOption = None
) -> None:
    """Remove a stream's retention (admin token): the cloud's default age applies to it again."""
    with api_client(api, data) as client:
        request(client, "DELETE", api_path("telemetry", "retention", stream))
    typer.echo(f"Removed the retention of {stream}")


@retention_app.command("list")
def retention_list(as_json: JsonOption = False, api: ApiOption = None, data: DataOption = None) -> None:
    """List every stream's retention, and the default age of the others."""
    with api_client(api, data) as client:
        listing = request(client, "GET", "/telemetry/retention")
    if as_json:
        print_json(listing)
        return
    table = Table("Stream", "Max age", "Max bytes", "Updated")
    for rule in listing["data"]:
        table.add_row(
            escape(rule["stream"]),
            _describe_age(rule["maxAgeSeconds"]),
            "" if rule["maxBytes"] is None else str(rule["maxBytes"]),
            rule["updatedAt"],
        )
    console.print(table)
    default = listing["defaultMaxAgeSeconds"]
    typer.echo(f"Other streams: {'kept for ' + _describe_age(default) if default else 'kept without limit'}")


# Registered last, after query, tail and streams, so `edgewise telemetry --help` lists the commands in the same order.
app.command("export")(export)

"""``edgewise logs``: read the log lines a device sent to the cloud, and follow them as they arrive.

Reads ``/api/v1/things/<thing>/logs`` with the same ``--api`` / ``--data`` options as the other cloud commands.
Times are durations back from now (``15m``, ``1h``, ``7d``), ISO 8601 times or milliseconds since the epoch;
``--level WARN`` shows WARN and ERROR lines. Each line prints as ``timestamp [LEVEL] component: message``
(the time the cloud received it when the line gives none), or as one line of JSON with ``--json``.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgewise.cli.api import ApiOption, DataOption, api_client, api_path, request, without_none
from edgewise.cli.telemetry_options import UntilOption, current_ms, parse_time

if TYPE_CHECKING:
    import httpx

_PAGE = 1000


def _shown_time(line: dict[str, Any]) -> str:
    milliseconds = line.get("timestamp")
    if milliseconds is None:
        received = datetime.datetime.fromisoformat(str(line["receivedAt"]))
        return received.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    try:
        moment = datetime.datetime.fromtimestamp(int(milliseconds) / 1000, datetime.UTC)
    except (OverflowError, ValueError, OSError):
        return str(milliseconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_line(line: dict[str, Any]) -> str:
    """``line`` (as the API gives it) as ``timestamp [LEVEL] component: message``."""
    return f"{_shown_time(line)} [{line.get('level') or '-'}] {line['component']}: {line['message']}"


def _lines(
    client: httpx.Client, path: str, params: dict[str, Any], *, follow: bool, interval: float
) -> Iterator[dict[str, Any]]:
    """Every line the filter matches, page by page; with ``follow``, then every line as it arrives, forever."""
    after: int | None = None
    while True:
        page = request(client, "GET", path, params=without_none({**params, "after": after, "limit": _PAGE}))
        yield from page["data"]
        if page["cursor"] is not None:
            after = page["cursor"]
        if not page["more"]:
            if not follow:
                return
            time.sleep(interval)


def logs(
    thing: Annotated[str, typer.Option("--thing", help="The thing whose logs to read.", show_default=False)],
    component: Annotated[
        str | None,
        typer.Option(
            "--component", help="Only this component's lines ('System': the runtime's).", show_default=False
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Start (inclusive): a duration ago (1h), an ISO time or ms.", show_default=False
        ),
    ] = None,
    until: UntilOption = None,
    level: Annotated[
        str | None,
        typer.Option(
            "--level",
            help="This level and the more severe (TRACE DEBUG INFO WARN ERROR).",
            show_default=False,
        ),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing lines as they arrive.")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.05, max=60.0, help="Seconds between polls with --follow.")
    ] = 1.0,
    max_lines: Annotated[
        int | None, typer.Option("--max-lines", min=1, help="Stop after this many lines.", show_default=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print each line as one line of JSON.")] = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Print a thing's log lines in the order they arrived; with --follow, until Ctrl-C."""
    now_ms = current_ms()
    params = without_none(
        {
            "component": component,
            "since": None if since is None else parse_time("--since", since, now_ms=now_ms),
            "until": None if until is None else parse_time("--until", until, now_ms=now_ms),
            "level": None if level is None else level.upper(),
        }
    )
    try:
        with api_client(api, data) as client:
            lines = _lines(
                client, api_path("things", thing, "logs"), params, follow=follow, interval=interval
            )
            for printed, line in enumerate(lines, start=1):
                typer.echo(json.dumps(line, separators=(",", ":")) if as_json else format_line(line))
                if max_lines is not None and printed >= max_lines:
                    return
    except KeyboardInterrupt:
        return

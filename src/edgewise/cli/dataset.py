"""``edgewise dataset ...``: build training datasets from the cloud's telemetry, import CSV or Parquet files, and
list, describe and delete them.

``create`` selects stored messages (``--thing``, ``--stream``, ``--topic`` filters, ``--since`` / ``--until``),
takes payload fields as ``--field name=path`` and optionally resamples (``--resample 1s``), cuts windows
(``--window-size``, ``--window-step``, ``--features``) and labels rows (``--label-field name=path`` or
``--anomaly START/END``). Times are durations back from now (``15m``, ``7d``), ISO 8601 times or milliseconds
since the epoch, as in ``edgewise telemetry``. Every command finds the API and its token as
:mod:`edgewise.cli.api` says::

    edgewise dataset create pumps --topic 'dt/+/reading' --since 7d --field temp=sensors.temp \\
        --resample 1s --window-size 30 --window-step 10 --anomaly 2026-12-06T10:00Z/2026-12-06T10:20Z
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
    file_body,
    list_all,
    print_json,
    request,
    send,
    upload_progress,
    without_none,
)
from edgewise.cli.connection import fail
from edgewise.cli.telemetry_options import UntilOption, current_ms, parse_duration, parse_time

app = typer.Typer(
    help="Datasets for training: build from telemetry, import files, list, describe, delete.",
    no_args_is_help=True,
)
console = Console()

_UPLOAD_READ_TIMEOUT = 600.0

NameArgument = Annotated[str, typer.Argument(help="The dataset's name (letters, digits, _ and -).")]


def _iso(milliseconds: object) -> str:
    import datetime

    if not isinstance(milliseconds, int):
        return ""
    moment = datetime.datetime.fromtimestamp(milliseconds / 1000, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _anomaly_range(text: str, now_ms: int) -> list[int]:
    start, separator, end = text.partition("/")
    if not separator or not start or not end:
        fail(f"--anomaly: {text!r} is not START/END (two times separated by '/')")
    return [parse_time("--anomaly", start, now_ms=now_ms), parse_time("--anomaly", end, now_ms=now_ms)]


@app.command()
def create(
    name: NameArgument,
    field: Annotated[
        list[str],
        typer.Option("--field", help="A payload field, name=path (e.g. temp=sensors.temp); repeat for more."),
    ],
    thing: Annotated[
        list[str] | None, typer.Option("--thing", help="Only this thing's messages; repeatable.")
    ] = None,
    stream: Annotated[
        list[str] | None, typer.Option("--stream", help="Only this stream's messages; repeatable.")
    ] = None,
    topic: Annotated[
        list[str] | None,
        typer.Option(
            "--topic", help="Only messages on device topics matching this filter (+, #); repeatable."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Start (inclusive): a duration ago (7d), an ISO time or ms.", show_default=False
        ),
    ] = None,
    until: UntilOption = None,
    resample: Annotated[
        str | None,
        typer.Option(
            "--resample",
            help="Average each thing's values in buckets of this size, e.g. 1s.",
            show_default=False,
        ),
    ] = None,
    window_size: Annotated[
        int | None,
        typer.Option(
            "--window-size", min=2, help="Samples per window (needs --resample).", show_default=False
        ),
    ] = None,
    window_step: Annotated[
        int | None,
        typer.Option(
            "--window-step",
            min=1,
            help="Samples between window starts (default: the size).",
            show_default=False,
        ),
    ] = None,
    features: Annotated[
        str | None,
        typer.Option("--features", help="Window features: mean,std,min,max,slope,fft.", show_default=False),
    ] = None,
    fft_bands: Annotated[
        int | None, typer.Option("--fft-bands", min=1, help="Bands of the fft feature.", show_default=False)
    ] = None,
    label_field: Annotated[
        str | None,
        typer.Option("--label-field", help="The label: a payload field, name=path.", show_default=False),
    ] = None,
    anomaly: Annotated[
        list[str] | None,
        typer.Option(
            "--anomaly", help="A time range START/END whose rows are labelled 1 (else 0); repeatable."
        ),
    ] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Build a dataset from the cloud's stored telemetry."""
    now = current_ms()
    selection: dict[str, Any] = {"things": thing or [], "streams": stream or [], "topics": topic or []}
    if since is not None:
        selection["since"] = parse_time("--since", since, now_ms=now)
    if until is not None:
        selection["until"] = parse_time("--until", until, now_ms=now)
    body: dict[str, Any] = {"name": name, "selection": selection, "fields": field}
    if resample is not None:
        parse_duration("--resample", resample)
        body["resample"] = resample
    if window_size is None and (window_step is not None or features is not None or fft_bands is not None):
        fail("--window-size: required with --window-step, --features and --fft-bands")
    if window_size is not None:
        window: dict[str, Any] = {"size": window_size, "step": window_step or window_size}
        if features is not None:
            window["features"] = [part.strip() for part in features.split(",") if part.strip()]
        if fft_bands is not None:
            window["fftBands"] = fft_bands
        body["window"] = window
    if label_field is not None and anomaly:
        fail("--label-field: give either it or --anomaly, not both")
    if label_field is not None:
        body["label"] = {"field": label_field}
    elif anomaly:
        body["label"] = {"anomalousRanges": [_anomaly_range(text, now) for text in anomaly]}
    with api_client(api, data) as client:
        created = request(client, "POST", "/datasets", json=body, timeout=_UPLOAD_READ_TIMEOUT)
    if as_json:
        print_json(created)
        return
    typer.echo(
        f"Created dataset {created['name']}: {created['rows']} rows, {created['columns']} columns "
        f"from {created['source'].get('messages', 0)} messages"
    )


@app.command("import")
def import_file(
    name: NameArgument,
    file: Annotated[Path, typer.Argument(help="A .csv or .parquet file.", exists=True, dir_okay=False)],
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Import a CSV or Parquet file as a dataset (columns thing and timestamp are recognized)."""
    import httpx

    size = file.stat().st_size
    with api_client(api, data) as client, upload_progress() as progress:
        task = progress.add_task(f"uploading {file.name}", total=size)
        response = send(
            client,
            "PUT",
            api_path("datasets", name, "file"),
            params={"fileName": file.name},
            content=file_body(file, lambda sent: progress.advance(task, sent)),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            # Reading and summarizing a large file happens after the last byte, before the answer.
            timeout=httpx.Timeout(30.0, read=_UPLOAD_READ_TIMEOUT),
        )
        progress.update(task, description=f"{file.name} (imported)", completed=size)
    imported = response.json()
    if as_json:
        print_json(imported)
        return
    typer.echo(
        f"Imported {file.name} as dataset {imported['name']}: {imported['rows']} rows, {imported['columns']} columns"
    )


@app.command("list")
def list_datasets(as_json: JsonOption = False, api: ApiOption = None, data: DataOption = None) -> None:
    """List the datasets."""
    with api_client(api, data) as client:
        found = list_all(client, "/datasets", {})
    if as_json:
        print_json(found)
        return
    table = Table("Name", "Kind", "Rows", "Columns", "Bytes", "Created", "By")
    for item in found:
        table.add_row(
            escape(item["name"]),
            item["kind"],
            str(item["rows"]),
            str(item["columns"]),
            str(item["sizeBytes"]),
            item["createdAt"][:19].replace("T", " "),
            escape(item["createdBy"]),
        )
    console.print(table)


def _number(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, int | float) else ""


@app.command()
def describe(
    name: NameArgument, as_json: JsonOption = False, api: ApiOption = None, data: DataOption = None
) -> None:
    """Show how a dataset was made and a summary of each column."""
    with api_client(api, data) as client:
        dataset = request(client, "GET", api_path("datasets", name))
    if as_json:
        print_json(dataset)
        return
    summary = dataset["summary"]
    source = dataset["source"]
    typer.echo(
        f"Dataset {dataset['name']} ({dataset['kind']}): {dataset['rows']} rows, {dataset['sizeBytes']} bytes"
    )
    if source.get("kind") == "file":
        typer.echo(f"Imported from {source.get('fileName')}")
    else:
        selection = without_none({key: value or None for key, value in source.get("selection", {}).items()})
        typer.echo(f"Built from {source.get('messages', 0)} messages: {selection or 'every message'}")
    if summary.get("firstTimestamp") is not None:
        typer.echo(f"Time: {_iso(summary['firstTimestamp'])} to {_iso(summary['lastTimestamp'])}")
    if summary.get("things"):
        typer.echo(f"Things: {', '.join(summary['things'])}")
    table = Table("Column", "Type", "Missing", "Min", "Max", "Mean")
    for column in summary.get("columns", []):
        table.add_row(
            escape(column["name"]),
            column["type"],
            str(column["missing"]),
            _number(column.get("min")),
            _number(column.get("max")),
            _number(column.get("mean")),
        )
    console.print(table)


@app.command()
def delete(name: NameArgument, api: ApiOption = None, data: DataOption = None) -> None:
    """Delete a dataset no queued or running training job uses."""
    with api_client(api, data) as client:
        request(client, "DELETE", api_path("datasets", name))
    typer.echo(f"Deleted dataset {name}")

"""``edgewise telemetry export``: a range of stored messages as a Parquet file, the input of the ML pipeline.

The columns are :func:`export_schema`; messages are read from the cloud's telemetry API a page at a time and
written as one record batch per page, so an export of any size holds one page in memory::

    edgewise telemetry export --stream factory/line-1 --since 7d --output line-1.parquet
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from edgewise.cli.api import ApiOption, DataOption, api_client, list_all, request, without_none
from edgewise.cli.connection import fail
from edgewise.cli.telemetry_options import StreamOption, ThingOption, UntilOption, current_ms, parse_time

if TYPE_CHECKING:
    import httpx
    import pyarrow as pa

progress_console = Console(stderr=True)

#: Written into the Parquet file's schema metadata; a reader checks it before trusting the columns.
EXPORT_FORMAT = b"edgewise.telemetry/1"
_EXPORT_PAGE = 10_000


def export_schema() -> pa.Schema:
    """The columns of ``edgewise telemetry export``, one row per message in ingest order.

    - ``thing`` (string): the thing that sent it; "" when the cloud could not tell.
    - ``stream`` (string): the telemetry stream; for a message published on a device topic, the topic.
    - ``topic`` (string, null): the MQTT topic it arrived on; null for stream exports.
    - ``sequence_number`` (int64, null): its sequence number in the device's stream; null for topic messages.
    - ``timestamp`` (timestamp[ms, UTC]): when the device says it was made.
    - ``payload`` (binary): the payload's bytes as sent.
    - ``payload_json`` (string, null): the payload's text when it is a JSON object or array, else null.

    The schema's metadata holds ``edgewise.format`` = :data:`EXPORT_FORMAT`.
    """
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("thing", pa.string(), nullable=False),
            pa.field("stream", pa.string(), nullable=False),
            pa.field("topic", pa.string()),
            pa.field("sequence_number", pa.int64()),
            pa.field("timestamp", pa.timestamp("ms", tz="UTC"), nullable=False),
            pa.field("payload", pa.binary(), nullable=False),
            pa.field("payload_json", pa.string()),
        ],
        metadata={b"edgewise.format": EXPORT_FORMAT},
    )


def _pages(client: httpx.Client, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    cursor: int | None = None
    while True:
        page_params = {**params, "limit": _EXPORT_PAGE, "payloadEncoding": "base64"}
        if cursor is not None:
            page_params["after"] = cursor
        page = request(client, "GET", "/telemetry/messages", params=page_params)
        if page["data"]:
            yield page["data"]
        if not page["more"]:
            return
        cursor = page["cursor"]


def _batch(messages: list[dict[str, Any]], schema: pa.Schema) -> pa.RecordBatch:
    import pyarrow as pa

    payloads = [base64.b64decode(message["payload"]) for message in messages]
    columns = {
        "thing": [message["thing"] for message in messages],
        "stream": [message["stream"] for message in messages],
        "topic": [message["topic"] for message in messages],
        "sequence_number": [message["sequenceNumber"] for message in messages],
        "timestamp": [message["timestamp"] for message in messages],
        "payload": payloads,
        "payload_json": [
            payload.decode("utf-8") if message["isJson"] else None
            for message, payload in zip(messages, payloads, strict=True)
        ],
    }
    return pa.RecordBatch.from_pydict(columns, schema=schema)


def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="The Parquet file to write.")],
    thing: ThingOption = None,
    stream: StreamOption = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Start (inclusive): a duration ago, an ISO time or ms.", show_default=False
        ),
    ] = None,
    until: UntilOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the output file if it exists.")] = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Write a range of messages to a Parquet file (columns: see docs/cloud.md, Telemetry)."""
    import pyarrow.parquet as pq

    if output.exists() and not force:
        fail(f"--output: {output} exists; give --force to replace it")
    now = current_ms()
    params = without_none(
        {
            "thing": thing,
            "stream": stream,
            "since": None if since is None else parse_time("--since", since, now_ms=now),
            "until": None if until is None else parse_time("--until", until, now_ms=now),
        }
    )
    schema = export_schema()
    # Written beside the output and renamed at the end, so a cut-off export never leaves a half file behind.
    partial = output.with_name(output.name + ".partial")
    written = 0
    try:
        with api_client(api, data) as client:
            expected = sum(entry["messages"] for entry in list_all(client, "/telemetry/streams", params))
            columns = (TextColumn("Exporting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            with (
                Progress(*columns, console=progress_console) as progress,
                pq.ParquetWriter(partial, schema) as writer,
            ):
                task = progress.add_task("export", total=expected)
                for messages in _pages(client, params):
                    writer.write_batch(_batch(messages, schema))
                    written += len(messages)
                    progress.update(task, completed=written, total=max(expected, written))
        partial.replace(output)
    except OSError as exc:
        fail(f"--output: cannot write {output}: {exc.strerror or exc}")
    finally:
        partial.unlink(missing_ok=True)
    typer.echo(f"Exported {written} messages to {output}")

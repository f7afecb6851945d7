"""``edgewise telemetry objects ...``: list and download the files devices uploaded through S3 export tasks.

Stream manager's S3 export tasks upload to the cloud, which keeps each file and its bucket and key; these
commands read them back through ``/api/v1/telemetry/objects``.
"""

from __future__ import annotations

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
    print_json,
    request,
    without_none,
)
from edgewise.cli.connection import fail

if TYPE_CHECKING:
    import httpx

objects_app = typer.Typer(
    help="Files devices uploaded through stream manager S3 export tasks.", no_args_is_help=True
)
console = Console()


@objects_app.command("list")
def objects_list(
    thing: Annotated[
        str | None, typer.Option("--thing", help="Only this thing's objects.", show_default=False)
    ] = None,
    bucket: Annotated[
        str | None, typer.Option("--bucket", help="Only this bucket.", show_default=False)
    ] = None,
    prefix: Annotated[
        str | None, typer.Option("--prefix", help="Only keys starting with this.", show_default=False)
    ] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """List the files devices uploaded through S3 export tasks."""
    params = without_none({"thing": thing, "bucket": bucket, "prefix": prefix})
    with api_client(api, data) as client:
        found = _all_objects(client, params)
    if as_json:
        print_json(found)
        return
    table = Table("Id", "Thing", "Bucket", "Key", "Bytes", "Uploaded")
    for item in found:
        table.add_row(
            str(item["id"]),
            escape(item["thing"]),
            escape(item["bucket"]),
            escape(item["key"]),
            str(item["size"]),
            item["uploadedAt"],
        )
    console.print(table)


@objects_app.command("get")
def objects_get(
    thing: Annotated[str, typer.Argument(help="The thing that uploaded it.")],
    bucket: Annotated[str, typer.Argument(help="Its bucket.")],
    key: Annotated[str, typer.Argument(help="Its key.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write it ('-': standard output).")],
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Download a file a device uploaded through an S3 export task."""
    import httpx

    with api_client(api, data) as client:
        matches = [
            item
            for item in _all_objects(client, {"thing": thing, "bucket": bucket, "prefix": key})
            if item["key"] == key
        ]
        if not matches:
            fail(f"Thing {thing!r} uploaded no object {key!r} to bucket {bucket!r}")
        item = matches[0]
        path = api_path("telemetry", "objects", str(item["id"]), "content")
        try:
            with client.stream("GET", path) as response:
                if response.is_error:
                    response.read()
                    fail(f"Download of {bucket}/{key} answered {response.status_code}: {response.text[:200]}")
                _write_stream(response.iter_bytes(), out)
        except httpx.HTTPError as exc:
            fail(f"Cannot download {bucket}/{key} from the cloud API: {exc}")
    if str(out) != "-":
        typer.echo(f"Wrote {item['size']} bytes of {bucket}/{key} (from {thing}) to {out}")


def _all_objects(client: httpx.Client, params: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after: int | None = None
    while True:
        page = request(client, "GET", "/telemetry/objects", params=without_none({**params, "after": after}))
        found += page["data"]
        if not page["more"]:
            return found
        after = page["cursor"]


def _write_stream(chunks: Iterator[bytes], out: Path) -> None:
    if str(out) == "-":
        import sys

        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return
    temporary = out.with_name(out.name + ".part")
    with temporary.open("wb") as file:
        for chunk in chunks:
            file.write(chunk)
    temporary.replace(out)

"""Talking to the cloud's REST API from the CLI: where it is, the token, requests, file uploads with their
progress, and errors as messages.

Every API command takes ``--api URL`` (or ``EDGEWISE_API_URL``; else the URL in ``--data DIR``'s ``cloud.json``,
else http://127.0.0.1:8080) and a token from ``EDGEWISE_API_TOKEN`` or, with ``--data DIR``, the admin token
that ``edgewise cloud up`` wrote there. An error the API answers with is printed as ``error: <its message>``
and the command exits with 1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer

from edgewise.cli.connection import fail

if TYPE_CHECKING:
    import httpx
    from rich.progress import Progress

DEFAULT_API = "http://127.0.0.1:8080"
API_PATH = "/api/v1"
_PAGE = 1000
#: Bytes of a file read and sent at a time by an upload.
_UPLOAD_CHUNK = 1024 * 1024
_TIMEOUT = 30.0
#: Written by ``edgewise cloud up`` into its data directory.
ENDPOINTS_FILE = "cloud.json"
TOKEN_VARIABLE = "EDGEWISE_API_TOKEN"  # noqa: S105 - the name of a variable, not a secret

ApiOption = Annotated[
    str | None,
    typer.Option(
        "--api",
        envvar="EDGEWISE_API_URL",
        help=f"The cloud API's URL (default: the one in --data DIR's cloud.json, else {DEFAULT_API})",
        show_default=False,
    ),
]
DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data", help="Cloud data directory whose admin token to use (if EDGEWISE_API_TOKEN is not set)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def token(data: Path | None) -> str:
    """The API token: ``EDGEWISE_API_TOKEN``, else the admin token in ``data``; exits when there is none."""
    # From the environment, not an option: a token on the command line would show in the process list.
    secret = os.environ.get(TOKEN_VARIABLE)
    if secret:
        return secret
    if data is None:
        fail("No API token: set EDGEWISE_API_TOKEN, or give --data DIR of the cloud to use its admin token")
    token_file = data / "admin-token"
    try:
        return token_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        fail(f"No admin token at {token_file}; has `edgewise cloud up --data {data}` run?")
    except OSError as exc:
        fail(f"Cannot read {token_file}: {exc.strerror}")


def cloud_endpoints(data: Path | None) -> dict[str, Any]:
    """What ``data``'s ``cloud.json`` says (empty when there is no readable one)."""
    if data is None:
        return {}
    try:
        endpoints = json.loads((data / ENDPOINTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return endpoints if isinstance(endpoints, dict) else {}


def api_url(api: str | None, data: Path | None) -> str:
    """The API's base URL from ``--api``, else ``data``'s ``cloud.json``, else the default."""
    if api:
        return api
    # A cloud that never started here has no cloud.json: the default is as good a guess as any.
    return str(cloud_endpoints(data).get("apiUrl", DEFAULT_API))


@contextmanager
def api_client(api: str | None, data: Path | None) -> Iterator[httpx.Client]:
    """An HTTP client for the API's ``/api/v1`` with the token in its headers."""
    import httpx

    base = api_url(api, data)
    headers = {"Authorization": f"Bearer {token(data)}"}
    with httpx.Client(base_url=base.rstrip("/") + API_PATH, headers=headers, timeout=_TIMEOUT) as client:
        yield client


def send(
    client: httpx.Client, method: str, path: str, *, allow: tuple[int, ...] = (), **kwargs: Any
) -> httpx.Response:
    """Send one request; its response if it succeeded or its status is in ``allow``, else exit with the API's message."""
    import httpx

    try:
        response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        fail(f"Cannot reach the cloud API at {client.base_url}: {exc}")
    if response.is_error and response.status_code not in allow:
        try:
            message = str(response.json()["message"])
        except (ValueError, KeyError, TypeError):
            message = f"{method} {path} answered {response.status_code}: {response.text[:200]}"
        fail(message)
    return response


def request(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    """Send one request; the decoded JSON body (``None`` when empty), or exit with the API's message."""
    response = send(client, method, path, **kwargs)
    return response.json() if response.content else None


def upload_progress() -> Progress:
    """The live view of file uploads, on stderr: a bar per file with its bytes sent, speed and time left."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=Console(stderr=True))


def file_body(path: Path, on_chunk: Callable[[int], None], offset: int = 0) -> Iterator[bytes]:
    """The bytes of ``path`` from ``offset`` on, as a request's streamed body; ``on_chunk`` gets each chunk's
    size once the chunk is sent."""
    with path.open("rb") as stream:
        stream.seek(offset)
        while chunk := stream.read(_UPLOAD_CHUNK):
            yield chunk
            on_chunk(len(chunk))


def api_path(*segments: str) -> str:
    """An API path from fixed parts and names; names are escaped, so none can reach another route."""
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


def list_all(client: httpx.Client, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item of a paged listing."""
    items: list[dict[str, Any]] = []
    while True:
        page = request(client, "GET", path, params={**params, "limit": _PAGE, "offset": len(items)})
        items += page["data"]
        if not page["data"] or len(items) >= page["count"]:
            return items


def without_none(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` without the ``None`` ones (options not given)."""
    return {name: value for name, value in values.items() if value is not None}


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON with sorted keys."""
    typer.echo(json.dumps(value, indent=2, sort_keys=True))

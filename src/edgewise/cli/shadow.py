"""``edgewise shadow ...``: device shadows through the cloud's REST API (AWS IoT's data-plane shapes).

``get``, ``update`` and ``delete`` act on a thing's classic shadow, or on a named one with ``--name``. An update
is given as its parts (``--desired JSON``, ``--reported JSON``, ``--version N``) or as AWS's whole update
document with ``--file doc.json``; devices get the delta over MQTT as if they had sent it themselves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from edgewise.cli.api import ApiOption, DataOption, JsonOption, api_client, api_path, print_json, request
from edgewise.cli.connection import fail

app = typer.Typer(
    help="Device shadows: desired and reported state, as AWS IoT keeps them.", no_args_is_help=True
)

ThingArgument = Annotated[str, typer.Argument(help="Thing name.")]
NameOption = Annotated[
    str | None, typer.Option("--name", help="Named shadow (default: the classic shadow).", show_default=False)
]


def _params(name: str | None) -> dict[str, str]:
    return {"name": name} if name else {}


def _json_object(option: str, text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError as exc:
        fail(f"{option}: not valid JSON: {exc}")
    if value is not None and not isinstance(value, dict):
        fail(f"{option}: expected a JSON object or null, got {type(value).__name__}")
    return value


@app.command("get")
def get(
    thing: ThingArgument, name: NameOption = None, api: ApiOption = None, data: DataOption = None
) -> None:
    """Print a shadow: state (with its delta), metadata and version."""
    with api_client(api, data) as client:
        print_json(request(client, "GET", api_path("things", thing, "shadow"), params=_params(name)))


@app.command("update")
def update(
    thing: ThingArgument,
    name: NameOption = None,
    desired: Annotated[
        str | None, typer.Option("--desired", help="JSON object merged into desired (null clears it).")
    ] = None,
    reported: Annotated[
        str | None, typer.Option("--reported", help="JSON object merged into reported (null clears it).")
    ] = None,
    version: Annotated[
        int | None, typer.Option("--version", help="Refuse the update unless the shadow is at this version.")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="A whole update document (AWS's shape).", show_default=False)
    ] = None,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Merge desired and/or reported state into a shadow; print what was accepted."""
    if file is not None:
        if desired is not None or reported is not None:
            fail("--file: give either a document file or --desired/--reported, not both")
        try:
            body = file.read_bytes()
        except OSError as exc:
            fail(f"--file: cannot read {file}: {exc}")
    else:
        if desired is None and reported is None:
            fail("update: give --desired, --reported or --file")
        state = {
            section: _json_object(f"--{section}", text)
            for section, text in (("desired", desired), ("reported", reported))
            if text is not None
        }
        document: dict[str, Any] = {"state": state}
        if version is not None:
            document["version"] = version
        body = json.dumps(document).encode()
    headers = {"Content-Type": "application/json"}
    with api_client(api, data) as client:
        path = api_path("things", thing, "shadow")
        print_json(request(client, "POST", path, params=_params(name), content=body, headers=headers))


@app.command("delete")
def delete(
    thing: ThingArgument, name: NameOption = None, api: ApiOption = None, data: DataOption = None
) -> None:
    """Delete a shadow (its version numbering continues if it is created again)."""
    with api_client(api, data) as client:
        deleted = request(client, "DELETE", api_path("things", thing, "shadow"), params=_params(name))
    typer.echo(f"Deleted shadow {name or '(classic)'} of {thing} at version {deleted['version']}")


@app.command("list")
def list_named(
    thing: ThingArgument, api: ApiOption = None, data: DataOption = None, as_json: JsonOption = False
) -> None:
    """List a thing's named shadows."""
    names: list[str] = []
    token: str | None = None
    with api_client(api, data) as client:
        while True:
            params = {"pageSize": 100, **({"nextToken": token} if token else {})}
            page = request(
                client, "GET", api_path("things", "shadow", "ListNamedShadowsForThing", thing), params=params
            )
            names += page["results"]
            token = page.get("nextToken")
            if not token:
                break
    if as_json:
        print_json(names)
    else:
        for shadow in names:
            typer.echo(shadow)

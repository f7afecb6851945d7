"""``edgewise thing ...`` and ``edgewise group ...``: the device registry, through the cloud's REST API.

Every command takes ``--api URL`` (or ``EDGEWISE_API_URL``; else the URL in ``--data DIR``'s ``cloud.json``,
else http://127.0.0.1:8080) and a token from ``EDGEWISE_API_TOKEN`` or, with ``--data DIR``, the admin token
that ``edgewise cloud up`` wrote there. An error the API answers with is printed as ``error: <its message>`` and the command exits with 1.
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
from rich.console import Console
from rich.table import Table

from edgewise.cli.connection import fail

if TYPE_CHECKING:
    import httpx

thing_app = typer.Typer(help="Things in the cloud's registry.", no_args_is_help=True)
group_app = typer.Typer(help="Thing groups in the cloud's registry.", no_args_is_help=True)
console = Console()

DEFAULT_API = "http://127.0.0.1:8080"
API_PATH = "/api/v1"
_PAGE = 1000
_TIMEOUT = 30.0
#: Written by ``edgewise cloud up`` into its data directory.
ENDPOINTS_FILE = "cloud.json"
TOKEN_VARIABLE = "EDGEWISE_API_TOKEN"  # noqa: S105 - the name of a variable, not a secret

ApiOption = Annotated[
    str | None,
    typer.Option(
        "--api",
        envvar="EDGEWISE_API_URL",
        help=f"The cloud API's URL [default: the one in --data DIR's cloud.json, else {DEFAULT_API}]",
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
AttributeOption = Annotated[
    list[str] | None,
    typer.Option("--attribute", "-a", help="NAME=VALUE; repeat for more.", show_default=False),
]
ExpectedVersionOption = Annotated[
    int | None, typer.Option(help="Fail unless the resource is at this version.", show_default=False)
]


def _token(data: Path | None) -> str:
    # From the environment, not an option: a token on the command line would show in the process list.
    token = os.environ.get(TOKEN_VARIABLE)
    if token:
        return token
    if data is None:
        fail("No API token: set EDGEWISE_API_TOKEN, or give --data DIR of the cloud to use its admin token")
    token_file = data / "admin-token"
    try:
        return token_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        fail(f"No admin token at {token_file}; has `edgewise cloud up --data {data}` run?")
    except OSError as exc:
        fail(f"Cannot read {token_file}: {exc.strerror}")


def _api_url(api: str | None, data: Path | None) -> str:
    if api:
        return api
    if data is not None:
        try:
            return str(json.loads((data / ENDPOINTS_FILE).read_text(encoding="utf-8"))["apiUrl"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a cloud that never started here: the default is as good a guess as any
    return DEFAULT_API


@contextmanager
def _client(api: str | None, data: Path | None) -> Iterator[httpx.Client]:
    import httpx

    api = _api_url(api, data)

    headers = {"Authorization": f"Bearer {_token(data)}"}
    with httpx.Client(base_url=api.rstrip("/") + API_PATH, headers=headers, timeout=_TIMEOUT) as client:
        yield client


def _request(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    """Send one request; the decoded JSON body (``None`` when empty), or exit with the API's message."""
    import httpx

    try:
        response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        fail(f"Cannot reach the cloud API at {client.base_url}: {exc}")
    if response.is_error:
        try:
            message = str(response.json()["message"])
        except (ValueError, KeyError, TypeError):
            message = f"{method} {path} answered {response.status_code}: {response.text[:200]}"
        fail(message)
    return response.json() if response.content else None


def _path(*segments: str) -> str:
    """An API path from fixed parts and names; names are escaped, so none can reach another route."""
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


def _list_all(client: httpx.Client, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item of a paged listing."""
    items: list[dict[str, Any]] = []
    while True:
        page = _request(client, "GET", path, params={**params, "limit": _PAGE, "offset": len(items)})
        items += page["data"]
        if not page["data"] or len(items) >= page["count"]:
            return items


def _attributes(values: list[str] | None) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail(f"--attribute: expected NAME=VALUE, got {item!r}")
        attributes[name] = value
    return attributes


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True))


def _attribute_text(attributes: dict[str, str]) -> str:
    return ", ".join(f"{name}={value}" for name, value in sorted(attributes.items()))


def _print_things(things: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        _print_json(things)
        return
    table = Table("Thing", "Type", "Attributes", "Version")
    for thing in things:
        table.add_row(
            thing["thingName"],
            thing["thingTypeName"] or "",
            _attribute_text(thing["attributes"]),
            str(thing["version"]),
        )
    console.print(table)


def _print_groups(groups: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        _print_json(groups)
        return
    table = Table("Group", "Parent", "Kind", "Description", "Attributes", "Version")
    for group in groups:
        kind = f"dynamic: {group['queryString']}" if group["dynamic"] else "static"
        table.add_row(
            group["thingGroupName"],
            group["parentGroupName"] or "",
            kind,
            group["description"],
            _attribute_text(group["attributes"]),
            str(group["version"]),
        )
    console.print(table)


def _show_one(
    item: dict[str, Any], as_json: bool, print_table: Callable[[list[dict[str, Any]], bool], None]
) -> None:
    """One resource: a JSON object, or a table of one row."""
    if as_json:
        _print_json(item)
    else:
        print_table([item], False)


@thing_app.command("create")
def thing_create(
    name: Annotated[str, typer.Argument(help="Thing name.")],
    thing_type: Annotated[
        str | None, typer.Option("--type", help="Thing type name.", show_default=False)
    ] = None,
    attribute: AttributeOption = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Register a thing."""
    body = _without_none(
        {"thingName": name, "thingTypeName": thing_type, "attributes": _attributes(attribute)}
    )
    with _client(api, data) as client:
        thing = _request(client, "POST", "/things", json=body)
    _show_one(thing, as_json, _print_things)


@thing_app.command("get")
def thing_get(
    name: Annotated[str, typer.Argument(help="Thing name.")],
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Describe a thing and the groups it belongs to."""
    with _client(api, data) as client:
        thing = _request(client, "GET", _path("things", name))
        groups = _request(client, "GET", _path("things", name, "groups"))["data"]
    if as_json:
        _print_json({**thing, "thingGroups": groups})
        return
    _print_things([thing], as_json=False)
    if groups:
        names = ", ".join(
            group["thingGroupName"] + ("" if group["direct"] else " (inherited)") for group in groups
        )
        typer.echo(f"Groups: {names}")


@thing_app.command("list")
def thing_list(
    prefix: Annotated[
        str | None, typer.Option(help="Only names starting with this.", show_default=False)
    ] = None,
    thing_type: Annotated[
        str | None, typer.Option("--type", help="Only this thing type.", show_default=False)
    ] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """List things by name."""
    params = _without_none({"namePrefix": prefix, "thingTypeName": thing_type})
    with _client(api, data) as client:
        things = _list_all(client, "/things", params)
    _print_things(things, as_json)


@thing_app.command("update")
def thing_update(
    name: Annotated[str, typer.Argument(help="Thing name.")],
    attribute: AttributeOption = None,
    merge: Annotated[
        bool,
        typer.Option(help="Merge the attributes (an empty value removes one) instead of replacing them."),
    ] = False,
    thing_type: Annotated[
        str | None, typer.Option("--type", help="New thing type.", show_default=False)
    ] = None,
    remove_type: Annotated[bool, typer.Option(help="Remove the thing type.")] = False,
    expected_version: ExpectedVersionOption = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Change a thing's attributes or type."""
    body = _without_none(
        {
            "attributes": _attributes(attribute) if attribute is not None else None,
            "merge": merge,
            "thingTypeName": thing_type,
            "removeThingType": remove_type,
            "expectedVersion": expected_version,
        }
    )
    with _client(api, data) as client:
        thing = _request(client, "PATCH", _path("things", name), json=body)
    _show_one(thing, as_json, _print_things)


@thing_app.command("delete")
def thing_delete(
    name: Annotated[str, typer.Argument(help="Thing name.")],
    expected_version: ExpectedVersionOption = None,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Delete a thing and its memberships."""
    with _client(api, data) as client:
        _request(
            client,
            "DELETE",
            _path("things", name),
            params=_without_none({"expectedVersion": expected_version}),
        )
    typer.echo(f"Deleted thing {name}")


@group_app.command("create")
def group_create(
    name: Annotated[str, typer.Argument(help="Group name.")],
    parent: Annotated[
        str | None, typer.Option(help="Parent group (static groups).", show_default=False)
    ] = None,
    description: Annotated[str, typer.Option(help="Description.")] = "",
    attribute: AttributeOption = None,
    query: Annotated[
        str | None,
        typer.Option(help="Makes a dynamic group of the things this query selects.", show_default=False),
    ] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Create a static thing group, or with --query a dynamic one."""
    body = _without_none(
        {
            "thingGroupName": name,
            "parentGroupName": parent,
            "description": description,
            "attributes": _attributes(attribute),
            "queryString": query,
        }
    )
    with _client(api, data) as client:
        group = _request(client, "POST", "/thing-groups", json=body)
    _show_one(group, as_json, _print_groups)


@group_app.command("get")
def group_get(
    name: Annotated[str, typer.Argument(help="Group name.")],
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Describe a thing group."""
    with _client(api, data) as client:
        group = _request(client, "GET", _path("thing-groups", name))
    _show_one(group, as_json, _print_groups)


@group_app.command("list")
def group_list(
    parent: Annotated[
        str | None, typer.Option(help="Only the children of this group.", show_default=False)
    ] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """List thing groups by name."""
    with _client(api, data) as client:
        groups = _list_all(client, "/thing-groups", _without_none({"parentGroupName": parent}))
    _print_groups(groups, as_json)


@group_app.command("delete")
def group_delete(
    name: Annotated[str, typer.Argument(help="Group name.")],
    expected_version: ExpectedVersionOption = None,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Delete a thing group that has no child groups."""
    params = _without_none({"expectedVersion": expected_version})
    with _client(api, data) as client:
        _request(client, "DELETE", _path("thing-groups", name), params=params)
    typer.echo(f"Deleted group {name}")


@group_app.command("add-thing")
def group_add_thing(
    group: Annotated[str, typer.Argument(help="Group name.")],
    thing: Annotated[str, typer.Argument(help="Thing name.")],
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Add a thing to a static group."""
    with _client(api, data) as client:
        _request(client, "PUT", _path("thing-groups", group, "things", thing))
    typer.echo(f"Added thing {thing} to group {group}")


@group_app.command("remove-thing")
def group_remove_thing(
    group: Annotated[str, typer.Argument(help="Group name.")],
    thing: Annotated[str, typer.Argument(help="Thing name.")],
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Remove a thing from a static group."""
    with _client(api, data) as client:
        _request(client, "DELETE", _path("thing-groups", group, "things", thing))
    typer.echo(f"Removed thing {thing} from group {group}")


@group_app.command("things")
def group_things(
    group: Annotated[str, typer.Argument(help="Group name.")],
    recursive: Annotated[bool, typer.Option(help="Include the things of child groups.")] = False,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """List the things of a group (a dynamic group's by its query)."""
    with _client(api, data) as client:
        things = _request(
            client, "GET", _path("thing-groups", group, "things"), params={"recursive": recursive}
        )
    _print_things(things["data"], as_json)

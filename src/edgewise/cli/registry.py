"""``edgewise thing ...`` and ``edgewise group ...``: the device registry, through the cloud's REST API.

Every command takes ``--api URL`` and ``--data DIR`` and finds the API and its token as
:mod:`edgewise.cli.api` says. An error the API answers with is printed as ``error: <its message>`` and the
command exits with 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
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

thing_app = typer.Typer(help="Things in the cloud's registry.", no_args_is_help=True)
group_app = typer.Typer(help="Thing groups in the cloud's registry.", no_args_is_help=True)
console = Console()

AttributeOption = Annotated[
    list[str] | None,
    typer.Option("--attribute", "-a", help="NAME=VALUE; repeat for more.", show_default=False),
]
ExpectedVersionOption = Annotated[
    int | None, typer.Option(help="Fail unless the resource is at this version.", show_default=False)
]


def _attributes(values: list[str] | None) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail(f"--attribute: expected NAME=VALUE, got {item!r}")
        attributes[name] = value
    return attributes


def _attribute_text(attributes: dict[str, str]) -> str:
    return ", ".join(f"{name}={value}" for name, value in sorted(attributes.items()))


def _print_things(things: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(things)
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
        print_json(groups)
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
        print_json(item)
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
    body = without_none(
        {"thingName": name, "thingTypeName": thing_type, "attributes": _attributes(attribute)}
    )
    with api_client(api, data) as client:
        thing = request(client, "POST", "/things", json=body)
    _show_one(thing, as_json, _print_things)


@thing_app.command("get")
def thing_get(
    name: Annotated[str, typer.Argument(help="Thing name.")],
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Describe a thing and the groups it belongs to."""
    with api_client(api, data) as client:
        thing = request(client, "GET", api_path("things", name))
        groups = request(client, "GET", api_path("things", name, "groups"))["data"]
    if as_json:
        print_json({**thing, "thingGroups": groups})
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
    params = without_none({"namePrefix": prefix, "thingTypeName": thing_type})
    with api_client(api, data) as client:
        things = list_all(client, "/things", params)
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
    body = without_none(
        {
            "attributes": _attributes(attribute) if attribute is not None else None,
            "merge": merge,
            "thingTypeName": thing_type,
            "removeThingType": remove_type,
            "expectedVersion": expected_version,
        }
    )
    with api_client(api, data) as client:
        thing = request(client, "PATCH", api_path("things", name), json=body)
    _show_one(thing, as_json, _print_things)


@thing_app.command("delete")
def thing_delete(
    name: Annotated[str, typer.Argument(help="Thing name.")],
    expected_version: ExpectedVersionOption = None,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Delete a thing and its memberships."""
    with api_client(api, data) as client:
        request(
            client,
            "DELETE",
            api_path("things", name),
            params=without_none({"expectedVersion": expected_version}),
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
    body = without_none(
        {
            "thingGroupName": name,
            "parentGroupName": parent,
            "description": description,
            "attributes": _attributes(attribute),
            "queryString": query,
        }
    )
    with api_client(api, data) as client:
        group = request(client, "POST", "/thing-groups", json=body)
    _show_one(group, as_json, _print_groups)


@group_app.command("get")
def group_get(
    name: Annotated[str, typer.Argument(help="Group name.")],
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Describe a thing group."""
    with api_client(api, data) as client:
        group = request(client, "GET", api_path("thing-groups", name))
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
    with api_client(api, data) as client:
        groups = list_all(client, "/thing-groups", without_none({"parentGroupName": parent}))
    _print_groups(groups, as_json)


@group_app.command("delete")
def group_delete(
    name: Annotated[str, typer.Argument(help="Group name.")],
    expected_version: ExpectedVersionOption = None,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Delete a thing group that has no child groups."""
    params = without_none({"expectedVersion": expected_version})
    with api_client(api, data) as client:
        request(client, "DELETE", api_path("thing-groups", name), params=params)
    typer.echo(f"Deleted group {name}")


@group_app.command("add-thing")
def group_add_thing(
    group: Annotated[str, typer.Argument(help="Group name.")],
    thing: Annotated[str, typer.Argument(help="Thing name.")],
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Add a thing to a static group."""
    with api_client(api, data) as client:
        request(client, "PUT", api_path("thing-groups", group, "things", thing))
    typer.echo(f"Added thing {thing} to group {group}")


@group_app.command("remove-thing")
def group_remove_thing(
    group: Annotated[str, typer.Argument(help="Group name.")],
    thing: Annotated[str, typer.Argument(help="Thing name.")],
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Remove a thing from a static group."""
    with api_client(api, data) as client:
        request(client, "DELETE", api_path("thing-groups", group, "things", thing))
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
    with api_client(api, data) as client:
        things = request(
            client, "GET", api_path("thing-groups", group, "things"), params={"recursive": recursive}
        )
    _print_things(things["data"], as_json)

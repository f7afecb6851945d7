"""``edgewise core-device ...``: the devices that report their status, their health, presence and components,
and the client devices behind them (``associate``, ``disassociate``, ``client-devices``, ``connectivity``).

Uses the cloud's fleet status and client-device APIs (``/api/v1/core-devices``) with the same ``--api`` /
``--data`` options as the other cloud commands.
"""

from __future__ import annotations

from pathlib import Path
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

app = typer.Typer(
    help="Devices' reported status (health, presence, components) and their client devices.",
    no_args_is_help=True,
)
console = Console()

ThingArgument = Annotated[str, typer.Argument(help="The device's thing name.")]


def _presence(device: dict[str, Any]) -> str:
    connected = device["connectivity"]["connected"]
    return "unknown" if connected is None else ("online" if connected else "offline")


def _print_devices(devices: list[dict[str, Any]]) -> None:
    table = Table("Thing", "Status", "Presence", "Last status", "Version", "Platform")
    for device in devices:
        table.add_row(
            device["coreDeviceThingName"],
            device["status"],
            _presence(device),
            device["lastStatusUpdateTimestamp"] or "",
            device["coreVersion"],
            " ".join(part for part in (device["platform"], device["architecture"]) if part),
        )
    console.print(table)


@app.command("list")
def list_devices(
    status: Annotated[
        str | None, typer.Option(help="Only HEALTHY or UNHEALTHY devices.", show_default=False)
    ] = None,
    online: Annotated[
        bool | None,
        typer.Option(
            "--online/--offline", help="Only connected (or disconnected) devices.", show_default=False
        ),
    ] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """List the devices that have reported, by thing name."""
    params = without_none({"status": status, "connected": None if online is None else str(online).lower()})
    with api_client(api, data) as client:
        devices = list_all(client, "/core-devices", params)
    if as_json:
        print_json(devices)
    else:
        _print_devices(devices)


@app.command("get")
def get_device(
    thing: ThingArgument, as_json: JsonOption = False, api: ApiOption = None, data: DataOption = None
) -> None:
    """One device's status, presence, last deployment and components."""
    with api_client(api, data) as client:
        device = request(client, "GET", api_path("core-devices", thing))
        components = request(client, "GET", api_path("core-devices", thing, "installed-components"))
    if as_json:
        print_json({**device, "installedComponents": components["installedComponents"]})
        return
    _print_devices([device])
    deployment = device["lastDeployment"]
    if deployment:
        details = deployment.get("statusDetails") or {}
        cause = details.get("failureCause")
        typer.echo(
            f"Last deployment: {deployment.get('deploymentId', '?')} {deployment.get('status', '?')}"
            + (f" ({cause})" if cause else "")
        )
    table = Table("Component", "Version", "State", "Root", "Details")
    for component in components["installedComponents"]:
        details = component["lifecycleStatusDetails"] or {}
        table.add_row(
            component["componentName"],
            component["componentVersion"],
            component["lifecycleState"],
            "yes" if component["isRoot"] else "",
            details.get("statusReason", ""),
        )
    console.print(table)


ClientsArgument = Annotated[list[str], typer.Argument(help="The client devices' thing names.")]


def _batch(
    core: str, things: list[str], action: str, as_json: bool, api: str | None, data: Path | None
) -> None:
    body = {"entries": [{"thingName": thing} for thing in things]}
    with api_client(api, data) as client:
        result = request(client, "POST", api_path("core-devices", core, "client-devices", action), json=body)
    errors = result["errorEntries"]
    if as_json:
        print_json(result)
    else:
        failed = {error["thingName"] for error in errors}
        done = [thing for thing in dict.fromkeys(things) if thing not in failed]
        if done:
            typer.echo(
                f"{action.capitalize()}d {', '.join(done)} {'with' if action == 'associate' else 'from'} {core}"
            )
        for error in errors:
            typer.echo(f"{error['thingName']}: {error['code']}: {error['message']}", err=True)
    if errors:
        raise typer.Exit(1)


@app.command("associate")
def associate(
    core: ThingArgument,
    things: ClientsArgument,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Let client devices (things) connect to the core device; exits 1 if one could not be associated."""
    _batch(core, things, "associate", as_json, api, data)


@app.command("disassociate")
def disassociate(
    core: ThingArgument,
    things: ClientsArgument,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Stop client devices from connecting to the core device; exits 1 if one names no thing."""
    _batch(core, things, "disassociate", as_json, api, data)


@app.command("client-devices")
def client_devices(
    core: ThingArgument, as_json: JsonOption = False, api: ApiOption = None, data: DataOption = None
) -> None:
    """The client devices associated with the core device."""
    with api_client(api, data) as client:
        result = request(client, "GET", api_path("core-devices", core, "client-devices"))
    if as_json:
        print_json(result)
        return
    table = Table("Client device", "Associated")
    for device in result["associatedClientDevices"]:
        table.add_row(device["thingName"], device["associationTimestamp"])
    console.print(table)


def _address(value: str) -> dict[str, Any]:
    """``HOST:PORT`` (``[IPv6]:PORT``) as a connectivity entry whose id is the host, as the IP detector names them."""
    host, colon, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not host or not port.isdigit():
        raise typer.BadParameter(f"{value!r} is not HOST:PORT (an IPv6 host in brackets)", param_hint="--set")
    return {"id": host, "hostAddress": host, "portNumber": int(port), "metadata": ""}


@app.command("connectivity")
def connectivity(
    core: ThingArgument,
    addresses: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Replace the connectivity with these HOST:PORT addresses (repeat the option for more).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Where client devices reach the core device's broker; with --set, replace it."""
    with api_client(api, data) as client:
        if addresses:
            body = {"connectivityInfo": [_address(address) for address in addresses]}
            result = request(client, "PUT", api_path("core-devices", core, "connectivity"), json=body)
        else:
            result = request(client, "GET", api_path("core-devices", core, "connectivity"))
    if as_json:
        print_json(result)
        return
    table = Table("Id", "Host", "Port", "Metadata")
    for entry in result["connectivityInfo"]:
        table.add_row(entry["id"], entry["hostAddress"], str(entry["portNumber"]), entry["metadata"])
    console.print(table)
    typer.echo(f"Version {result['version']}")

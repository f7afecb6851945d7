"""``edgewise core-device ...``: the devices that report their status, their health, presence and components.

Reads the cloud's fleet status API (``/api/v1/core-devices``) with the same ``--api`` / ``--data`` options as the
other cloud commands.
"""

from __future__ import annotations

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

app = typer.Typer(help="Devices' reported status: health, presence, components.", no_args_is_help=True)
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

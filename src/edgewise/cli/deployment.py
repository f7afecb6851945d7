"""``edgewise deployment ...``: fleet deployments to things and thing groups, through the cloud's REST API.

``create`` takes the JSON a Greengrass user already has for ``aws greengrassv2 create-deployment
--cli-input-json`` (``--file``), or builds one from ``--target`` and ``--component NAME=VERSION`` options.
``status --watch`` follows the rollout live until every device has finished.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
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

app = typer.Typer(help="Fleet deployments to things and thing groups.", no_args_is_help=True)
console = Console()

DeploymentArgument = Annotated[str, typer.Argument(help="Deployment id.")]
_PENDING = ("QUEUED", "IN_PROGRESS")
_WATCH_INTERVAL = 1.0


def _component_options(components: list[str], merges: list[str]) -> dict[str, Any]:
    specification: dict[str, Any] = {}
    for item in components:
        name, sep, version = item.partition("=")
        if not sep or not name or not version:
            fail(f"--component: expected NAME=VERSION, got {item!r}")
        specification[name] = {"componentVersion": version}
    for item in merges:
        name, sep, document = item.partition("=")
        if not sep or name not in specification:
            fail(f"--merge: expected NAME=JSON for a component given with --component, got {item!r}")
        specification[name]["configurationUpdate"] = {"merge": document}
    return specification


def _request_body(
    file: Path | None, target: str | None, name: str | None, components: list[str], merges: list[str]
) -> dict[str, Any]:
    if file is not None:
        if target or components or merges:
            fail("--file: give the whole deployment in the file, or use --target and --component, not both")
        try:
            body = json.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            fail(f"--file: cannot read {file}: {exc.strerror}")
        except ValueError as exc:
            fail(f"--file: {file} is not JSON: {exc}")
        if not isinstance(body, dict):
            fail(f"--file: {file} must hold a JSON object")
        if name is not None:
            body["deploymentName"] = name
        return body
    if target is None or not components:
        fail("Give --file, or --target and at least one --component NAME=VERSION")
    return without_none(
        {"targetArn": target, "deploymentName": name, "components": _component_options(components, merges)}
    )


@app.command("create")
def create(
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Greengrass CreateDeployment JSON.", show_default=False),
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="Thing or thing group name or ARN.", show_default=False)
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Deployment name.", show_default=False)] = None,
    component: Annotated[
        list[str] | None,
        typer.Option("--component", "-c", help="NAME=VERSION; repeat for more.", show_default=False),
    ] = None,
    merge: Annotated[
        list[str] | None,
        typer.Option(help="NAME=JSON configuration to merge into a component.", show_default=False),
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Follow the rollout until it finishes.")] = False,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Deploy components to a thing or thing group (replaces the target's previous deployment)."""
    body = _request_body(file, target, name, component or [], merge or [])
    with api_client(api, data) as client:
        created = request(client, "POST", "/deployments", json=body)
        if as_json:
            print_json(created)
        else:
            typer.echo(f"Created deployment {created['deploymentId']} (job {created['iotJobId']})")
        if watch:
            _watch(client, created["deploymentId"])


def _print_deployments(deployments: list[dict[str, Any]]) -> None:
    table = Table("Deployment", "Name", "Target", "Revision", "Status", "Devices")
    for deployment in deployments:
        counts = ", ".join(f"{status} {n}" for status, n in sorted(deployment["executionCounts"].items()))
        table.add_row(
            deployment["deploymentId"],
            deployment["deploymentName"],
            deployment["targetArn"].rsplit(":", 1)[-1],
            deployment["revisionId"],
            deployment["deploymentStatus"],
            counts,
        )
    console.print(table)


@app.command("list")
def list_deployments(
    target: Annotated[
        str | None, typer.Option(help="Only this thing's or group's deployments.", show_default=False)
    ] = None,
    latest: Annotated[bool, typer.Option("--latest", help="Only each target's latest deployment.")] = False,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """List deployments, newest first."""
    params = without_none({"targetArn": target, "historyFilter": "LATEST_ONLY" if latest else None})
    with api_client(api, data) as client:
        deployments = list_all(client, "/deployments", params)
    if as_json:
        print_json(deployments)
    else:
        _print_deployments(deployments)


def _devices_table(devices: list[dict[str, Any]]) -> Table:
    table = Table("Thing", "Run", "Status", "Detail", "Cause")
    for device in devices:
        details = device["statusDetails"]
        table.add_row(
            device["thingName"],
            str(device["executionNumber"]),
            device["status"],
            details.get("detailed-deployment-status", ""),
            details.get("deployment-failure-cause", ""),
        )
    return table


@app.command("status")
def status(
    deployment_id: DeploymentArgument,
    watch: Annotated[bool, typer.Option("--watch", help="Follow the rollout until it finishes.")] = False,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """A deployment and each device's progress with it."""
    with api_client(api, data) as client:
        if watch:
            _watch(client, deployment_id)
            return
        deployment = request(client, "GET", api_path("deployments", deployment_id))
        devices = list_all(client, api_path("deployments", deployment_id, "devices"), {})
    if as_json:
        print_json({**deployment, "devices": devices})
        return
    _print_deployments([deployment])
    console.print(_devices_table(devices))


def _watch(client: Any, deployment_id: str) -> None:
    """A live progress bar and device table until no device is queued or in progress."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} devices done"),
    )
    task = progress.add_task(f"Deployment {deployment_id}", total=None)
    with Live(console=console, refresh_per_second=4) as live:
        while True:
            deployment = request(client, "GET", api_path("deployments", deployment_id))
            devices = list_all(client, api_path("deployments", deployment_id, "devices"), {})
            latest = {device["thingName"]: device for device in devices}
            done = sum(1 for device in latest.values() if device["status"] not in _PENDING)
            progress.update(
                task,
                total=len(latest),
                completed=done,
                description=f"Deployment {deployment_id} {deployment['deploymentStatus']}",
            )
            table = Table.grid()
            table.add_row(progress)
            table.add_row(_devices_table(list(latest.values())))
            live.update(table)
            finished = deployment["deploymentStatus"] != "ACTIVE" or (latest and done == len(latest))
            if finished and not any(device["status"] in _PENDING for device in latest.values()):
                return
            time.sleep(_WATCH_INTERVAL)


@app.command("cancel")
def cancel(
    deployment_id: DeploymentArgument,
    as_json: JsonOption = False,
    api: ApiOption = None,
    data: DataOption = None,
) -> None:
    """Cancel a deployment: devices not yet notified never get it; devices applying it finish or roll back."""
    with api_client(api, data) as client:
        deployment = request(client, "POST", api_path("deployments", deployment_id, "cancel"))
    if as_json:
        print_json(deployment)
    else:
        typer.echo(f"Deployment {deployment_id} is {deployment['deploymentStatus']}")

"""``edgewise runtime ...``: start a runtime, and drive a running one over its IPC socket."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from edgewise.cli.connection import call, fail
from edgewise.runtime.metrics import MetricError, load_metrics, metrics_file
from edgewise.runtime.paths import RootPaths

app = typer.Typer(help="Run the edge runtime and manage what runs on it.", no_args_is_help=True)
deployment_app = typer.Typer(help="Local deployments (like greengrass-cli deployment).", no_args_is_help=True)
component_app = typer.Typer(help="Components of a running runtime.", no_args_is_help=True)
app.add_typer(deployment_app, name="deployment")
app.add_typer(component_app, name="component")

console = Console()

RootOption = Annotated[
    Path, typer.Option("--root", envvar="EDGEWISE_ROOT", help="Runtime root directory.", show_default=False)
]
FINAL_STATUSES = {"SUCCEEDED", "FAILED", "CANCELED"}
STATE_STYLES = {"RUNNING": "green", "FINISHED": "cyan", "ERRORED": "yellow", "BROKEN": "red bold"}


@app.command()
def start(
    root: RootOption,
    thing_name: Annotated[str, typer.Option(help="This device's thing name.")] = "edgewise-device",
    run_as: Annotated[str | None, typer.Option(help="user[:group] for components when run as root.")] = None,
    error_threshold: Annotated[int, typer.Option(min=1, help="Errors within the window before BROKEN.")] = 3,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
    config: Annotated[
        Path | None, typer.Option(help="Runtime configuration file (YAML: thingName, cloud connection).")
    ] = None,
    cgroup_root: Annotated[
        Path | None, typer.Option(help="cgroup v2 directory for components with systemResourceLimits.")
    ] = None,
    reboot_command: Annotated[
        str | None, typer.Option(help="Command that reboots the device when a Bootstrap step asks (101).")
    ] = None,
    ipc_handshake_timeout: Annotated[
        float | None, typer.Option(min=0.1, help="Seconds an IPC connection has to authenticate.")
    ] = None,
) -> None:
    """Run the runtime in the foreground until SIGTERM or Ctrl-C."""
    args = [sys.executable, "-m", "edgewise.runtime", "--root", str(root), "--thing-name", thing_name]
    args += ["--error-threshold", str(error_threshold), "--log-level", log_level.upper()]
    if run_as:
        args += ["--run-as", run_as]
    if config is not None:
        args += ["--config", str(config)]
    if cgroup_root is not None:
        args += ["--cgroup-root", str(cgroup_root)]
    if reboot_command is not None:
        args += ["--reboot-command", reboot_command]
    if ipc_handshake_timeout is not None:
        args += ["--ipc-handshake-timeout", str(ipc_handshake_timeout)]
    # Exec, so the long-running process carries none of the CLI's modules.
    os.execv(sys.executable, args)


def _parse_merge(values: list[str]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for item in values:
        name, sep, version = item.partition("=")
        if not sep or not name or not version:
            fail(f"--merge: expected NAME=VERSION, got {item!r}")
        merged[name] = version
    return merged


def _parse_update_config(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            fail(f"--update-config: cannot read {text[1:]}: {exc.strerror}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--update-config: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})")
    if not isinstance(value, dict):
        fail('--update-config: expected an object like {"NAME": {"MERGE": {...}, "RESET": [...]}}')
    return value


def _parse_run_with(values: list[str], option: str = "--run-with") -> dict[str, dict[str, str]]:
    run_with: dict[str, dict[str, str]] = {}
    for item in values:
        name, sep, setting = item.partition(":")
        key, eq, user = setting.partition("=")
        if not sep or not eq or key != "posixUser" or not name:
            fail(f"{option}: expected NAME:posixUser=USER[:GROUP], got {item!r}")
        run_with[name] = {"posixUser": user}
    return run_with


def _directory(path: Path | None, option: str) -> str | None:
    if path is None:
        return None
    if not path.is_dir():
        fail(f"{option}: {path} is not a directory")
    return str(path.resolve())


def _status_line(deployment: dict[str, Any]) -> str:
    details = deployment.get("deploymentStatusDetails") or {}
    line = f"{deployment['deploymentId']}  {deployment['status']}"
    if details.get("detailedDeploymentStatus"):
        line += f" ({details['detailedDeploymentStatus']})"
    if details.get("deploymentFailureCause"):
        line += f"\n  reason: {details['deploymentFailureCause']}"
    return line


def _wait_for(root: Path, deployment_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with console.status(f"Deployment {deployment_id} in progress...") as status:
        while True:
            deployment: dict[str, Any] = call(
                root, "GetLocalDeploymentStatus", {"deploymentId": deployment_id}
            )["deployment"]
            status.update(f"Deployment {deployment_id}: {deployment['status']}")
            if deployment["status"] in FINAL_STATUSES:
                return deployment
            if time.monotonic() > deadline:
                fail(f"Deployment {deployment_id} still {deployment['status']} after {timeout:.0f} s")
            time.sleep(0.2)


@deployment_app.command("create")
def deployment_create(
    root: RootOption,
    recipe_dir: Annotated[Path | None, typer.Option(help="Directory of recipes (YAML or JSON).")] = None,
    artifact_dir: Annotated[
        Path | None, typer.Option(help="Artifacts as DIR/<name>/<version>/<file>.")
    ] = None,
    merge: Annotated[list[str] | None, typer.Option(help="NAME=VERSION to deploy (repeatable).")] = None,
    remove: Annotated[list[str] | None, typer.Option(help="NAME to remove (repeatable).")] = None,
    update_config: Annotated[
        str | None, typer.Option(help='JSON or @FILE: {"NAME": {"MERGE": {...}, "RESET": ["/ptr"]}}.')
    ] = None,
    group_id: Annotated[str | None, typer.Option(help="Deployment group (default LOCAL_DEPLOYMENT).")] = None,
    run_with: Annotated[
        list[str] | None, typer.Option(help="NAME:posixUser=USER[:GROUP] (repeatable).")
    ] = None,
    failure_policy: Annotated[str, typer.Option(help="ROLLBACK or DO_NOTHING.")] = "ROLLBACK",
    notify_components: Annotated[
        bool,
        typer.Option(
            "--notify-components",
            help="Let components subscribed to updates defer this one (NOTIFY_COMPONENTS).",
        ),
    ] = False,
    update_timeout: Annotated[
        float | None, typer.Option(min=0, help="Seconds components may defer the update (default 60).")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the result; exit 1 if it fails.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 900.0,
) -> None:
    """Deploy components from local recipe and artifact directories."""
    request: dict[str, Any] = {
        "rootComponentVersionsToAdd": _parse_merge(merge or []),
        "rootComponentsToRemove": list(remove or []),
        "componentToConfiguration": _parse_update_config(update_config),
        "componentToRunWithInfo": _parse_run_with(run_with or []),
        "failureHandlingPolicy": failure_policy.upper(),
    }
    update_policy: dict[str, Any] = {}
    if notify_components:
        update_policy["action"] = "NOTIFY_COMPONENTS"
    if update_timeout is not None:
        update_policy["timeoutInSeconds"] = update_timeout
    if update_policy:
        request["componentUpdatePolicy"] = update_policy
    if group_id:
        request["groupName"] = group_id
    if (recipes := _directory(recipe_dir, "--recipe-dir")) is not None:
        request["recipeDirectoryPath"] = recipes
    if (artifacts := _directory(artifact_dir, "--artifact-dir")) is not None:
        request["artifactsDirectoryPath"] = artifacts
    deployment_id = call(root, "CreateLocalDeployment", request)["deploymentId"]
    if not wait:
        console.print(f"Deployment {deployment_id} queued", highlight=False)
        return
    deployment = _wait_for(root, deployment_id, timeout)
    console.print(_status_line(deployment), highlight=False)
    if deployment["status"] != "SUCCEEDED":
        raise typer.Exit(1)


@deployment_app.command("status")
def deployment_status(root: RootOption, deployment_id: str) -> None:
    """Show one deployment's status and failure reason."""
    console.print(
        _status_line(call(root, "GetLocalDeploymentStatus", {"deploymentId": deployment_id})["deployment"]),
        highlight=False,
    )


@deployment_app.command("list")
def deployment_list(root: RootOption) -> None:
    """List local deployments, oldest first."""
    for deployment in call(root, "ListLocalDeployments")["localDeployments"]:
        console.print(_status_line(deployment), highlight=False)


@deployment_app.command("cancel")
def deployment_cancel(root: RootOption, deployment_id: str) -> None:
    """Cancel a deployment that has not started activating."""
    console.print(
        call(root, "CancelLocalDeployment", {"deploymentId": deployment_id})["message"], highlight=False
    )


def components_table(components: list[dict[str, Any]]) -> Table:
    """A table of components with their states, coloured by state."""
    table = Table("Component", "Version", "State")
    for component in components:
        state = component["state"]
        style = STATE_STYLES.get(state, "")
        version = component["version"]
        if "requestedVersion" in component:
            version += f" (requested {component['requestedVersion']})"
        table.add_row(component["componentName"], version, f"[{style}]{state}[/]" if style else state)
    return table


@component_app.command("list")
def component_list(
    root: RootOption, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """List components with their versions and states."""
    components = call(root, "ListComponents")["components"]
    if as_json:
        print(json.dumps(components, indent=2))
    else:
        console.print(components_table(components))


@component_app.command("details")
def component_details(root: RootOption, name: str) -> None:
    """Show one component's version, state and configuration."""
    print(
        json.dumps(call(root, "GetComponentDetails", {"componentName": name})["componentDetails"], indent=2)
    )


@component_app.command("restart")
def component_restart(root: RootOption, name: str) -> None:
    """Restart a component."""
    console.print(call(root, "RestartComponent", {"componentName": name})["message"], highlight=False)


@component_app.command("stop")
def component_stop(root: RootOption, name: str) -> None:
    """Stop a component (it stays stopped until restarted or redeployed)."""
    console.print(call(root, "StopComponent", {"componentName": name})["message"], highlight=False)


@app.command()
def logs(
    root: RootOption,
    name: Annotated[str, typer.Argument(help="Component name, or 'edgewise' for the runtime's own log.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
) -> None:
    """Print a component's log."""
    paths = RootPaths.at(root)
    path = paths.runtime_log if name == "edgewise" else paths.component_log(name)
    if "/" in name or name.startswith("."):
        fail(f"NAME: {name!r} is not a component name")
    try:
        handle = path.open("r", encoding="utf-8", errors="replace")
    except FileNotFoundError:
        fail(f"No log for {name!r} at {path}")
    with handle:
        sys.stdout.write(handle.read())
        sys.stdout.flush()
        while follow:
            line = handle.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                time.sleep(0.25)


@app.command()
def metrics(
    root: RootOption, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """Show the metrics components reported with PutComponentMetric since the runtime started."""
    path = metrics_file(RootPaths.at(root).root)
    try:
        summaries = load_metrics(path)
    except (MetricError, OSError) as exc:
        fail(f"Cannot read the metrics at {path}: {exc}")
    if as_json:
        print(json.dumps([summary.to_json() for summary in summaries], indent=2))
        return
    if not summaries:
        console.print(f"No metrics reported (looked in {path})", highlight=False)
        return
    table = Table("Component", "Metric", "Unit", "Latest", "Count", "Min", "Mean", "Max")
    for summary in summaries:
        table.add_row(
            summary.component,
            summary.name,
            summary.unit.value,
            f"{summary.latest:g}",
            str(summary.count),
            f"{summary.minimum:g}",
            f"{summary.mean:g}",
            f"{summary.maximum:g}",
        )
    console.print(table)

"""What the fleet demo shows, in one Rich view: the rollout, each device's components, one Aggregator's log.

:func:`observe` reads the cloud's API (the deployment, each device's execution, the fleet status the devices
report) and the devices' own log files; :func:`render` turns that into the live view. A fleet has converged
when every device finished the deployment successfully and reports every demo component RUNNING.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Column, Table
from rich.text import Text

from edgewise.cli.api import api_path, list_all, request, send
from edgewise.cli.runtime import STATE_STYLES
from edgewise.runtime.paths import RootPaths

if TYPE_CHECKING:
    import httpx

#: The components that ship with Edgewise, as both demos deploy them.
DEMO_COMPONENTS = {
    "com.edgewise.demo.SensorSimulator": "1.0.0",
    "com.edgewise.demo.Aggregator": "1.0.0",
    "com.edgewise.demo.Flaky": "1.0.0",
}
AGGREGATOR = "com.edgewise.demo.Aggregator"
FLAKY = "com.edgewise.demo.Flaky"
#: What the Flaky component prints to stderr each time it crashes on purpose.
FLAKY_CRASH = "simulated failure!"
_PENDING = ("QUEUED", "IN_PROGRESS")
_TAIL_LINES = 5
#: A crash this many seconds old or younger is highlighted.
_RECENT_CRASH = 5.0


@dataclass(frozen=True)
class DeviceView:
    """One device as the cloud and its runtime's files show it."""

    thing: str
    #: The device's latest execution of the deployment; ``None`` until the rollout reaches it.
    execution: dict[str, Any] | None
    #: ``online``, ``offline`` or ``unknown`` (not reported yet).
    presence: str
    #: ``HEALTHY``/``UNHEALTHY`` as last reported, ``""`` before the first report.
    health: str
    #: Component name → lifecycle state, as last reported to the cloud.
    components: dict[str, str]
    #: How often Flaky crashed (each crash is followed by a restart).
    flaky_crashes: int
    #: Seconds since Flaky's last crash; ``None`` before the first.
    flaky_crash_age: float | None

    @property
    def status(self) -> str:
        return "" if self.execution is None else str(self.execution["status"])

    @property
    def details(self) -> dict[str, str]:
        return {} if self.execution is None else dict(self.execution["statusDetails"])


@dataclass(frozen=True)
class FleetView:
    """The whole demo fleet at one moment."""

    deployment: dict[str, Any]
    devices: list[DeviceView]
    #: The last lines of the first device's Aggregator log.
    aggregator_tail: str
    elapsed: float

    def converged(self, components: list[str]) -> bool:
        """Every device succeeded and reports every one of ``components`` RUNNING."""
        return all(
            device.status == "SUCCEEDED"
            and all(device.components.get(name) == "RUNNING" for name in components)
            for device in self.devices
        )

    def failure(self) -> str | None:
        """Why the rollout cannot converge any more, if it cannot."""
        for device in self.devices:
            if device.execution is not None and device.status not in (*_PENDING, "SUCCEEDED"):
                cause = device.details.get("deployment-failure-cause") or device.details.get(
                    "detailed-deployment-status", ""
                )
                return f"{device.thing}: {device.status} {cause}".rstrip()
        status = self.deployment["deploymentStatus"]
        if status not in ("ACTIVE", "COMPLETED"):
            return f"the deployment is {status}"
        return None


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of the file at ``path`` (empty while there is none)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def flaky_crashes(path: Path, *, now: float) -> tuple[int, float | None]:
    """How often Flaky crashed, from its log at ``path``, and how many seconds before ``now`` (epoch seconds)
    the last time (``None`` when unknown)."""
    try:
        lines = [
            line
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
            if FLAKY_CRASH in line
        ]
    except FileNotFoundError:
        return 0, None
    if not lines:
        return 0, None
    # Log lines start with the UTC time, e.g. 2026-11-25T19:00:00.123Z.
    try:
        last = datetime.datetime.fromisoformat(lines[-1].split(" ", 1)[0]).timestamp()
    except ValueError:
        return len(lines), None
    return len(lines), max(0.0, now - last)


def observe(
    client: httpx.Client, deployment_id: str, devices: dict[str, Path], *, started: float
) -> FleetView:
    """The fleet now, from the cloud's API and from each device's runtime root (``devices``: thing → root)."""
    deployment = request(client, "GET", api_path("deployments", deployment_id))
    executions = {
        execution["thingName"]: execution
        for execution in list_all(client, api_path("deployments", deployment_id, "devices"), {})
    }
    reported = {device["coreDeviceThingName"]: device for device in list_all(client, "/core-devices", {})}
    views = []
    for thing, root in devices.items():
        paths = RootPaths.at(root)
        components: dict[str, str] = {}
        presence, health = "unknown", ""
        if thing in reported:
            connected = reported[thing]["connectivity"]["connected"]
            presence = "unknown" if connected is None else ("online" if connected else "offline")
            health = reported[thing]["status"]
            answer = send(
                client, "GET", api_path("core-devices", thing, "installed-components"), allow=(404,)
            )
            if answer.status_code == 200:
                components = {
                    item["componentName"]: item["lifecycleState"]
                    for item in answer.json()["installedComponents"]
                }
        crashes, age = flaky_crashes(paths.component_log(FLAKY), now=time.time())
        views.append(DeviceView(thing, executions.get(thing), presence, health, components, crashes, age))
    first = RootPaths.at(next(iter(devices.values())))
    aggregator = tail(first.component_log(AGGREGATOR), _TAIL_LINES)
    return FleetView(deployment, views, aggregator, time.monotonic() - started)


def _styled(state: str) -> str:
    style = STATE_STYLES.get(state, "")
    return f"[{style}]{state}[/]" if style else state


def _table(*columns: Column | str) -> Table:
    return Table(*columns, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)


def _rollout(view: FleetView, group: str) -> Panel:
    done = sum(1 for device in view.devices if device.execution is not None and device.status not in _PENDING)
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=len(view.devices), completed=done, width=40),
        f"{done}/{len(view.devices)} devices done",
    )
    table = _table(Column("Thing", no_wrap=True), "Execution", "Detailed status", "Failure cause")
    for device in view.devices:
        status = _styled(device.status) if device.execution is not None else "[dim]waiting for its stage[/]"
        table.add_row(
            device.thing,
            status,
            device.details.get("detailed-deployment-status", ""),
            device.details.get("deployment-failure-cause", ""),
        )
    deployment = view.deployment
    title = (
        f"Rollout of deployment {deployment['deploymentId'][:8]} to thing group {group}: "
        f"{deployment['deploymentStatus']}"
    )
    return Panel(Group(bar, table), title=title, title_align="left")


def _crash_text(device: DeviceView) -> str:
    if device.flaky_crash_age is None:
        return str(device.flaky_crashes)
    text = f"{device.flaky_crashes}, {device.flaky_crash_age:.0f} s ago"
    return f"[yellow]{text}[/]" if device.flaky_crash_age < _RECENT_CRASH else text


def _fleet(view: FleetView, components: list[str]) -> Panel:
    short = [name.rsplit(".", 1)[-1] for name in components]
    table = _table(
        Column("Thing", no_wrap=True), "Presence", "Health", *short, Column("Crashes", no_wrap=True)
    )
    table.caption = "Crashes: Flaky crashes on purpose; the runtime restarts it each time"
    for device in view.devices:
        states = [_styled(device.components.get(name, "")) for name in components]
        presence = {"online": "[green]online[/]", "offline": "[red]offline[/]"}.get(
            device.presence, "[dim]unknown[/]"
        )
        health = {"HEALTHY": "[green]HEALTHY[/]", "UNHEALTHY": "[red]UNHEALTHY[/]"}.get(
            device.health, device.health
        )
        table.add_row(device.thing, presence, health, *states, _crash_text(device))
    return Panel(table, title="Devices: components as they report them to the cloud", title_align="left")


def render(view: FleetView, *, group: str, components: list[str], header: list[str]) -> RenderableType:
    """The live view: ``header``, the rollout, the devices' components, the first device's Aggregator log."""
    first = view.devices[0].thing
    log = Panel(
        Text(view.aggregator_tail or "(nothing yet)"),
        title=f"{first}: {AGGREGATOR} log",
        title_align="left",
    )
    lines = Text("\n".join(header), style="bold")
    return Group(lines, _rollout(view, group), _fleet(view, components), log)

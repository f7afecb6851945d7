"""``edgewise demo``: the whole story on this machine, or with ``--runtime-only`` one runtime.

By default it runs a cloud and a fleet of simulated hubs provisioned by claim, trains an anomaly model on their
telemetry, deploys it to them and shows the anomalies it finds (:mod:`edgewise.cli.demo_story`); that needs the
``cloud``, ``ml`` and ``inference`` extras (``edgewise[all]``) and Mosquitto. ``--runtime-only`` needs neither:
it starts one runtime and deploys the components that ship with Edgewise locally (one with configuration, one
depending on another, one that crashes now and then). Either shows everything live until Ctrl-C, which stops
every process the demo started. For scripts, ``--exit-after-anomalies N`` ends the story once the model has
detected N of the faults the hubs injected (exit 0), or exits 1 after ``--timeout``; ``--runtime-only
--exit-after-converged`` ends once every component runs::

    edgewise demo --root /tmp/demo --hubs 2 --fast --exit-after-anomalies 3 && echo "the demo works"
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from edgewise.cli.api import TOKEN_VARIABLE
from edgewise.cli.connection import call, fail
from edgewise.cli.demo_story import FAST, NORMAL, StoryDemo
from edgewise.cli.demo_supervisor import DemoSupervisor, interrupts_stop_the_demo
from edgewise.cli.runtime import FINAL_STATUSES, components_table
from edgewise.components import ARTIFACTS_DIR, RECIPES_DIR
from edgewise.runtime.paths import RootPaths

console = Console()

#: Modules of the extras the story needs: the cloud (``edgewise cloud up``), training (ml), inference.
CLOUD_MODULES = ("fastapi", "uvicorn", "sqlalchemy", "alembic", "httpx", "flaml", "sklearn", "onnxruntime")
#: The components that ship with Edgewise, as ``--runtime-only`` deploys them.
DEMO_COMPONENTS = {
    "com.edgewise.demo.SensorSimulator": "1.0.0",
    "com.edgewise.demo.Aggregator": "1.0.0",
    "com.edgewise.demo.Flaky": "1.0.0",
}
AGGREGATOR = "com.edgewise.demo.Aggregator"
FLAKY = "com.edgewise.demo.Flaky"
_START_TIMEOUT = 30.0
#: How long ``--exit-after-converged`` waits for the runtime before it gives up.
_CONVERGE_TIMEOUT = 120.0
_REFRESH = 1.0


def _check_cloud_installed() -> None:
    missing = [name for name in CLOUD_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        fail(
            f"The demo runs the cloud, trains a model and runs it on the hubs, which needs the cloud, ml and "
            f"inference extras (missing: {', '.join(missing)}): pip install 'edgewise[all]' (or run `make demo`). "
            "`edgewise demo --runtime-only` runs one runtime without them."
        )
    from edgewise.cloud.broker import MOSQUITTO

    if not MOSQUITTO.is_file():
        fail(
            f"The demo runs the cloud, which needs Mosquitto 2 at {MOSQUITTO}: "
            "apt-get install mosquitto (or run `make demo`)"
        )


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of the file at ``path`` (empty while there is none)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def demo(
    root: Annotated[
        Path, typer.Option(help="Folder for everything the demo makes (a later run reuses it).")
    ] = Path(".demo"),
    hubs: Annotated[int, typer.Option("--hubs", min=1, max=20, help="How many simulated hubs.")] = 3,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast", help="The smallest pace that works: readings every 0.1 s, less history, a 2 s search."
        ),
    ] = False,
    runtime_only: Annotated[
        bool, typer.Option("--runtime-only", help="One runtime with local deployments; no cloud.")
    ] = False,
    duration: Annotated[
        float | None, typer.Option(help="Stop by itself after this many seconds.", show_default=False)
    ] = None,
    exit_after_anomalies: Annotated[
        int | None,
        typer.Option(
            "--exit-after-anomalies",
            min=1,
            help="For scripts: stop once the model deployed to the hubs has detected this many of the faults "
            "they injected (exit 0); exit 1 when it has not within --timeout.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1, help="With --exit-after-anomalies: seconds to give the whole story.")
    ] = 600.0,
    exit_after_converged: Annotated[
        bool,
        typer.Option(
            "--exit-after-converged",
            help="With --runtime-only, for scripts: stop as soon as every component runs (exit 0), or exit 1 "
            "when it cannot.",
        ),
    ] = False,
) -> None:
    """Run a cloud and simulated hubs, train an anomaly model on their data, deploy it to them and show what it
    finds, live (or --runtime-only: one runtime)."""
    if runtime_only and exit_after_anomalies is not None:
        fail("--exit-after-anomalies: the runtime-only demo has no model; use --exit-after-converged")
    if not runtime_only and exit_after_converged:
        fail("--exit-after-converged: only with --runtime-only; the story ends with --exit-after-anomalies N")
    if not runtime_only:
        _check_cloud_installed()
    supervisor = DemoSupervisor(root, console)
    supervisor.prepare()
    interrupted = False
    with interrupts_stop_the_demo():
        try:
            if runtime_only:
                _run_runtime_only(supervisor, duration=duration, exit_after_converged=exit_after_converged)
            else:
                # The demo's own cloud, not one that EDGEWISE_API_TOKEN may be meant for.
                os.environ.pop(TOKEN_VARIABLE, None)
                story = StoryDemo(supervisor, console, hubs=hubs, pace=FAST if fast else NORMAL)
                try:
                    story.run(duration=duration, exit_after_anomalies=exit_after_anomalies, timeout=timeout)
                finally:
                    story.close()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            # The live view may leave the cursor at the end of its last line.
            console.print()
            if interrupted:
                console.print("Interrupted: stopping every process the demo started")
            supervisor.stop()
            console.print(
                f"Stopped. Logs: {supervisor.logs_dir} and each runtime's logs/ folder", highlight=False
            )


def _view(paths: RootPaths, components: list[dict[str, Any]], deployment: dict[str, Any]) -> Group:
    logs = [
        Panel(Text(tail(paths.component_log(name), 4)), title=name, title_align="left")
        for name in (AGGREGATOR, FLAKY)
    ]
    header = Text(f"Deployment {deployment['deploymentId'][:8]}: {deployment['status']}   (Ctrl-C stops it)")
    return Group(header, components_table(components), *logs)


def _run_runtime_only(
    supervisor: DemoSupervisor, *, duration: float | None, exit_after_converged: bool
) -> None:
    paths = RootPaths.at(supervisor.root / "runtime")
    paths.root.mkdir(parents=True)
    console.print(f"Starting the Edgewise runtime in {paths.root}", highlight=False)
    command = [
        sys.executable,
        "-m",
        "edgewise.runtime",
        "--root",
        str(paths.root),
        "--thing-name",
        "demo-device",
    ]
    supervisor.start("runtime", command)
    deadline = time.monotonic() + _START_TIMEOUT
    while not (paths.ipc_socket.exists() and paths.cli_token_file.exists()):
        supervisor.check_children()
        if time.monotonic() > deadline:
            fail(f"The runtime did not start within {_START_TIMEOUT:.0f} s; see {paths.runtime_log}")
        time.sleep(0.1)
    request = {
        "recipeDirectoryPath": str(RECIPES_DIR),
        "artifactsDirectoryPath": str(ARTIFACTS_DIR),
        "rootComponentVersionsToAdd": DEMO_COMPONENTS,
        "componentToConfiguration": {
            "com.edgewise.demo.SensorSimulator": {"MERGE": {"intervalSeconds": "1", "sensorId": "greenhouse"}}
        },
    }
    deployment_id = call(paths.root, "CreateLocalDeployment", request)["deploymentId"]
    console.print(f"Deploying {', '.join(DEMO_COMPONENTS)} (deployment {deployment_id})", highlight=False)
    console.print(f"Try: edgewise runtime component list --root {paths.root}", highlight=False)
    started = time.monotonic()
    stop_at = started + duration if duration is not None else None
    with Live(console=console, refresh_per_second=2) as live:
        while stop_at is None or time.monotonic() < stop_at:
            supervisor.check_children()
            deployment = call(paths.root, "GetLocalDeploymentStatus", {"deploymentId": deployment_id})[
                "deployment"
            ]
            components = call(paths.root, "ListComponents")["components"]
            live.update(_view(paths, components, deployment))
            states = {component["componentName"]: component["state"] for component in components}
            if exit_after_converged:
                if deployment["status"] == "SUCCEEDED" and all(
                    states.get(name) == "RUNNING" for name in DEMO_COMPONENTS
                ):
                    live.console.print(
                        f"[green]Converged after {time.monotonic() - started:.0f} s[/]: every component runs"
                    )
                    return
                if deployment["status"] in FINAL_STATUSES and deployment["status"] != "SUCCEEDED":
                    cause = (deployment.get("deploymentStatusDetails") or {}).get(
                        "deploymentFailureCause", ""
                    )
                    fail(f"Deployment {deployment_id} ended {deployment['status']}: {cause}")
                if time.monotonic() - started > _CONVERGE_TIMEOUT:
                    fail(f"The runtime did not converge within {_CONVERGE_TIMEOUT:.0f} s")
            time.sleep(_REFRESH)

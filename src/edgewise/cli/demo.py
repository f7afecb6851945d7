"""``edgewise demo``: a runtime in a local folder running the components that ship with Edgewise.

It starts the runtime, deploys three components (one with configuration, one depending on another, one
that crashes now and then), and shows their states live until Ctrl-C, which stops the runtime cleanly.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from edgewise.cli.connection import call, fail
from edgewise.cli.runtime import FINAL_STATUSES, components_table
from edgewise.components import ARTIFACTS_DIR, RECIPES_DIR
from edgewise.runtime.paths import RootPaths

console = Console()

DEMO_COMPONENTS = {
    "com.edgewise.demo.SensorSimulator": "1.0.0",
    "com.edgewise.demo.Aggregator": "1.0.0",
    "com.edgewise.demo.Flaky": "1.0.0",
}


def _wait_for_runtime(paths: RootPaths, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not (paths.ipc_socket.exists() and paths.cli_token_file.exists()):
        if process.poll() is not None:
            fail(f"The runtime exited with code {process.returncode}; see {paths.runtime_log}")
        if time.monotonic() > deadline:
            fail(f"The runtime did not start within {timeout:.0f} s; see {paths.runtime_log}")
        time.sleep(0.1)


def _tail(path: Path, lines: int) -> str:
    try:
        return "".join(path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-lines:])
    except FileNotFoundError:
        return ""


def _view(root: Path, paths: RootPaths, deployment: dict[str, Any]) -> Group:
    components = call(root, "ListComponents")["components"]
    logs = [
        Panel(Text(_tail(paths.component_log(name), 4).rstrip()), title=name, title_align="left")
        for name in ("com.edgewise.demo.Aggregator", "com.edgewise.demo.Flaky")
    ]
    header = Text(f"Deployment {deployment['deploymentId'][:8]}: {deployment['status']}   (Ctrl-C to stop)")
    return Group(header, components_table(components), *logs)


def demo(
    root: Annotated[Path, typer.Option(help="Folder for the demo runtime.")] = Path(".demo"),
    duration: Annotated[float | None, typer.Option(help="Stop by itself after this many seconds.")] = None,
) -> None:
    """Run a runtime with the demo components and show them live."""
    paths = RootPaths.at(root)
    paths.root.mkdir(parents=True, exist_ok=True)
    console.print(f"Starting the Edgewise runtime in {paths.root}")
    runtime = subprocess.Popen(
        [sys.executable, "-m", "edgewise.runtime", "--root", str(paths.root), "--thing-name", "demo-device"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_runtime(paths, runtime)
        request = {
            "recipeDirectoryPath": str(RECIPES_DIR),
            "artifactsDirectoryPath": str(ARTIFACTS_DIR),
            "rootComponentVersionsToAdd": DEMO_COMPONENTS,
            "componentToConfiguration": {
                "com.edgewise.demo.SensorSimulator": {
                    "MERGE": {"intervalSeconds": "1", "sensorId": "greenhouse"}
                }
            },
        }
        deployment_id = call(root, "CreateLocalDeployment", request)["deploymentId"]
        console.print(f"Deploying {', '.join(DEMO_COMPONENTS)} (deployment {deployment_id})")
        console.print(f"Try: edgewise runtime component list --root {root}")
        deadline = time.monotonic() + duration if duration is not None else None
        with Live(console=console, refresh_per_second=2) as live:
            while deadline is None or time.monotonic() < deadline:
                deployment = call(root, "GetLocalDeploymentStatus", {"deploymentId": deployment_id})[
                    "deployment"
                ]
                live.update(_view(root, paths, deployment))
                if runtime.poll() is not None:
                    fail(f"The runtime exited with code {runtime.returncode}; see {paths.runtime_log}")
                time.sleep(1.0)
        if deployment["status"] in FINAL_STATUSES and deployment["status"] != "SUCCEEDED":
            console.print(json.dumps(deployment, indent=2))
    except KeyboardInterrupt:
        console.print("Ctrl-C: stopping")
    finally:
        if runtime.poll() is None:
            runtime.send_signal(signal.SIGTERM)
            try:
                runtime.wait(timeout=60)
            except subprocess.TimeoutExpired:
                runtime.kill()
                runtime.wait()
        console.print(f"Runtime stopped (exit code {runtime.returncode}). Logs: {paths.logs_dir}")

"""``edgewise demo``: a cloud, three devices and a staged fleet deployment on this machine, shown live.

The demo does what an operator would, with the same code as the commands:

1. ``edgewise cloud up --data ROOT/cloud`` as a child process, on free ports;
2. ``edgewise device bootstrap --thing greenhouse-N`` for three devices, each added to the thing group
   ``greenhouses`` and started as ``python -m edgewise.runtime --root ROOT/devices/<thing> --config ...``;
3. ``edgewise component publish`` for the three components that ship with Edgewise;
4. ``edgewise deployment create`` to the group, rolled out one device first, the rate doubling with each
   device that succeeds (an exponential rollout);

then it shows the rollout, the components each device reports to the cloud and one device's Aggregator log
until Ctrl-C (or, with ``--exit-after-converged``, until every device runs the deployment).
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live

from edgewise.cli import component, device
from edgewise.cli.api import api_client, api_path, request
from edgewise.cli.connection import fail
from edgewise.cli.demo_supervisor import DemoSupervisor
from edgewise.cli.demo_view import DEMO_COMPONENTS, observe, render
from edgewise.components import ARTIFACTS_DIR, RECIPES_DIR

if TYPE_CHECKING:
    import httpx

THINGS = ("greenhouse-1", "greenhouse-2", "greenhouse-3")
GROUP = "greenhouses"
#: One device first; each success doubles the rate, so the stages are 1, 1, 2, 4, ... devices.
ROLLOUT = {
    "exponentialRate": {
        "baseRatePerMinute": 1,
        "incrementFactor": 2,
        "rateIncreaseCriteria": {"numberOfSucceededThings": 1},
    }
}
ABORT = {
    "criteriaList": [
        {
            "failureType": "FAILED",
            "action": "CANCEL",
            "thresholdPercentage": 50,
            "minNumberOfExecutedThings": 1,
        }
    ]
}
#: How long ``--exit-after-converged`` waits for the fleet before it gives up.
CONVERGE_TIMEOUT = 180.0
_START_TIMEOUT = 60.0
_REFRESH = 1.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _CloudOutput:
    """Reads ``cloud up``'s stdout: keeps its lines (never the admin token's) and notes when it is ready."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            if line.startswith("Admin API token"):
                continue
            self.lines.append(line)
            if line.startswith("Ready"):
                self.ready.set()

    def join(self) -> None:
        self._thread.join(timeout=5)


class FleetDemo:
    """One run of the fleet demo in a prepared demo folder."""

    def __init__(self, supervisor: DemoSupervisor, console: Console) -> None:
        self.supervisor = supervisor
        self.console = console
        self.cloud_dir = supervisor.root / "cloud"
        self.api_url = ""
        self.mqtt_port = 0
        self._output: _CloudOutput | None = None

    def run(self, *, duration: float | None, exit_after_converged: bool) -> None:
        """Set everything up, then show it live; returns when ``duration`` is over or, with
        ``exit_after_converged``, once the fleet converged. Exits 1 when the fleet cannot converge."""
        self._start_cloud()
        self._enroll_devices()
        self._publish_components()
        deployment_id = self._deploy()
        self._show(deployment_id, duration=duration, exit_after_converged=exit_after_converged)

    def close(self) -> None:
        if self._output is not None:
            self._output.join()

    def _start_cloud(self) -> None:
        api_port, self.mqtt_port, data_plane_port = _free_port(), _free_port(), _free_port()
        command = [
            sys.executable,
            "-m",
            "edgewise.cli",
            "cloud",
            "up",
            "--data",
            str(self.cloud_dir),
            "--api-port",
            str(api_port),
            "--mqtt-port",
            str(self.mqtt_port),
            "--data-plane-host",
            "127.0.0.1",
            "--data-plane-port",
            str(data_plane_port),
            "--https-publish-port",
            str(_free_port()),
        ]
        with self.console.status(f"Starting the cloud (edgewise cloud up --data {self.cloud_dir})"):
            # The cloud stops after the runtimes, so they can still report while they stop.
            process = self.supervisor.start("cloud", command, stop_order=1, stdout=subprocess.PIPE)
            self._output = _CloudOutput(process)
            deadline = time.monotonic() + _START_TIMEOUT
            while not self._output.ready.wait(0.1):
                self.supervisor.check_children()
                if time.monotonic() > deadline:
                    log = self.supervisor.log_file("cloud")
                    fail(f"The cloud did not start within {_START_TIMEOUT:.0f} s; see {log}")
        endpoints = json.loads((self.cloud_dir / "cloud.json").read_text(encoding="utf-8"))
        self.api_url = str(endpoints["apiUrl"])
        for line in self._output.lines:
            self.console.print(f"  {line}", highlight=False, soft_wrap=True)

    def _client(self) -> contextlib.AbstractContextManager[httpx.Client]:
        return api_client(self.api_url, self.cloud_dir)

    def device_root(self, thing: str) -> Path:
        return self.supervisor.root / "devices" / thing

    def _enroll_devices(self) -> None:
        with self._client() as client:
            request(client, "POST", "/thing-groups", json={"thingGroupName": GROUP})
        for thing in THINGS:
            identity = self.device_root(thing) / "identity"
            # The bootstrap's own lines (files written, how to start) go to a log: the demo starts the device.
            with (
                (self.supervisor.logs_dir / "bootstrap.log").open("a", encoding="utf-8") as log,
                contextlib.redirect_stdout(log),
            ):
                device.bootstrap(
                    out=identity,
                    thing=thing,
                    endpoint=f"127.0.0.1:{self.mqtt_port}",
                    api=self.api_url,
                    data=self.cloud_dir,
                )
            with self._client() as client:
                request(client, "PUT", api_path("thing-groups", GROUP, "things", thing))
            command = [
                sys.executable,
                "-m",
                "edgewise.runtime",
                "--root",
                str(self.device_root(thing)),
                "--config",
                str(identity / "edgewise.yaml"),
            ]
            self.supervisor.start(thing, command)
            self.console.print(
                f"{thing}: identity in {identity}, added to group {GROUP}, runtime started",
                highlight=False,
                soft_wrap=True,
            )

    def _publish_components(self) -> None:
        for name, version in DEMO_COMPONENTS.items():
            component.publish(
                recipe_file=RECIPES_DIR / f"{name}-{version}.yaml",
                artifacts=ARTIFACTS_DIR,
                api=self.api_url,
                data=self.cloud_dir,
            )

    def _deploy(self) -> str:
        components: dict[str, dict[str, Any]] = {
            name: {"componentVersion": version} for name, version in DEMO_COMPONENTS.items()
        }
        components["com.edgewise.demo.SensorSimulator"]["configurationUpdate"] = {
            "merge": json.dumps({"intervalSeconds": "1"})
        }
        body = {
            "targetArn": GROUP,
            "deploymentName": "greenhouse-demo",
            "components": components,
            "iotJobConfiguration": {"jobExecutionsRolloutConfig": ROLLOUT, "abortConfig": ABORT},
        }
        with self._client() as client:
            created = request(client, "POST", "/deployments", json=body)
        deployment_id = str(created["deploymentId"])
        self.console.print(
            f"Deployment {deployment_id} to thing group {GROUP}: one device first, the rate doubling with "
            "each device that succeeds",
            highlight=False,
        )
        return deployment_id

    def _show(self, deployment_id: str, *, duration: float | None, exit_after_converged: bool) -> None:
        started = time.monotonic()
        stop_at = started + duration if duration is not None else None
        give_up_at = started + CONVERGE_TIMEOUT if exit_after_converged else None
        devices = {thing: self.device_root(thing) for thing in THINGS}
        components = list(DEMO_COMPONENTS)
        header = [
            f"Edgewise demo: a cloud and {len(THINGS)} devices in {self.supervisor.root}",
            f"API {self.api_url}/api/v1   MQTT mqtts://127.0.0.1:{self.mqtt_port}",
            f"Try: edgewise core-device list --data {self.cloud_dir}   (Ctrl-C stops everything)",
        ]
        converged = False
        with self._client() as client, Live(console=self.console, refresh_per_second=4) as live:
            while stop_at is None or time.monotonic() < stop_at:
                self.supervisor.check_children()
                view = observe(client, deployment_id, devices, started=started)
                live.update(render(view, group=GROUP, components=components, header=header))
                if not converged and view.converged(components):
                    converged = True
                    live.console.print(
                        f"[green]Converged after {view.elapsed:.0f} s:[/] every device runs "
                        f"{', '.join(name.rsplit('.', 1)[-1] for name in components)}"
                    )
                    if exit_after_converged:
                        return
                failure = view.failure()
                if failure is not None and exit_after_converged:
                    fail(f"The deployment cannot converge: {failure}")
                if give_up_at is not None and time.monotonic() > give_up_at:
                    fail(f"The fleet did not converge within {CONVERGE_TIMEOUT:.0f} s")
                time.sleep(_REFRESH)

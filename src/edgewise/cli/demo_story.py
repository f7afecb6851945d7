"""``edgewise demo``: the whole story on this machine, shown live: a fleet of simulated hubs streams sensor data,
an anomaly model is trained on it and deployed to them, and the anomalies they report appear as they are found.

The demo does what an operator would, with the cloud's API and the CLI's own code:

1. ``edgewise cloud up --data ROOT/cloud`` as a child process (API, console, managed Mosquitto, SQLite), on the
   ports of the previous run (``ROOT/ports.json``) or free ones;
2. a login link for the console (``POST /console/login-links``), printed with the console's URL;
3. provisioning by claim: a claim policy, a provisioning template that puts each hub in the thing group
   ``demo-hubs`` and a claim certificate; then ``edgewise device bootstrap --claim-cert`` for each hub
   (``hub-1`` ...), started as a real runtime (``python -m edgewise.runtime --root ROOT/devices/<thing>``);
4. a deployment to the group of ``edgewise.sim.SensorHub`` (temperature, humidity and vibration readings with
   labelled injected faults), ``aws.greengrass.StreamManager`` (``STREAM_MANAGER_SERVER_PORT`` ``"0"``, so that
   the hubs on this machine do not share a port) and ``edgewise.sim.ReadingExporter``. The hub publishes each
   reading locally and to the cloud on ``dt/<thing>/reading`` (the live path, which the anomalies are scored
   against); the exporter appends each local reading to a stream whose export brings it to the cloud's telemetry
   stream ``sensor-readings`` (the durable path, which the model trains on);
5. once enough readings are exported: a dataset of the exported ones (``anomaly`` as the label), an anomaly model
   trained on it with a short time budget, its version named ``champion``;
6. ``model deploy`` of the champion with the inference component to the group: it reads the local readings and
   sends its results to the cloud on ``dt/<thing>/anomaly``;
7. the results, read back from the cloud's telemetry and scored against the faults injected into the readings
   (:class:`edgewise.cli.demo_view.AnomalyScore`), until Ctrl-C, ``--duration`` or ``--exit-after-anomalies``.

A later run reuses ROOT: the cloud's data (things, components, models: the run trains a new version), each
hub's identity and runtime root.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live

from edgewise.aws_components import BUILTIN_VERSIONS, NUCLEUS
from edgewise.cli import component, device, provisioning
from edgewise.cli.api import api_client, api_path, list_all, request, send
from edgewise.cli.connection import fail
from edgewise.cli.demo_supervisor import DemoSupervisor
from edgewise.cli.demo_view import Hub, Story, detection_line, render
from edgewise.cli.model_training import FINAL_STATUSES
from edgewise.components import RECIPES_DIR

if TYPE_CHECKING:
    import httpx

GROUP = "demo-hubs"
TEMPLATE = "demo-hubs"
CLAIM_POLICY = "demo-hubs-claim"
SENSOR_HUB = "edgewise.sim.SensorHub"
SENSOR_HUB_VERSION = "1.1.0"
READING_EXPORTER = "edgewise.sim.ReadingExporter"
READING_EXPORTER_VERSION = "1.0.0"
STREAM_MANAGER = "aws.greengrass.StreamManager"
#: The cloud telemetry stream the exporter's stream is exported to (the recipe's default ``cloudStreamName``).
EXPORTED_STREAM = "sensor-readings"
INFERENCE = "edgewise.ml.Inference"
MODEL = "hub-anomaly"
PORTS_FILE = "ports.json"
#: The policy every cloud creates on its first start (``edgewise.cloud.identity``).
DEVICE_POLICY = "EdgewiseDefaultDevicePolicy"
_START_TIMEOUT = 60.0
_ROLLOUT_TIMEOUT = 180.0
_TICK = 0.25
#: Seconds between two looks at the fleet (a few API calls each).
_FLEET_EVERY = 1.0
_PENDING = ("QUEUED", "IN_PROGRESS")


@dataclass(frozen=True)
class Pace:
    """How fast the story goes: the hubs' reading interval, how much history to train on, the search budget.

    Each reading stands for ``SIMULATED_INTERVAL_S`` of the simulated day, so that the history covers whole
    daily cycles (80 readings each) and the live readings look like it, however fast they come.
    """

    interval_s: float
    readings_per_hub: int
    time_budget_s: float
    fault_rate: float


SIMULATED_INTERVAL_S = 7.5
#: Readings every half second, 100 s of history (2.5 cycles), a 20 s search.
NORMAL = Pace(interval_s=0.5, readings_per_hub=200, time_budget_s=20.0, fault_rate=0.02)
#: The smallest amounts that still train a model that finds the injected faults: 1.5 cycles, a 2 s search.
FAST = Pace(interval_s=0.1, readings_per_hub=120, time_budget_s=2.0, fault_rate=0.04)


class DemoTimeout(Exception):
    """``--duration`` is over: the demo stops as asked."""


def _claim_policy() -> dict[str, Any]:
    """What a claim certificate may do: connect, and provision with the demo's template."""
    topics = [
        "$aws/certificates/create/*",
        f"$aws/provisioning-templates/{TEMPLATE}/provision/*",
    ]
    resources = [f"arn:aws:iot:*:*:topic/{topic}" for topic in topics]
    filters = [f"arn:aws:iot:*:*:topicfilter/{topic}" for topic in topics]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"},
            {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": resources},
            {"Effect": "Allow", "Action": ["iot:Subscribe"], "Resource": filters},
        ],
    }


#: Each hub names itself hub-<serial> and joins the demo's group with the default device policy.
TEMPLATE_BODY: dict[str, Any] = {
    "Parameters": {"SerialNumber": {"Type": "String"}},
    "Resources": {
        "thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": {
                "ThingName": {"Fn::Join": ["-", ["hub", {"Ref": "SerialNumber"}]]},
                "ThingGroups": [GROUP],
            },
        },
        "certificate": {
            "Type": "AWS::IoT::Certificate",
            "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
        },
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": DEVICE_POLICY}},
    },
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _payload(message: dict[str, Any]) -> dict[str, Any] | None:
    try:
        decoded = json.loads(base64.b64decode(message["payload"]))
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


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


class StoryDemo:
    """One run of the demo in a prepared demo folder."""

    def __init__(self, supervisor: DemoSupervisor, console: Console, *, hubs: int, pace: Pace) -> None:
        self.supervisor = supervisor
        self.console = console
        self.pace = pace
        self.cloud_dir = supervisor.root / "cloud"
        self.things = [f"hub-{serial}" for serial in range(1, hubs + 1)]
        self.api_url = ""
        self.mqtt_port = 0
        self.started_ms = int(time.time() * 1000)
        self.story = Story(header=[], hubs=[Hub(thing) for thing in self.things], components=[])
        self._output: _CloudOutput | None = None
        self._api: httpx.Client | None = None
        self._live: Live | None = None
        self._stop_at: float | None = None
        self._give_up_at: float | None = None
        self._fleet_at = 0.0
        self._deployment_id = ""
        #: The telemetry cursor of each (thing, stream) read so far.
        self._cursors: dict[tuple[str, str], int] = {}

    def run(self, *, duration: float | None, exit_after_anomalies: int | None, timeout: float) -> None:
        """Tell the story; returns when ``duration`` is over, or once ``exit_after_anomalies`` injected faults
        were detected. Exits 1 when a step fails or, with ``exit_after_anomalies``, after ``timeout`` s."""
        now = time.monotonic()
        self._stop_at = None if duration is None else now + duration
        self._give_up_at = None if exit_after_anomalies is None else now + timeout
        self._start_cloud()
        self._print_console_link()
        with (
            api_client(self.api_url, self.cloud_dir) as client,
            Live(render(self.story), console=self.console, refresh_per_second=4) as live,
        ):
            self._api, self._live = client, live
            try:
                self._provision()
                self._deploy_sensor_hubs()
                self._wait_for_history()
                version = self._train()
                self._deploy_model(version)
                self._watch_anomalies(exit_after_anomalies)
            except DemoTimeout:
                self.story.finish()
            finally:
                live.update(render(self.story))

    def close(self) -> None:
        if self._output is not None:
            self._output.join()

    @property
    def _client(self) -> httpx.Client:
        assert self._api is not None
        return self._api

    def _say(self, line: str) -> None:
        """A line above the live view (and in a log when the output is not a terminal)."""
        if self._live is not None:
            self._live.console.print(line, highlight=False, soft_wrap=True)
        else:
            self.console.print(line, highlight=False, soft_wrap=True)

    def _step(self, text: str) -> None:
        self.story.step(text)
        self._say(f"[bold]>[/] {text}")
        self._refresh(force=True)

    def _tick(self) -> None:
        """Between two looks at something: check the children and the clock, refresh the view, wait a little."""
        self.supervisor.check_children()
        now = time.monotonic()
        if self._stop_at is not None and now > self._stop_at:
            raise DemoTimeout
        if self._give_up_at is not None and now > self._give_up_at:
            fail(f"The demo did not detect the anomalies asked for in time (at: {self.story.steps[-1][0]})")
        self._refresh()
        time.sleep(_TICK)

    def _refresh(self, *, force: bool = False) -> None:
        if self._live is None:
            return
        if force or time.monotonic() - self._fleet_at >= _FLEET_EVERY:
            self._fleet_at = time.monotonic()
            self._observe_fleet()
        self._live.update(render(self.story))

    def _ports(self) -> dict[str, int]:
        """The cloud's ports: those of the previous run (the hubs' configuration names the MQTT port), else free
        ones, recorded for the next run."""
        path = self.supervisor.root / PORTS_FILE
        names = ("api", "mqtt", "dataPlane", "httpsPublish")
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            return {name: int(saved[name]) for name in names}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            fail(f"Cannot read {path} ({exc}); delete it and start again")
        ports = {name: _free_port() for name in names}
        path.write_text(json.dumps(ports), encoding="utf-8")
        return ports

    def _start_cloud(self) -> None:
        ports = self._ports()
        self.mqtt_port = ports["mqtt"]
        command = [
            sys.executable, "-m", "edgewise.cli", "cloud", "up", "--data", str(self.cloud_dir),
            "--api-port", str(ports["api"]), "--mqtt-port", str(self.mqtt_port),
            "--data-plane-host", "127.0.0.1", "--data-plane-port", str(ports["dataPlane"]),
            "--https-publish-port", str(ports["httpsPublish"]),
        ]  # fmt: skip
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

    def _print_console_link(self) -> None:
        console_url = f"{self.api_url}/console/"
        with api_client(self.api_url, self.cloud_dir) as client:
            answer = send(client, "POST", "/console/login-links", json={}, allow=(404, 405))
        if answer.status_code in (404, 405):
            link = "(this cloud has no console login links yet: sign in with the admin token in cloud/)"
        else:
            found = answer.json()
            path = next((str(found[key]) for key in ("url", "loginUrl", "path") if found.get(key)), "")
            link = path if path.startswith("http") else self.api_url + path
        self.story.header = [
            f"Edgewise demo: a cloud and {len(self.things)} simulated hubs in {self.supervisor.root}",
            f"Console: {console_url}   Login link (one use): {link}",
            f"API {self.api_url}/api/v1   Try: edgewise core-device list --data {self.cloud_dir}   "
            "(Ctrl-C stops everything)",
        ]
        for line in self.story.header:
            self.console.print(line, highlight=False, soft_wrap=True)

    def _observe_fleet(self) -> None:
        client = self._client
        reported = {item["coreDeviceThingName"]: item for item in list_all(client, "/core-devices", {})}
        counts: dict[str, int] = {}
        streams = request(
            client, "GET", "/telemetry/streams", params={"since": str(self.started_ms), "limit": 1000}
        )
        for stream in streams["data"]:
            parts = str(stream["stream"]).split("/")
            if len(parts) == 3 and parts[0] == "dt" and parts[2] == "reading":
                counts[parts[1]] = int(stream["messages"])
        executions: dict[str, dict[str, Any]] = {}
        if self._deployment_id:
            path = api_path("deployments", self._deployment_id, "devices")
            executions = {item["thingName"]: item for item in list_all(client, path, {})}
        for hub in self.story.hubs:
            hub.readings = counts.get(hub.thing, 0)
            exported = request(
                client,
                "GET",
                "/telemetry/streams",
                params={"thing": hub.thing, "stream": EXPORTED_STREAM, "since": str(self.started_ms)},
            )
            hub.exported = sum(int(stream["messages"]) for stream in exported["data"])
            hub.rollout = str(executions[hub.thing]["status"]) if hub.thing in executions else ""
            if hub.thing not in reported:
                continue
            connected = reported[hub.thing]["connectivity"]["connected"]
            hub.presence = "unknown" if connected is None else ("online" if connected else "offline")
            hub.health = str(reported[hub.thing]["status"])
            answer = send(
                client, "GET", api_path("core-devices", hub.thing, "installed-components"), allow=(404,)
            )
            if answer.status_code == 200:
                hub.components = {
                    item["componentName"]: item["lifecycleState"]
                    for item in answer.json()["installedComponents"]
                }

    def device_root(self, thing: str) -> Path:
        return self.supervisor.root / "devices" / thing

    def _ensure(self, path: str, create: str, body: dict[str, Any]) -> None:
        """POST ``body`` to ``create`` unless ``path`` exists."""
        if send(self._client, "GET", path, allow=(404,)).status_code == 404:
            request(self._client, "POST", create, json=body)

    def _provision(self) -> None:
        self._step(f"Provisioning {len(self.things)} hubs by claim into thing group {GROUP}")
        self._ensure(api_path("thing-groups", GROUP), "/thing-groups", {"thingGroupName": GROUP})
        policy = {"policyName": CLAIM_POLICY, "policyDocument": json.dumps(_claim_policy())}
        self._ensure(api_path("policies", CLAIM_POLICY), "/policies", policy)
        template = {"templateName": TEMPLATE, "templateBody": TEMPLATE_BODY, "enabled": True}
        self._ensure(api_path("provisioning-templates", TEMPLATE), "/provisioning-templates", template)
        claim = self.supervisor.root / "claim"
        log = self.supervisor.logs_dir / "provisioning.log"
        # The CLI's own lines (files written, how to start) go to a log: the demo starts the devices itself.
        for serial, thing in enumerate(self.things, start=1):
            identity = self.device_root(thing) / "identity"
            if (identity / "edgewise.yaml").is_file():
                self._say(f"  {thing}: provisioned by an earlier run, identity in {identity}")
                continue
            with log.open("a", encoding="utf-8") as output, contextlib.redirect_stdout(output):
                if not (claim / provisioning.CLAIM_CERTIFICATE_FILE).is_file():
                    provisioning.cert_create_claim(
                        policy=[CLAIM_POLICY], out=claim, api=self.api_url, data=self.cloud_dir
                    )
                device.bootstrap(
                    out=identity,
                    claim_cert=claim / provisioning.CLAIM_CERTIFICATE_FILE,
                    claim_key=claim / provisioning.CLAIM_KEY_FILE,
                    template=TEMPLATE,
                    parameter=[f"SerialNumber={serial}"],
                    data=self.cloud_dir,
                )
            self._say(f"  {thing}: provisioned by claim (template {TEMPLATE}), identity in {identity}")
        for thing in self.things:
            identity = self.device_root(thing) / "identity"
            command = [
                sys.executable, "-m", "edgewise.runtime", "--root", str(self.device_root(thing)),
                "--config", str(identity / "edgewise.yaml"),
            ]  # fmt: skip
            self.supervisor.start(thing, command)
            self._say(f"  {thing}: runtime started (root {self.device_root(thing)})")
        self.story.components = ["SensorHub", "Exporter"]

    def _deploy_sensor_hubs(self) -> None:
        for name, version in ((SENSOR_HUB, SENSOR_HUB_VERSION), (READING_EXPORTER, READING_EXPORTER_VERSION)):
            component.publish(
                recipe_file=RECIPES_DIR / f"{name}-{version}.yaml", api=self.api_url, data=self.cloud_dir
            )
        settings = {
            "intervalSeconds": self.pace.interval_s,
            "simulatedIntervalSeconds": SIMULATED_INTERVAL_S,
            "faultRate": self.pace.fault_rate,
        }
        body = {
            "targetArn": GROUP,
            "deploymentName": "demo: simulated sensor hubs",
            "components": {
                SENSOR_HUB: {
                    "componentVersion": SENSOR_HUB_VERSION,
                    "configurationUpdate": {"merge": json.dumps(settings)},
                },
                READING_EXPORTER: {"componentVersion": READING_EXPORTER_VERSION},
                # Port 0: each hub's stream manager on a free port, which the runtime hands to the exporter.
                STREAM_MANAGER: {
                    "componentVersion": BUILTIN_VERSIONS[STREAM_MANAGER],
                    "configurationUpdate": {"merge": json.dumps({"STREAM_MANAGER_SERVER_PORT": "0"})},
                },
                # {iot:thingName} in a component's configuration names each hub (the model's results topic).
                NUCLEUS: {
                    "componentVersion": BUILTIN_VERSIONS[NUCLEUS],
                    "configurationUpdate": {"merge": json.dumps({"interpolateComponentConfiguration": True})},
                },
            },
        }
        deployment = request(self._client, "POST", "/deployments", json=body)
        self._step(
            f"Deploying {SENSOR_HUB} (a reading every {self.pace.interval_s:g} s, faults injected at random) to "
            f"{GROUP} with {STREAM_MANAGER} and {READING_EXPORTER}, which exports each reading through a "
            f"stream to the cloud's telemetry stream {EXPORTED_STREAM}: deployment {deployment['deploymentId']}"
        )
        self._rollout(str(deployment["deploymentId"]), "the sensor hubs")

    def _rollout(self, deployment_id: str, what: str) -> None:
        """Wait until every hub has finished ``deployment_id``; exits 1 unless each succeeded."""
        self._deployment_id = deployment_id
        self.story.rollout_title = what
        deadline = time.monotonic() + _ROLLOUT_TIMEOUT
        path = api_path("deployments", deployment_id, "devices")
        while True:
            executions = {item["thingName"]: item for item in list_all(self._client, path, {})}
            ended = [
                executions[thing]
                for thing in self.things
                if executions.get(thing, {}).get("status") not in (None, *_PENDING)
            ]
            failed = [item for item in ended if item["status"] != "SUCCEEDED"]
            if failed:
                details = failed[0].get("statusDetails") or {}
                cause = details.get("deployment-failure-cause") or details.get(
                    "detailed-deployment-status", ""
                )
                fail(f"Deployment {deployment_id} {failed[0]['status']} on {failed[0]['thingName']}: {cause}")
            if len(ended) == len(self.things):
                self._refresh(force=True)
                self._say(f"  every hub runs {what}")
                return
            if time.monotonic() > deadline:
                fail(
                    f"Deployment {deployment_id} did not finish on every hub within {_ROLLOUT_TIMEOUT:.0f} s"
                )
            self._tick()

    def _wait_for_history(self) -> None:
        goal = self.pace.readings_per_hub
        self._step(f"Waiting for {goal} readings from each hub exported to the cloud's {EXPORTED_STREAM}")
        while min(hub.exported for hub in self.story.hubs) < goal:
            stored = sum(min(hub.exported, goal) for hub in self.story.hubs)
            self.story.update_step(
                f"Waiting for {goal} readings from each hub exported to {EXPORTED_STREAM}: "
                f"{stored}/{goal * len(self.things)}"
            )
            self._tick()
        self.story.update_step(f"{goal} readings from each hub are exported to the cloud's {EXPORTED_STREAM}")

    def _train(self) -> str:
        name = f"hub-readings-{self.started_ms}"
        body = {
            "name": name,
            "selection": {
                "things": self.things,
                "streams": [EXPORTED_STREAM],
                "topics": [],
                "since": self.started_ms,
            },
            "fields": ["temperature=temperature", "humidity=humidity", "vibration=vibration"],
            "label": {"field": "anomaly=anomaly"},
        }
        dataset = request(self._client, "POST", "/datasets", json=body, timeout=120.0)
        self._say(
            f"  dataset {name}: {dataset['rows']} readings exported through stream manager, labelled with the "
            "faults the hubs injected"
        )
        job_body = {
            "modelName": MODEL, "dataset": name, "task": "anomaly",
            "timeBudgetSeconds": self.pace.time_budget_s, "seed": 0,
        }  # fmt: skip
        job = request(self._client, "POST", "/training-jobs", json=job_body)
        self._step(f"Training anomaly model {MODEL} on {name} ({self.pace.time_budget_s:g} s search budget)")
        while job["status"] not in FINAL_STATUSES:
            self.story.training_job = job
            self._tick()
            job = request(self._client, "GET", api_path("training-jobs", job["id"]))
        self.story.training_job = job
        if job["status"] != "SUCCEEDED":
            fail(
                f"Training job {job['id']} ended {job['status']}: {job['error'] or 'no reason was recorded'}"
            )
        version = str(job["modelVersion"])
        request(
            self._client, "PUT", api_path("models", MODEL, "aliases", "champion"), json={"version": version}
        )
        best = job["leaderboard"][0] if job["leaderboard"] else {}
        self._say(f"  model {MODEL} version {version} ({best.get('learner', '')}) is now the champion")
        return version

    def _deploy_model(self, version: str) -> None:
        self.story.score.model, self.story.score.version = MODEL, version
        body = {
            "alias": "champion",
            "group": GROUP,
            "inputTopic": "sensors/+/reading",
            "outputTopic": f"ml/{MODEL}/result",
            "iotCoreTopic": "dt/{iot:thingName}/anomaly",
            "deploymentName": f"demo: model {MODEL} version {version}",
        }
        deployed = request(self._client, "POST", api_path("models", MODEL, "deploy"), json=body)
        self.story.components = ["SensorHub", "Exporter", "Inference", MODEL]
        self._step(
            f"Deploying model {MODEL} version {version} with {INFERENCE} to {GROUP}: "
            f"deployment {deployed['deploymentId']}"
        )
        self._rollout(str(deployed["deploymentId"]), f"model {MODEL} version {version}")

    def _new_messages(self, thing: str, stream: str) -> list[dict[str, Any]]:
        """The payloads stored for ``thing`` on ``stream`` since the last call (since the demo started at first)."""
        payloads: list[dict[str, Any]] = []
        key = (thing, stream)
        params: dict[str, Any] = {
            "thing": thing,
            "stream": stream,
            "limit": 1000,
            "payloadEncoding": "base64",
        }
        while True:
            if key in self._cursors:
                params["after"] = self._cursors[key]
            else:
                params["since"] = str(self.started_ms)
            page = request(self._client, "GET", "/telemetry/messages", params=params)
            payloads.extend(found for message in page["data"] if (found := _payload(message)) is not None)
            if page["cursor"] is not None:
                self._cursors[key] = int(page["cursor"])
            if not page["more"]:
                return payloads

    def _watch_anomalies(self, exit_after: int | None) -> None:
        goal = "" if exit_after is None else f" (stops after {exit_after} detected)"
        self._step(f"Watching the model's results from every hub{goal}")
        score = self.story.score
        while True:
            for thing in self.things:
                score.add_readings(thing, self._new_messages(thing, f"dt/{thing}/reading"))
                for detection in score.add_results(thing, self._new_messages(thing, f"dt/{thing}/anomaly")):
                    self._say("  " + detection_line(detection))
            self.story.update_step(
                f"Watching the model's results from every hub{goal}: {score.confirmed} injected faults detected"
            )
            if exit_after is not None and score.confirmed >= exit_after:
                self.story.finish()
                self._say(
                    f"[green]Detected {score.confirmed} injected faults[/] in {score.results} results "
                    f"({score.false_alarms} false alarms, {score.missed} faulty readings not flagged)"
                )
                return
            self._tick()

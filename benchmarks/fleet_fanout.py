"""Benchmark: fleet deployment fan-out. The time from creating a deployment to a thing group of N devices
(``POST /api/v1/deployments``) until the cloud has accepted every device's SUCCEEDED report, for N = 10, 100
and 1000 (or more), beside a bare MQTT publish to the same N devices on the same broker, measured in the same
run; with the cloud in 1 or more processes (``--cloud-processes``) on SQLite or PostgreSQL (``--database``).

The cloud is a real ``edgewise cloud up``: its API, jobs engine and workers (in process 0, or spread over
``--workers`` child processes), its managed Mosquitto with mutual TLS and per-device ACLs, and its database:
SQLite in its data directory, or a throwaway PostgreSQL server (``tests/cloud/postgres.py``). One database
and one data directory serve every process count: the cloud is restarted with each ``--workers``, and each
group of N devices is enrolled once and keeps its identities. Each device is the runtime's own device agent
(``edgewise.runtime.fleet.FleetAgent``) with its own certificate (issued through the API), its own
``CloudLink`` (one MQTT connection, its own spool) and its own root with the pieces the agent drives: a
``ConfigStore``, a ``LifecycleSupervisor`` and a ``DeploymentService``. Worker processes run the devices,
``--per-process`` (100) in each, on one asyncio loop; they start anew, on new roots, for each process count.
Not more than 100: paho-mqtt's network loop uses ``select()``, which cannot watch a descriptor numbered 1024
or above, and each agent holds about seven (its MQTT socket, paho's wake-up socket pair, the spool database
with its WAL and shared memory, the configuration log).

No IPC server and no component processes: the deployed component has no lifecycle and no artifacts, so each
device does the whole fleet path (notification, describe the job, IN_PROGRESS, resolve the recipe over MQTT,
install it, apply the deployment, report SUCCEEDED and its fleet status) and starts nothing.

Each repeat deploys a new version of that component to the group (a new revision of the group's
deployment). The workers see each device's job notification, the cloud's ``update/accepted`` answers to its
IN_PROGRESS and SUCCEEDED reports (or the ``start-next/accepted`` that moves its execution to IN_PROGRESS),
on the device's own connection; the end of a run is the last SUCCEEDED accepted, checked afterwards against
``GET /api/v1/deployments/{id}/devices``. Each device counts what it publishes (requests) and the messages
its link hands to its subscribers, between the quiet moments before and after each deployment.

CPU is read from ``/proc``: the cloud is the whole ``cloud up`` process tree but Mosquitto (its worker
children are restarted at will: each tree is read anew, and a child that ended is in its parent's counts of
reaped children), PostgreSQL is its postmaster's tree, the agents are their worker processes.

Baseline: the same N device identities connected as plain paho-mqtt clients (MQTT 5, mutual TLS, the same
worker processes), all subscribed at QoS 1 to one topic their policy allows; one QoS 1 publish from
another device, timed from the publish to the last receipt.

Everything runs on this machine: the cloud, its database, Mosquitto and the devices share its cores.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import itertools
import json
import logging
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from _harness import (
    exit_on_sigterm,
    free_port,
    median,
    memory_kib,
    parse_args,
    print_machine,
    print_table,
    process_group,
    run_main,
    wait_for,
)
from edgewise.recipe import detect_platform
from edgewise.runtime.cloudlink import (
    CloudLink,
    CloudLinkSettings,
    CloudMessage,
    MessageProperties,
    ReconnectSettings,
)
from edgewise.runtime.config import ConfigStore
from edgewise.runtime.deployment import SERVICES, DeploymentService
from edgewise.runtime.fleet import FleetAgent, presence_messages
from edgewise.runtime.lifecycle import LifecycleSettings, LifecycleSupervisor
from edgewise.runtime.lifecycle.spec import ComponentSpec
from edgewise.runtime.paths import RootPaths
from edgewise.runtime.specs import build_specs

if TYPE_CHECKING:
    from _postgres import Database

COMPONENT = "com.example.FanoutMarker"
POLICY = "EdgewiseFanoutBenchmark"
DEVICE_POLICY = "EdgewiseDefaultDevicePolicy"
BASELINE_TOPIC = "edgewise-bench/fanout"
PUBLISHER = "fanout-publisher"
JOBS_NAMESPACE = "namespace-aws-gg-deployment"
#: How long one run may take before its stragglers count as missing.
RUN_TIMEOUT_S = 300.0
#: Setup steps (starting devices, the cloud catching up) that take longer than this are errors.
SETUP_TIMEOUT_S = 180.0


# -- the cloud ------------------------------------------------------------------------------------------------


@dataclass
class Cloud:
    """A running ``edgewise cloud up``."""

    process: subprocess.Popen[str]
    data_dir: Path
    api_url: str
    mqtt_host: str
    mqtt_port: int
    token: str

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "ca" / "ca.pem"

    @property
    def log(self) -> Path:
        return cloud_log(self.data_dir)

    def api(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=f"{self.api_url}/api/v1", headers=headers, timeout=60)

    def mosquitto_pid(self) -> int:
        for child in Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split():
            if b"mosquitto" in Path(f"/proc/{child}/cmdline").read_bytes():
                return int(child)
        raise RuntimeError("edgewise cloud up runs no Mosquitto")


@dataclass(frozen=True)
class CloudPorts:
    """Where one cloud listens, kept across its restarts."""

    api: int
    mqtt: int
    data_plane: int

    @classmethod
    def free(cls) -> CloudPorts:
        return cls(free_port(), free_port(), free_port())


@contextmanager
def cloud_up(
    data_dir: Path,
    ports: CloudPorts | None = None,
    *,
    database_url: str | None = None,
    workers: int | None = None,
) -> Iterator[Cloud]:
    """``python -m edgewise.cli cloud up`` on ``ports`` (HTTPS publish off), on ``database_url`` (None: SQLite
    in ``data_dir``) with ``--workers`` (None: the option is left out), ready when yielded; stopped with
    SIGTERM, then killed with its whole process group, on the way out. ``data_dir`` may hold a previous run."""
    ports = ports or CloudPorts.free()
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "edgewise.cli", "cloud", "up", "--data", str(data_dir)]
    command += ["--api-port", str(ports.api), "--mqtt-port", str(ports.mqtt)]
    command += ["--data-plane-host", "127.0.0.1", "--data-plane-port", str(ports.data_plane)]
    command += ["--https-publish-port", "0"]
    if database_url is not None:
        command += ["--database-url", database_url]
    if workers is not None:
        command += ["--workers", str(workers)]
    log = cloud_log(data_dir)
    with log.open("a") as stderr:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=True,
        )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("Ready"):
                break
        else:
            raise RuntimeError(f"edgewise cloud up exited with {process.wait()}: {log.read_text()[-2000:]}")
        # Keep reading, or cloud up blocks once the pipe is full.
        threading.Thread(target=process.stdout.read, daemon=True).start()
        endpoint = urlsplit(json.loads((data_dir / "cloud.json").read_text())["mqttEndpoint"])
        assert endpoint.hostname is not None
        assert endpoint.port is not None
        token = (data_dir / "admin-token").read_text().strip()
        yield Cloud(
            process, data_dir, f"http://127.0.0.1:{ports.api}", endpoint.hostname, endpoint.port, token
        )
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print("edgewise cloud up did not stop in 30 s; killing it")
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def call(api: httpx.Client, method: str, path: str, body: Any = None) -> Any:
    """One API request that must succeed; its JSON answer (None for 204)."""
    answer = api.request(method, path, json=body)
    if answer.status_code >= 400:
        raise RuntimeError(f"{method} {path} answered {answer.status_code}: {answer.text}")
    return answer.json() if answer.content else None


# -- identities -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    thing: str
    certificate: Path
    private_key: Path


def benchmark_policy() -> dict[str, Any]:
    """Lets a device subscribe to, receive and publish the baseline's one topic."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}",
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Publish", "iot:Receive"],
                "Resource": f"arn:aws:iot:*:*:topic/{BASELINE_TOPIC}",
            },
            {
                "Effect": "Allow",
                "Action": "iot:Subscribe",
                "Resource": f"arn:aws:iot:*:*:topicfilter/{BASELINE_TOPIC}",
            },
        ],
    }


def issue(api: httpx.Client, thing: str, directory: Path) -> tuple[Identity, str]:
    """Register ``thing`` and issue it a certificate with a key the cloud generates; the identity's files
    and the certificate id."""
    call(api, "POST", "/things", {"thingName": thing})
    issued = call(api, "POST", "/certificates", {"thingName": thing, "generateKeyPair": True})
    identity = Identity(thing, directory / f"{thing}.crt", directory / f"{thing}.key")
    identity.certificate.write_text(issued["certificatePem"])
    identity.private_key.write_text(issued["privateKey"])
    identity.private_key.chmod(0o600)
    return identity, str(issued["certificateId"])


def enroll_group(
    cloud: Cloud, group: str, count: int, directory: Path, *, threads: int = 4
) -> list[Identity]:
    """A thing group of ``count`` new things, each with a certificate; the device policy and the
    benchmark's are attached to the group."""
    with cloud.api() as api:
        call(api, "POST", "/thing-groups", {"thingGroupName": group})
        for policy in (DEVICE_POLICY, POLICY):
            call(api, "PUT", f"/policies/{policy}/targets/thing-groups/{group}")
    names = [f"{group}-{index:04d}" for index in range(count)]

    def enroll(part: Sequence[str]) -> list[Identity]:
        with cloud.api() as api:
            identities = []
            for name in part:
                identities.append(issue(api, name, directory)[0])
                call(api, "PUT", f"/thing-groups/{group}/things/{name}")
            return identities

    with ThreadPoolExecutor(max_workers=threads) as pool:
        parts = [names[start::threads] for start in range(threads)]
        enrolled = [identity for part in pool.map(enroll, parts) for identity in part]
    return sorted(enrolled, key=lambda identity: identity.thing)


def cloud_log(data_dir: Path) -> Path:
    """The standard error of the cloud on ``data_dir``: every process of every start (the file is appended to)."""
    return data_dir.parent / f"{data_dir.name}.log"


def wait_authorized(cloud: Cloud, devices: int) -> None:
    """Until the managed Mosquitto's ACL has ``devices`` devices (the cloud logs each authorization sync with
    their number): Mosquitto 2.0 grants a SUBSCRIBE its ACL does not allow yet and then delivers nothing on it,
    which left a baseline subscriber enrolled last waiting for its message."""
    synced = re.compile(r"authorization-synced devices=(\d+)")

    def covered() -> bool:
        return any(int(count) >= devices for count in synced.findall(cloud.log.read_text(errors="replace")))

    wait_for(
        covered, timeout=SETUP_TIMEOUT_S, what=f"the broker's ACL to cover {devices} devices", interval=0.2
    )


def publish_versions(cloud: Cloud, count: int) -> list[str]:
    """``count`` versions of the benchmark's component: no lifecycle, no artifacts, one configuration value."""
    versions = [f"1.0.{revision}" for revision in range(count)]
    with cloud.api() as api:
        for revision, version in enumerate(versions):
            recipe = {
                "RecipeFormatVersion": "2020-01-25",
                "ComponentName": COMPONENT,
                "ComponentVersion": version,
                "ComponentDescription": "Fan-out benchmark: nothing to run, nothing to download.",
                "ComponentPublisher": "Edgewise benchmarks",
                "ComponentConfiguration": {"DefaultConfiguration": {"revision": revision}},
                "Manifests": [{"Platform": {"os": "*"}}],
            }
            call(api, "POST", "/components", {"recipe": recipe})
    return versions


# -- worker processes (coordinator side) ------------------------------------------------------------------


@dataclass
class Worker:
    """A worker process, the folder it works in (spec, ready file, answers) and its log."""

    process: subprocess.Popen[bytes]
    directory: Path
    log: Path

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"A benchmark worker exited with code {code}:\n{tail}")


def split(items: Sequence[Any], most: int) -> list[list[Any]]:
    """``items`` cut into nearly equal consecutive slices of at most ``most`` items each."""
    parts = max(1, -(-len(items) // most))
    bounds = [len(items) * part // parts for part in range(parts + 1)]
    return [list(items[bounds[part] : bounds[part + 1]]) for part in range(parts)]


@contextmanager
def start_workers(role: str, specs: Sequence[dict[str, Any]], directory: Path) -> Iterator[list[Worker]]:
    """One worker process per spec; returns once each has written its ``ready`` file (within the specs'
    ``setup_timeout``). Each is asked to stop (``stop`` on its stdin) on the way out and killed if it does not
    within a minute."""
    workers: list[Worker] = []
    with ExitStack() as stack:
        for index, spec in enumerate(specs):
            folder = directory / f"{role}{index}"
            folder.mkdir(parents=True)
            (folder / "spec.json").write_text(json.dumps(spec))
            log = folder / "worker.log"
            stream = stack.enter_context(log.open("ab"))
            process = stack.enter_context(
                process_group(
                    [sys.executable, __file__, role, str(folder)],
                    stdin=subprocess.PIPE,
                    stdout=stream,
                    stderr=stream,
                )
            )
            worker = Worker(process, folder, log)
            workers.append(worker)
            stack.callback(_stop_worker, worker)

        def all_ready() -> bool:
            for worker in workers:
                worker.check_alive()
            return all((worker.directory / "ready").exists() for worker in workers)

        timeout = max(spec["setup_timeout"] for spec in specs)
        wait_for(all_ready, timeout=timeout, what=f"{len(workers)} {role} workers", interval=0.05)
        yield workers


def _stop_worker(worker: Worker) -> None:
    if worker.process.poll() is not None or not (worker.directory / "ready").exists():
        return  # a worker still setting up does not read its commands: it is killed
    with suppress(BrokenPipeError):
        worker.send("stop")
    with suppress(subprocess.TimeoutExpired):
        worker.process.wait(timeout=60)


def ask_all(
    workers: Sequence[Worker], command: str, name: str, *, timeout: float = RUN_TIMEOUT_S
) -> list[dict[str, Any]]:
    """Send ``command name`` to every worker and collect the ``name.json`` each writes in answer; a
    ``report`` waits at most ``timeout`` seconds in the workers for what it reports."""
    for worker in workers:
        worker.send(f"{command} {name} {timeout:g}" if command == "report" else f"{command} {name}")

    def answered() -> bool:
        for worker in workers:
            worker.check_alive()
        return all((worker.directory / f"{name}.json").exists() for worker in workers)

    wait_for(answered, timeout=timeout + 60, what=f"the workers' answers to {command}", interval=0.01)
    return [json.loads((worker.directory / f"{name}.json").read_text()) for worker in workers]


def write_result(path: Path, result: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(result))
    temporary.replace(path)


# -- the devices (agents worker side) ------------------------------------------------------------------------


@dataclass
class JobTimes:
    """When a device saw its job's notification and the cloud's acceptance of its reports (monotonic ns)."""

    notified: int | None = None
    in_progress: int | None = None
    finished: int | None = None
    status: str | None = None
    rejected: list[str] = field(default_factory=list)


class ObservedLink(CloudLink):
    """The cloud link, counting what the device publishes (its requests to the cloud) and noting the client
    token and status of each job update, so that the cloud's ``update/accepted`` answer can be matched to it.
    What it receives is counted by the link itself (``statistics().delivered``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.updates: dict[str, tuple[str, str]] = {}
        self.requests = 0

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        *,
        retain: bool = False,
        properties: MessageProperties | None = None,
    ) -> None:
        self.requests += 1
        if topic.endswith(f"/{JOBS_NAMESPACE}/update"):
            request = json.loads(payload)
            job_id = topic.split("/")[-3]
            self.updates[request["clientToken"]] = (job_id, request["status"])
        await super().publish(topic, payload, qos, retain=retain, properties=properties)


class BenchDevice:
    """One device: the runtime pieces the fleet agent needs, on their own root, and the agent itself."""

    def __init__(
        self,
        identity: Identity,
        root: Path,
        spec: dict[str, Any],
        platform: dict[str, str],
        progress: asyncio.Event,
    ) -> None:
        self.thing = identity.thing
        self.paths = RootPaths.at(root)
        self.platform = platform
        self.settings = CloudLinkSettings(
            endpoint=spec["host"],
            port=spec["port"],
            certificate=identity.certificate,
            private_key=identity.private_key,
            root_ca=Path(spec["ca"]),
            reconnect=ReconnectSettings(min_delay=0.5, max_delay=5.0),
        )
        self.jobs: dict[str, JobTimes] = {}
        self._progress = progress
        self.link = ObservedLink(
            self.settings,
            client_id=self.thing,
            spool_dir=self.paths.root / "spool",
            connection_messages=presence_messages(self.thing),
        )
        self.store: ConfigStore | None = None
        self.supervisor: LifecycleSupervisor | None = None
        self.deployments: DeploymentService | None = None
        self.agent: FleetAgent | None = None

    def _environment(self, spec: ComponentSpec) -> dict[str, str]:
        return {"AWS_IOT_THING_NAME": self.thing}

    def _reconcile(self, reinstall: Collection[str] = ()) -> None:
        assert self.store is not None
        assert self.supervisor is not None
        specs = build_specs(self.store.get(SERVICES) or {}, self.paths, thing_name=self.thing)
        self.supervisor.apply(specs, reinstall=reinstall)

    async def start(self) -> None:
        """Wired as the kernel wires them: link first, deployment recovery, then the agent."""
        await asyncio.to_thread(self.paths.create)
        self.store = await asyncio.to_thread(ConfigStore.open, self.paths.config_dir)
        self.supervisor = LifecycleSupervisor(
            LifecycleSettings(work_dir=self.paths.work_dir, log_dir=self.paths.logs_dir),
            environment=self._environment,
        )
        self.deployments = DeploymentService(
            self.paths,
            store=self.store,
            supervisor=self.supervisor,
            platform=self.platform,
            reconcile=self._reconcile,
        )
        # Created before recovery, as the kernel does: it attaches its cloud source to the service.
        self.agent = FleetAgent(
            self.link,
            thing=self.thing,
            settings=self.settings,
            paths=self.paths,
            store=self.store,
            supervisor=self.supervisor,
            deployments=self.deployments,
            platform=self.platform,
        )
        await self.link.start()
        self.deployments.recover()
        self._reconcile()
        self.deployments.start()
        # The agent's own filters: the link shares one broker subscription between the two subscribers.
        jobs = f"$aws/things/{self.thing}/jobs"
        await self.link.subscribe(f"{jobs}/notify-{JOBS_NAMESPACE}", self._notified, qos=1)
        await self.link.subscribe(f"{jobs}/+/{JOBS_NAMESPACE}/update/+", self._answered, qos=1)
        await self.link.subscribe(f"{jobs}/{JOBS_NAMESPACE}/start-next/+", self._started, qos=1)
        await self.agent.start()

    def _notified(self, message: CloudMessage) -> None:
        now = time.monotonic_ns()
        jobs = json.loads(message.payload).get("jobs", {})
        for summaries in jobs.values():
            for summary in summaries:
                times = self.jobs.setdefault(summary["jobId"], JobTimes())
                if times.notified is None:
                    times.notified = now

    def _started(self, message: CloudMessage) -> None:
        """An agent that asks for its next job with start-next has it IN_PROGRESS once that is accepted."""
        now = time.monotonic_ns()
        if not message.topic.endswith("/accepted"):
            return
        execution = json.loads(message.payload).get("execution")
        if isinstance(execution, dict) and "jobId" in execution:
            times = self.jobs.setdefault(execution["jobId"], JobTimes())
            if times.in_progress is None:
                times.in_progress = now
            self._progress.set()

    def _answered(self, message: CloudMessage) -> None:
        now = time.monotonic_ns()
        outcome = message.topic.rsplit("/", 1)[1]
        token = json.loads(message.payload).get("clientToken")
        if token not in self.link.updates:
            return
        job_id, status = self.link.updates.pop(token)
        times = self.jobs.setdefault(job_id, JobTimes())
        if outcome == "rejected":
            times.rejected.append(f"{status}: {message.payload.decode(errors='replace')[:300]}")
        elif status == "IN_PROGRESS":
            if times.in_progress is None:
                times.in_progress = now
        else:
            times.finished, times.status = now, status
        self._progress.set()

    def settled(self) -> bool:
        """Connected, and nothing left in the spool: the cloud has every message sent so far."""
        return self.link.connected and self.link.statistics().spooled == 0

    def traffic(self) -> tuple[int, int]:
        """How many messages the device has published, and received, so far."""
        return self.link.requests, self.link.statistics().delivered

    async def close(self) -> None:
        if self.agent is not None:
            await self.agent.close()
        if self.deployments is not None:
            await self.deployments.close()
        if self.supervisor is not None:
            await self.supervisor.shutdown()
        await self.link.close()
        if self.store is not None:
            await asyncio.to_thread(self.store.close)


async def _until(condition: Callable[[], bool], progress: asyncio.Event, timeout: float) -> bool:
    """Wait for ``condition`` (checked on every progress event and every 50 ms); False after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        progress.clear()
        with suppress(TimeoutError):
            await asyncio.wait_for(progress.wait(), min(remaining, 0.05))
    return True


async def run_agents(folder: Path) -> None:
    """The agents worker: start every device, report ready, then answer the coordinator's commands."""
    spec = json.loads((folder / "spec.json").read_text())
    logging.basicConfig(
        filename=folder / "agents.log", level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    loop = asyncio.get_running_loop()
    # One runtime has its own small thread pool; here the devices share one, sized for many.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=spec["threads"], thread_name_prefix="devices"))
    progress = asyncio.Event()
    platform = detect_platform()
    devices = [
        BenchDevice(
            Identity(thing, Path(certificate), Path(key)), folder / "roots" / thing, spec, platform, progress
        )
        for thing, certificate, key in spec["devices"]
    ]
    try:
        await asyncio.gather(*(device.start() for device in devices))
        if not await _until(partial(_all_settled, devices), progress, spec["setup_timeout"]):
            late = [device.thing for device in devices if not device.settled()]
            raise RuntimeError(f"{len(late)} device(s) did not connect and settle: {late[:5]}")
        (folder / "ready").touch()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().strip():
            command, *arguments = line.split()
            if command == "stop":
                break
            if command == "report":
                job_id, timeout = arguments
                await _until(partial(_all_done, devices, job_id), progress, float(timeout))
                write_result(
                    folder / f"{job_id}.json", {"devices": [_times(device, job_id) for device in devices]}
                )
            if command == "count":
                (name,) = arguments
                write_result(folder / f"{name}.json", {device.thing: device.traffic() for device in devices})
    finally:
        await asyncio.gather(*(device.close() for device in devices), return_exceptions=True)


def _all_settled(devices: Sequence[BenchDevice]) -> bool:
    return all(device.settled() for device in devices)


def _all_done(devices: Sequence[BenchDevice], job_id: str) -> bool:
    """Whether the cloud has accepted every device's final report on the job."""
    return all(
        (times := device.jobs.get(job_id)) is not None and times.finished is not None for device in devices
    )


def _times(device: BenchDevice, job_id: str) -> dict[str, Any]:
    times = device.jobs.get(job_id, JobTimes())
    return {
        "thing": device.thing,
        "notified": times.notified,
        "in_progress": times.in_progress,
        "finished": times.finished,
        "status": times.status,
        "rejected": times.rejected,
    }


# -- the baseline's subscribers (subscribers worker side) ------------------------------------------------------


def _all_received(received: Sequence[dict[str, int]], sequence: str) -> bool:
    return all(sequence in times for times in received)


def tls_client(thing: str, ca: str, certificate: str, key: str) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=thing, protocol=MQTTProtocolVersion.MQTTv5)
    client.tls_set(ca_certs=ca, certfile=certificate, keyfile=key)
    return client


def run_subscribers(folder: Path) -> None:
    """The subscribers worker: connect and subscribe every device, report ready, then answer ``report SEQ``
    with when each device received message SEQ (monotonic ns)."""
    spec = json.loads((folder / "spec.json").read_text())
    devices: list[list[str]] = spec["devices"]
    received: list[dict[str, int]] = [{} for _ in devices]
    errors: list[str | None] = [None] * len(devices)
    subscribed = [False] * len(devices)
    changed = threading.Condition()
    clients = []
    for index, (thing, certificate, key) in enumerate(devices):
        client = tls_client(thing, spec["ca"], certificate, key)

        def on_connect(
            client: paho.Client, _u: object, _f: object, reason: ReasonCode, _p: object, index: int = index
        ) -> None:
            if reason.is_failure:
                with changed:
                    errors[index] = f"connection refused: {reason}"
                    changed.notify_all()
            else:
                client.subscribe(BASELINE_TOPIC, qos=1)

        def on_subscribe(
            _c: paho.Client, _u: object, _m: int, reasons: list[ReasonCode], _p: object, index: int = index
        ) -> None:
            with changed:
                if any(reason.is_failure for reason in reasons):
                    errors[index] = f"subscription refused: {reasons}"
                subscribed[index] = True
                changed.notify_all()

        def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage, index: int = index) -> None:
            now = time.monotonic_ns()
            with changed:
                received[index].setdefault(message.payload.decode(), now)
                changed.notify_all()

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.connect_async(spec["host"], spec["port"], keepalive=120, clean_start=True)
        client.loop_start()
        clients.append(client)
    try:
        with changed:
            if not changed.wait_for(lambda: all(subscribed) or any(errors), timeout=spec["setup_timeout"]):
                raise RuntimeError(f"{subscribed.count(False)} subscriber(s) did not subscribe in time")
        if any(errors):
            raise RuntimeError(f"subscribers failed: {[error for error in errors if error][:5]}")
        (folder / "ready").touch()
        for line in sys.stdin:
            command, *arguments = line.split()
            if command == "stop":
                break
            if command == "report":
                sequence, timeout = arguments
                with changed:
                    changed.wait_for(partial(_all_received, received, sequence), timeout=float(timeout))
                    times = [entry.get(sequence) for entry in received]
                write_result(folder / f"{sequence}.json", {"received": times})
    finally:
        for client in clients:
            client.disconnect()
        for client in clients:
            client.loop_stop()


# -- runs (coordinator side) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fleet:
    """The devices of one group size, and the folder for the worker processes of one cloud process count."""

    group: str
    identities: list[Identity]
    publisher: Identity
    directory: Path


@dataclass(frozen=True)
class Run:
    """The outcome of one deployment, or of one baseline publish."""

    devices: int
    seconds: float  #: to the last device SUCCEEDED (or the last receipt)
    succeeded: int
    notified_s: float = float("nan")  #: to the last device notified
    in_progress_s: float = float("nan")  #: to the last device's IN_PROGRESS accepted
    device_s: float = float("nan")  #: median, per device, from its notification to its SUCCEEDED accepted
    api_s: float = float("nan")  #: how long POST /deployments took to answer
    cpu_s: dict[str, float] = field(default_factory=dict)
    requests: float = float("nan")  #: median, per device, of the messages it published for the deployment
    messages: float = float("nan")  #: median, per device, of the messages it received for the deployment
    problems: list[str] = field(default_factory=list)


#: A measurement's place in the tables: (devices N, cloud processes P).
Key = tuple[int, int]


def run_timeout(devices: int, rate: int) -> float:
    """How long a deployment may take: :data:`RUN_TIMEOUT_S`, plus the minute of each rollout window after
    the first (``rate`` executions a minute)."""
    return RUN_TIMEOUT_S + 60.0 * ((devices - 1) // rate)


def setup_timeout(devices: int) -> float:
    """How long ``devices`` devices may take to start and be seen by the cloud: starting 1000 took 14 s."""
    return SETUP_TIMEOUT_S + 0.1 * devices


def _process_table() -> dict[int, tuple[int, float]]:
    """Every process's parent and CPU seconds: its own and those of the children it has reaped."""
    tick = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended while we looked
        # After the command name: the parent is field 4; utime, stime, cutime and cstime are fields 14-17.
        table[int(entry.name)] = (int(fields[1]), sum(int(value) for value in fields[11:15]) / tick)
    return table


def tree_cpu_seconds(roots: Collection[int], *, excluding: Collection[int] = ()) -> float:
    """CPU seconds of ``roots`` and every process below them (but ``excluding`` and theirs), counting those
    that ended: the kernel adds a child's time to its parent's when the parent reaps it. So a tree whose
    children are restarted between two readings still shows all the CPU it used in between."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    total, pending = 0.0, list(roots)
    while pending:
        pid = pending.pop()
        if pid in excluding or pid not in table:
            continue
        total += table[pid][1]
        pending += children.get(pid, [])
    return total


class CpuMeter:
    """CPU time used by each named source (CPU seconds so far) between :meth:`start` and :meth:`stop`."""

    def __init__(self, sources: dict[str, Callable[[], float]]) -> None:
        self.sources = sources
        self._before: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        return {name: source() for name, source in self.sources.items()}

    def start(self) -> None:
        self._before = self._now()

    def stop(self) -> dict[str, float]:
        return {name: value - self._before[name] for name, value in self._now().items()}


def cloud_cpu(cloud: Cloud, database: Database | None) -> dict[str, Callable[[], float]]:
    """The cloud's CPU sources: ``cloud up`` with its workers, its Mosquitto and, when it is PostgreSQL, the
    database."""
    mosquitto = cloud.mosquitto_pid()
    sources: dict[str, Callable[[], float]] = {
        "cloud": partial(tree_cpu_seconds, [cloud.process.pid], excluding={mosquitto}),
        "mosquitto": partial(tree_cpu_seconds, [mosquitto]),
    }
    if database is not None:
        sources["db"] = partial(tree_cpu_seconds, [database.postmaster])
    return sources


def workers_cpu(workers: Sequence[Worker]) -> Callable[[], float]:
    return partial(tree_cpu_seconds, [worker.process.pid for worker in workers])


def wait_quiet(
    sources: Collection[Callable[[], float]],
    *,
    share: float = 0.15,
    window: float = 0.3,
    timeout: float = 60.0,
) -> None:
    """Wait until the sources together have used less than ``share`` of a core over the last ``window``
    seconds (sampled every tenth of a second), so that a run does not start while the cloud still digests
    what the devices said before."""
    readings: list[tuple[float, float]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now, used = time.monotonic(), sum(source() for source in sources)
        readings.append((now, used))
        old = [reading for reading in readings if now - reading[0] >= window]
        if old:
            then, before = old[-1]
            if used - before < share * (now - then):
                return
            readings = readings[len(old) - 1 :]
        time.sleep(0.1)
    print(f"  (the cloud was still busy after {timeout:g} s; going on)")


def wait_connected(cloud: Cloud, things: Sequence[str], since: datetime.datetime, timeout: float) -> None:
    """Until the cloud shows every one of ``things`` connected since ``since``: it has taken in what each
    said on connecting (presence, fleet status). The database may know them from an earlier run."""
    wanted = set(things)
    interval = max(0.05, len(wanted) / 2000)

    def connected() -> bool:
        seen: set[str] = set()
        offset = 0
        with cloud.api() as api:
            while True:
                page = call(api, "GET", f"/core-devices?connected=true&limit=1000&offset={offset}")
                for device in page["data"]:
                    updated = device["connectivity"]["updatedAt"]
                    if updated is not None and datetime.datetime.fromisoformat(updated) >= since:
                        seen.add(device["coreDeviceThingName"])
                offset += len(page["data"])
                if not page["data"] or offset >= page["count"]:
                    return wanted <= seen

    wait_for(
        connected, timeout=timeout, what=f"{len(wanted)} devices connected in the cloud", interval=interval
    )


def device_statuses(cloud: Cloud, deployment_id: str) -> dict[str, str]:
    """Each thing's latest execution status of the deployment, from the API."""
    statuses: dict[str, str] = {}
    with cloud.api() as api:
        offset = 0
        while True:
            page = call(api, "GET", f"/deployments/{deployment_id}/devices?limit=1000&offset={offset}")
            for execution in page["data"]:
                statuses[execution["thingName"]] = execution["status"]
            offset += len(page["data"])
            if not page["data"] or offset >= page["count"]:
                return statuses


def deploy_and_wait(
    cloud: Cloud, fleet: Fleet, workers: Sequence[Worker], version: str, rate: int, meter: CpuMeter
) -> Run:
    body = {
        "targetArn": fleet.group,
        "deploymentName": f"{fleet.group} {version}",
        "components": {COMPONENT: {"componentVersion": version}},
        "iotJobConfiguration": {"jobExecutionsRolloutConfig": {"maximumPerMinute": rate}},
    }
    with cloud.api() as api:
        meter.start()
        started = time.monotonic_ns()
        created = call(api, "POST", "/deployments", body)
        answered = time.monotonic_ns()
    timeout = run_timeout(len(fleet.identities), rate)
    answers = ask_all(workers, "report", created["iotJobId"], timeout=timeout)
    devices = [device for answer in answers for device in answer["devices"]]
    cpu = meter.stop()
    problems = []
    statuses = device_statuses(cloud, created["deploymentId"])
    wrong = {thing: status for thing, status in statuses.items() if status != "SUCCEEDED"}
    missing = len(fleet.identities) - len(statuses)
    if wrong or missing:
        problems.append(
            f"the API shows {len(wrong)} not SUCCEEDED {dict(list(wrong.items())[:3])}, {missing} missing"
        )
    for device in devices:
        if device["rejected"]:
            problems.append(f"{device['thing']}: the cloud rejected {device['rejected'][:2]}")
        if device["status"] != "SUCCEEDED":
            problems.append(f"{device['thing']}: {device['status'] or 'no final report seen'}")

    def last(key: str) -> float:
        values = [device[key] for device in devices if device[key] is not None]
        return (max(values) - started) / 1e9 if values else float("nan")

    succeeded = [device for device in devices if device["status"] == "SUCCEEDED"]
    per_device = [
        (device["finished"] - device["notified"]) / 1e9
        for device in succeeded
        if device["notified"] is not None
    ]
    return Run(
        devices=len(devices),
        seconds=last("finished"),
        succeeded=len(succeeded),
        notified_s=last("notified"),
        in_progress_s=last("in_progress"),
        device_s=median(per_device) if per_device else float("nan"),
        api_s=(answered - started) / 1e9,
        cpu_s=cpu,
        problems=problems,
    )


def traffic(workers: Sequence[Worker], name: str) -> dict[str, list[int]]:
    """Each device's messages published and received so far, by thing."""
    return {thing: counts for answer in ask_all(workers, "count", name) for thing, counts in answer.items()}


def with_traffic(run: Run, before: dict[str, list[int]], after: dict[str, list[int]]) -> Run:
    """``run`` with the median device's messages published and received between ``before`` and ``after``."""
    requests = [after[thing][0] - before[thing][0] for thing in after]
    messages = [after[thing][1] - before[thing][1] for thing in after]
    return dataclasses.replace(run, requests=median(requests), messages=median(messages))


@contextmanager
def connected_publisher(cloud: Cloud, identity: Identity) -> Iterator[paho.Client]:
    client = tls_client(
        identity.thing, str(cloud.ca_file), str(identity.certificate), str(identity.private_key)
    )
    connected = threading.Event()
    reasons: list[ReasonCode] = []

    def on_connect(_c: paho.Client, _u: object, _f: object, reason: ReasonCode, _p: object) -> None:
        reasons.append(reason)
        connected.set()

    client.on_connect = on_connect
    client.connect_async(cloud.mqtt_host, cloud.mqtt_port, keepalive=120)
    client.loop_start()
    try:
        if not connected.wait(60) or reasons[0].is_failure:
            raise RuntimeError(f"the baseline's publisher could not connect: {reasons}")
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def publish_and_wait(
    publisher: paho.Client, workers: Sequence[Worker], sequence: int, meter: CpuMeter
) -> Run:
    meter.start()
    started = time.monotonic_ns()
    publisher.publish(BASELINE_TOPIC, str(sequence).encode(), qos=1)
    received = [time for answer in ask_all(workers, "report", str(sequence)) for time in answer["received"]]
    cpu = meter.stop()
    arrived = [time for time in received if time is not None]
    problems = (
        [f"{len(received) - len(arrived)} subscriber(s) got nothing"] if len(arrived) < len(received) else []
    )
    return Run(
        devices=len(received),
        seconds=(max(arrived) - started) / 1e9 if arrived else float("nan"),
        succeeded=len(arrived),
        cpu_s=cpu,
        problems=problems,
    )


def worker_specs(cloud: Cloud, fleet: Fleet, per_process: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "host": cloud.mqtt_host,
            "port": cloud.mqtt_port,
            "ca": str(cloud.ca_file),
            "devices": [[i.thing, str(i.certificate), str(i.private_key)] for i in part],
            "setup_timeout": setup_timeout(len(fleet.identities)),
            **extra,
        }
        for part in split(fleet.identities, per_process)
    ]


@dataclass
class Results:
    database: str  #: sqlite or postgresql
    first: dict[Key, Run] = field(default_factory=dict)  #: the first deployment to fresh devices
    deployments: dict[Key, list[Run]] = field(default_factory=dict)  #: the later ones, timed
    rates: dict[tuple[int, int, int], Run] = field(default_factory=dict)  #: at other rates, by (N, P, rate)
    baselines: dict[Key, list[Run]] = field(default_factory=dict)
    setup_s: dict[Key, float] = field(default_factory=dict)


def measure(
    cloud: Cloud,
    database: Database | None,
    fleet: Fleet,
    versions: Sequence[str],
    rates: Sequence[int],
    args: argparse.Namespace,
    results: Results,
    key: Key,
) -> None:
    """The baseline publishes, then the deployments, to the fleet's N devices: the first one, ``--repeat``
    timed ones at ``--rate``, then one at each of ``rates``; each a new version."""
    n = len(fleet.identities)
    sources = cloud_cpu(cloud, database)
    with start_workers(
        "subscribers", worker_specs(cloud, fleet, args.per_process), fleet.directory
    ) as workers:
        meter = CpuMeter({**sources, "devices": workers_cpu(workers)})
        with connected_publisher(cloud, fleet.publisher) as publisher:
            wait_quiet(sources.values())
            for sequence in range(args.repeat):
                run = publish_and_wait(publisher, workers, sequence, meter)
                results.baselines.setdefault(key, []).append(run)
                print(
                    f"  N={n} P={key[1]} baseline: {run.succeeded}/{run.devices} received in "
                    f"{run.seconds * 1e3:.1f} ms",
                    flush=True,
                )
    started = time.monotonic()
    # The cloud's timestamps may be whole seconds.
    since = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    specs = worker_specs(cloud, fleet, args.per_process, threads=args.threads)
    plan = [args.rate] * (args.repeat + 1) + list(rates)
    runs: list[Run] = []
    counts: list[dict[str, list[int]]] = []
    with start_workers("agents", specs, fleet.directory) as workers:
        wait_connected(cloud, [identity.thing for identity in fleet.identities], since, setup_timeout(n))
        results.setup_s[key] = time.monotonic() - started
        rss_mib = sum(memory_kib(worker.process.pid)[0] for worker in workers) / 1024
        print(
            f"  N={n} P={key[1]}: {n} device agents started and online in {results.setup_s[key]:.1f} s "
            f"({len(workers)} processes, {rss_mib:,.0f} MiB RSS in all)",
            flush=True,
        )
        meter = CpuMeter({**sources, "devices": workers_cpu(workers)})
        for index, (version, rate) in enumerate(zip(versions, plan, strict=False)):
            wait_quiet(sources.values())
            counts.append(traffic(workers, f"before-{index}"))
            run = deploy_and_wait(cloud, fleet, workers, version, rate, meter)
            runs.append(run)
            print(
                f"  N={n} P={key[1]} {'first ' if index == 0 else ''}deployment of {version} at {rate}/min: "
                f"{run.succeeded}/{run.devices} SUCCEEDED in {run.seconds:.2f} s "
                f"(last notified at {run.notified_s:.2f} s)",
                flush=True,
            )
            for problem in run.problems[:10]:
                print(f"    problem: {problem}")
        # What the devices send and receive after their SUCCEEDED (fleet status, the notification that the
        # job left their pending list, what they ask then) still belongs to the last deployment.
        wait_quiet(sources.values())
        counts.append(traffic(workers, "after"))
    for index, (run, rate) in enumerate(zip(runs, plan, strict=False)):
        counted = with_traffic(run, counts[index], counts[index + 1])
        if index == 0:
            results.first[key] = counted
        elif index <= args.repeat:
            results.deployments.setdefault(key, []).append(counted)
        else:
            results.rates[(*key, rate)] = counted


def _median_run(runs: list[Run]) -> Run:
    """The run with the median time (the lower middle one for an even count)."""
    return sorted(runs, key=lambda run: run.seconds)[(len(runs) - 1) // 2]


def slope(points: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares fit ``seconds = a + b * N``; returns (a, b)."""
    if len({n for n, _ in points}) < 2:
        return float("nan"), float("nan")
    fit = statistics.linear_regression([float(n) for n, _ in points], [s for _, s in points])
    return fit.intercept, fit.slope


def report(results: Results, args: argparse.Namespace) -> None:
    times, breakdown = [], []
    for key in sorted(results.deployments):
        n, processes = key
        runs = results.deployments[key]
        shown = _median_run(runs)
        baseline = _median_run(results.baselines[key])
        cpu = {name: median([run.cpu_s[name] for run in runs]) for name in shown.cpu_s}
        times.append(
            [
                str(n),
                str(processes),
                results.database,
                f"{shown.succeeded}/{shown.devices}",
                f"{shown.seconds:.2f}",
                f"{baseline.seconds * 1e3:.1f}",
                f"{shown.seconds / baseline.seconds:,.0f}" if baseline.seconds else "n/a",
                f"{cpu['cloud'] / n * 1e3:.1f}",
                f"{cpu['db'] / n * 1e3:.1f}" if "db" in cpu else "(in cloud)",
                f"{cpu['devices'] / n * 1e3:.1f}",
                f"{shown.requests:g}",
                f"{shown.messages:g}",
            ]
        )
        breakdown.append(
            [
                str(n),
                str(processes),
                ", ".join(f"{run.seconds:.2f}" for run in runs),
                f"{results.first[key].seconds:.2f}",
                f"{shown.api_s * 1e3:.0f}",
                f"{shown.notified_s:.2f}",
                f"{shown.in_progress_s:.2f}",
                f"{shown.device_s:.2f}",
                f"{cpu['mosquitto'] / n * 1e3:.1f}",
                f"{sum(cpu.values()) / median([run.seconds for run in runs]):.2f}",
            ]
        )
    print()
    print(
        f"Deployment (maximumPerMinute {args.rate}) until all N devices SUCCEEDED with P cloud processes, beside "
        "one QoS 1 publish to N subscribers (median of the runs after the first; CPU and messages per device)"
    )
    print_table(
        [
            "N",
            "P",
            "db",
            "succeeded",
            "deployment s",
            "baseline ms",
            "ratio",
            "cloud CPU ms/device",
            "db CPU ms/device",
            "agents CPU ms/device",
            "requests/device",
            "messages/device",
        ],
        times,
    )
    print()
    print("Where the time goes (the same median runs; seconds from POST /deployments)")
    print_table(
        [
            "N",
            "P",
            "all runs s",
            "first deployment s",
            "POST ms",
            "last notified s",
            "last IN_PROGRESS s",
            "notified→SUCCEEDED s (median device)",
            "Mosquitto CPU ms/device",
            "cores busy",
        ],
        breakdown,
    )
    if results.rates:
        print()
        print("Other rollout rates (one deployment each, after the timed runs)")
        print_table(
            [
                "N",
                "P",
                "maximumPerMinute",
                "succeeded",
                "deployment s",
                "last notified s",
                f"at {args.rate}/min s",
            ],
            [
                [
                    str(n),
                    str(processes),
                    str(rate),
                    f"{run.succeeded}/{run.devices}",
                    f"{run.seconds:.2f}",
                    f"{run.notified_s:.2f}",
                    f"{_median_run(results.deployments[n, processes]).seconds:.2f}",
                ]
                for (n, processes, rate), run in sorted(results.rates.items())
            ],
        )
    print()
    for processes in sorted({processes for _, processes in results.deployments}):
        deployments = {n: runs for (n, p), runs in results.deployments.items() if p == processes}
        points = [(n, run.seconds) for n, runs in deployments.items() for run in runs]
        base_points = [
            (n, run.seconds) for (n, p), runs in results.baselines.items() if p == processes for run in runs
        ]
        intercept, per_device = slope(points)
        base_intercept, base_per_device = slope(base_points)
        print(
            f"Growth (least squares over every run): deployment {intercept:.2f} s + {per_device * 1e3:.1f} ms x N; "
            f"baseline {base_intercept * 1e3:.1f} ms + {base_per_device * 1e6:.1f} µs x N "
            f"({processes} cloud process{'es' if processes > 1 else ''})"
        )
        for smaller, larger in itertools.pairwise(sorted(deployments)):
            a = _median_run(deployments[smaller]).seconds
            b = _median_run(deployments[larger]).seconds
            print(f"  N {smaller} -> {larger} ({larger / smaller:g}x devices): {b / a:.1f}x the time")
    for (n, processes), seconds in sorted(results.setup_s.items()):
        print(f"  setup, N={n} P={processes}: {seconds:.1f} s to start the agents and see them online")


def enough_open_files(devices: int) -> None:
    """Mosquitto, started below us, holds a descriptor per connected device: raise our soft limit (which it
    inherits) towards the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = devices + 1024
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            raise SystemExit(f"{devices} devices need {wanted} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--devices", type=int, nargs="+", default=[10, 100, 1000], help="group sizes (10 100 1000)"
    )
    parser.add_argument(
        "--cloud-processes",
        type=int,
        nargs="+",
        default=[1],
        help="run everything with the cloud in each of these numbers of processes (`cloud up --workers`; 1)",
    )
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgresql"],
        help="the cloud's database (default: postgresql when --cloud-processes has a count other than 1, "
        "else sqlite)",
    )
    parser.add_argument(
        "--per-process",
        type=int,
        default=100,
        help="most devices in one worker process (100; paho-mqtt's select() cannot watch the descriptors of "
        "more than about 140 device agents)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="deployments (and baseline publishes) per size (3)"
    )
    parser.add_argument(
        "--rate",
        type=int,
        default=1000,
        help="the rollout's maximumPerMinute, 1-1000 (1000, the AWS maximum)",
    )
    parser.add_argument(
        "--extra-rates",
        type=int,
        nargs="*",
        default=[500],
        help="after the timed runs, one more deployment to the largest group at each of these maximumPerMinute "
        "(500), to show the rollout's one-minute windows",
    )
    parser.add_argument("--threads", type=int, default=32, help="thread pool of each agents worker (32)")
    parser.add_argument(
        "--enroll-threads",
        type=int,
        default=8,
        help="concurrent API clients enrolling the devices (thing, certificate, group membership; 8)",
    )
    args = parse_args(
        parser,
        argv,
        quick={"devices": [2, 4], "repeat": 1, "extra_rates": [], "threads": 2, "enroll_threads": 2},
    )
    numbers = [*args.devices, *args.cloud_processes, args.per_process, args.repeat, args.threads]
    if min(*numbers, args.enroll_threads) < 1 or not all(
        1 <= rate <= 1000 for rate in [args.rate, *args.extra_rates]
    ):
        parser.error(
            "--devices, --cloud-processes, --per-process, --repeat, --threads and --enroll-threads must be "
            "positive; rates 1-1000"
        )
    database = args.database or ("sqlite" if set(args.cloud_processes) == {1} else "postgresql")
    if database == "sqlite" and set(args.cloud_processes) != {1}:
        parser.error("--cloud-processes other than 1 need --database postgresql: SQLite serves one process")
    exit_on_sigterm()
    enough_open_files(max(args.devices))

    print(
        f"== fleet deployment fan-out to {', '.join(map(str, args.devices))} devices, {args.repeat} runs each, "
        f"the cloud in {', '.join(map(str, args.cloud_processes))} process(es) on {database} =="
    )
    print_machine()
    results = Results(database)
    per_cloud = args.repeat + 1 + len(args.extra_rates)
    ports = CloudPorts.free()
    identities: dict[int, list[Identity]] = {}
    with ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edgewise-bench-fanout-")))
        postgres = None
        if database == "postgresql":
            # Imported only here: it puts the repository's root on sys.path for the tests' PostgreSQL server.
            from _postgres import postgres_database

            postgres = stack.enter_context(postgres_database("edgewise"))
        for index, processes in enumerate(args.cloud_processes):
            with cloud_up(
                directory / "data",
                ports,
                database_url=postgres.url if postgres is not None else None,
                workers=processes,
            ) as cloud:
                if index == 0:
                    with cloud.api() as api:
                        call(
                            api,
                            "POST",
                            "/policies",
                            {"policyName": POLICY, "policyDocument": json.dumps(benchmark_policy())},
                        )
                        publisher, certificate_id = issue(api, PUBLISHER, directory)
                        call(api, "PUT", f"/policies/{POLICY}/targets/certificates/{certificate_id}")
                    versions = publish_versions(cloud, per_cloud * len(args.cloud_processes))
                mine = versions[index * per_cloud : (index + 1) * per_cloud]
                for n in args.devices:
                    folder = directory / f"n{n}"
                    if n not in identities:
                        started = time.monotonic()
                        (folder / "pki").mkdir(parents=True)
                        identities[n] = enroll_group(
                            cloud, f"fanout-{n}", n, folder / "pki", threads=args.enroll_threads
                        )
                        wait_authorized(cloud, sum(map(len, identities.values())) + 1)
                        print(
                            f"  N={n}: {n} things with certificates in a new group in "
                            f"{time.monotonic() - started:.1f} s",
                            flush=True,
                        )
                    rates = args.extra_rates if n == max(args.devices) else []
                    fleet = Fleet(f"fanout-{n}", identities[n], publisher, folder / f"p{processes}")
                    measure(cloud, postgres, fleet, mine, rates, args, results, (n, processes))
                    # Thousands of device roots: the next process count starts the devices on new ones.
                    shutil.rmtree(fleet.directory)
    report(results, args)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "agents":
        asyncio.run(run_agents(Path(sys.argv[2])))
    elif len(sys.argv) == 3 and sys.argv[1] == "subscribers":
        run_subscribers(Path(sys.argv[2]))
    else:
        run_main(main)

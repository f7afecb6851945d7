"""A test-side stand-in for the cloud side of docs/device-protocol.md: the jobs service (namespaced deployment
jobs), the component resolve responder, and an HTTPS artifact server with Range support.

It speaks the protocol over a real paho client on the test Mosquitto, the way the cloud's workers will; the
artifact server is stdlib ``http.server`` with a server certificate from the test CA.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgewise.versions import Requirement, Version
from tests.support.mosquitto import HOST, Mosquitto
from tests.support.pki import CredentialIssuer
from tests.support.waiting import wait_until

NAMESPACE = "aws-gg-deployment"
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "REJECTED", "REMOVED", "CANCELED")


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class ArtifactServer:
    """HTTPS on localhost serving ``/artifacts/<name>`` from memory, with ``Range: bytes=N-``.

    ``drop_once`` names artifacts whose first download is cut off half way (the connection is shut down);
    ``requests`` records (name, Range header) of every GET.
    """

    def __init__(self, ca: CredentialIssuer) -> None:
        self.files: dict[str, bytes] = {}
        self.drop_once: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        server_credentials = ca.issue("artifacts-localhost", server=True)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(server_credentials.certificate), str(server_credentials.private_key))
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                name = self.path.split("?")[0].rsplit("/", 1)[-1]
                owner.requests.append((name, self.headers.get("Range")))
                body = owner.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                ranged = self.headers.get("Range")
                if ranged and ranged.startswith("bytes=") and ranged.endswith("-"):
                    start = int(ranged[len("bytes=") : -1])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if name in owner.drop_once:
                    owner.drop_once.discard(name)
                    self.wfile.write(body[start : start + (len(body) - start) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> ArtifactServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, name: str) -> str:
        return f"https://{HOST}:{self.port}/artifacts/{name}?expires=4102444800&signature=test"


@dataclass
class Job:
    job_id: str
    document: dict[str, Any]
    status: str = "QUEUED"
    version: int = 1
    execution_number: int = 1
    queued_at: float = field(default_factory=time.time)
    status_details: dict[str, str] = field(default_factory=dict)
    updates: list[dict[str, Any]] = field(default_factory=list)  #: every update request the device sent

    def execution(self, thing: str) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "thingName": thing,
            "jobDocument": self.document,
            "status": self.status,
            "statusDetails": self.status_details,
            "queuedAt": int(self.queued_at),
            "lastUpdatedAt": int(time.time()),
            "versionNumber": self.version,
            "executionNumber": self.execution_number,
        }


@dataclass
class Published:
    recipe: dict[str, Any]
    artifacts: dict[str, dict[str, Any]]  #: by Uri: url, size, digest


class FleetCloud:
    """Plays the cloud for one thing. Thread-safe; its paho client (re)subscribes on every connection."""

    def __init__(self, broker: Mosquitto, thing: str, artifacts: ArtifactServer) -> None:
        self.thing = thing
        self.artifacts = artifacts
        self.jobs: dict[str, Job] = {}
        self.components: dict[str, dict[str, Published]] = {}
        self.resolve_requests: list[dict[str, Any]] = []
        self.described: list[str] = []  #: job ids of the describe requests answered, in order
        #: What each start-next request got: the job id started (or still in progress), None for nothing pending.
        self.started: list[str | None] = []
        self.errors: list[str] = []  #: requests the stand-in could not handle (a test fails on any)
        self.answer_resolve = threading.Event()
        #: How many final (terminal) reports to lose, as a broker restart racing the cloud's subscription would.
        self.lose_final_reports = 0
        self.lost_reports: list[dict[str, Any]] = []
        self.answer_resolve.set()
        self.lock = threading.RLock()
        self.prefix = f"$aws/things/{thing}/jobs"
        credentials = broker.ca.issue("edgewise-cloud")
        self.client = client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="edgewise-cloud", protocol=MQTTProtocolVersion.MQTTv5
        )
        client.tls_set(str(credentials.ca), str(credentials.certificate), str(credentials.private_key))
        client.reconnect_delay_set(0.1, 0.5)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        self._connected = threading.Event()
        client.on_disconnect = lambda *args: self._connected.clear()
        client.connect(HOST, broker.port, keepalive=10)
        client.loop_start()
        if not self._connected.wait(20):
            raise AssertionError("the cloud stand-in did not connect")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def wait_connected(self) -> None:
        if not self._connected.wait(30):
            raise AssertionError("the cloud stand-in did not reconnect")

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            return
        client.subscribe(f"{self.prefix}/namespace-{NAMESPACE}/start-next", qos=1)
        client.subscribe(f"{self.prefix}/+/namespace-{NAMESPACE}/get", qos=1)
        client.subscribe(f"{self.prefix}/+/namespace-{NAMESPACE}/update", qos=1)
        client.subscribe(f"$aws/things/{self.thing}/edgewise/components/resolve", qos=1)
        self._connected.set()

    # -- the operator's side ------------------------------------------------------------------------

    def publish_component(
        self, recipe: dict[str, Any], files: dict[str, bytes], *, served: dict[str, bytes] | None = None
    ) -> None:
        """Publish a component version: artifact digests go into the recipe, files onto the artifact server
        (``served`` replaces what the server actually sends, to tamper with a file)."""
        recipe = json.loads(json.dumps(recipe))
        sources = {}
        for manifest in recipe.get("Manifests", []):
            for artifact in manifest.get("Artifacts", []):
                uri = artifact["Uri"]
                name = uri.rsplit("/", 1)[-1]
                data = files[name]
                digest = sha256_b64(data)
                artifact["Digest"] = digest
                artifact["Algorithm"] = "SHA-256"
                stored = f"{recipe['ComponentName']}-{recipe['ComponentVersion']}-{name}"
                self.artifacts.files[stored] = (served or {}).get(name, data)
                sources[uri] = {"url": self.artifacts.url(stored), "size": len(data), "digest": digest}
        with self.lock:
            versions = self.components.setdefault(recipe["ComponentName"], {})
            versions[recipe["ComponentVersion"]] = Published(recipe, sources)

    def deploy(
        self, job_id: str, components: dict[str, str], *, group: str = "fleet", **document: Any
    ) -> Job:
        """Queue a deployment job for the thing, as the rollout engine would, and notify it."""
        body = {
            "schemaDate": "2021-05-17",
            "deploymentId": f"deployment-{job_id}",
            "deploymentName": job_id,
            "configurationArn": f"arn:aws:greengrass:edgewise:edgewise:configuration:thinggroup/{group}:1",
            "creationTimestamp": int(time.time() * 1000),
            "components": {name: {"version": version} for name, version in components.items()},
            "failureHandlingPolicy": "ROLLBACK",
            "componentUpdatePolicy": {"timeout": 5, "action": "NOTIFY_COMPONENTS"},
            "configurationValidationPolicy": {"timeout": 5},
            **document,
        }
        with self.lock:
            job = self.jobs[job_id] = Job(job_id, body)
        self._notify()
        return job

    def nudge(self) -> None:
        """Notify the thing of a pending job that is gone by the time it asks: an idle device answers with one
        start-next, which marks where what it sent before ends."""
        self._publish(
            f"{self.prefix}/notify-namespace-{NAMESPACE}",
            {"timestamp": int(time.time()), "jobs": {"QUEUED": [{"jobId": "gone", "queuedAt": 1}]}},
        )

    def cancel(self, job_id: str) -> None:
        with self.lock:
            self.jobs[job_id].status = "CANCELED"
        self._notify()

    def wait_status(self, job_id: str, status: str, timeout: float = 60) -> Job:
        def reached() -> Job | None:
            with self.lock:
                job = self.jobs[job_id]
                return job if job.status == status else None

        try:
            return wait_until(reached, timeout=timeout, what=f"job {job_id} {status}")
        except AssertionError as exc:
            job = self.jobs[job_id]
            raise AssertionError(
                f"{exc}; it is {job.status} after {job.updates}; errors: {self.errors}"
            ) from None

    # -- the jobs service ---------------------------------------------------------------------------

    def _publish(self, topic: str, body: dict[str, Any]) -> None:
        self.client.publish(topic, json.dumps(body), qos=1)

    def _notify(self) -> None:
        with self.lock:
            pending: dict[str, list[dict[str, Any]]] = {}
            for status in ("IN_PROGRESS", "QUEUED"):
                summaries = [
                    {
                        "jobId": job.job_id,
                        "queuedAt": int(job.queued_at),
                        "versionNumber": job.version,
                        "executionNumber": job.execution_number,
                    }
                    for job in sorted(self.jobs.values(), key=lambda job: job.queued_at)
                    if job.status == status
                ]
                if summaries:
                    pending[status] = summaries
        self._publish(
            f"{self.prefix}/notify-namespace-{NAMESPACE}", {"timestamp": int(time.time()), "jobs": pending}
        )

    def _next(self) -> Job | None:
        for status in ("IN_PROGRESS", "QUEUED"):
            for job in sorted(self.jobs.values(), key=lambda job: job.queued_at):
                if job.status == status:
                    return job
        return None

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            self._handle(message)
        except Exception as exc:  # paho's thread would die with it; the test reports it instead
            self.errors.append(f"{message.topic}: {exc!r}")

    def _handle(self, message: paho.MQTTMessage) -> None:
        body = json.loads(message.payload)
        if message.topic.endswith("/components/resolve"):
            threading.Thread(target=self._resolve, args=(message.topic, body), daemon=True).start()
            return
        reply = f"{message.topic}"
        token = body.get("clientToken")
        if message.topic.endswith("/start-next"):
            self._start_next(reply, token)
            return
        parts = message.topic[len(self.prefix) + 1 :].split("/")
        job_id, operation = parts[0], parts[2]
        with self.lock:
            job = self._next() if job_id == "$next" else self.jobs.get(job_id)
            if operation == "get":
                if job is None and job_id != "$next":
                    self._reject(reply, token, "ResourceNotFound", f"no job {job_id}")
                    return
                answer: dict[str, Any] = {"timestamp": int(time.time()), "clientToken": token}
                if job is not None:
                    answer["execution"] = job.execution(self.thing)
                self._publish(f"{reply}/accepted", answer)
                self.described.append(job_id)
                return
            if job is None:
                self._reject(reply, token, "ResourceNotFound", f"no job {job_id}")
                return
            if self.lose_final_reports and body.get("status") in TERMINAL:
                self.lose_final_reports -= 1
                self.lost_reports.append(body)
                return
            job.updates.append(body)
            if job.status in TERMINAL:
                self._reject(reply, token, "InvalidStateTransition", f"job {job_id} is {job.status}")
                return
            expected = body.get("expectedVersion")
            if expected is not None and expected != job.version:
                self._reject(reply, token, "VersionMismatch", f"version is {job.version}")
                return
            job.status = body["status"]
            job.version += 1
            if "statusDetails" in body:
                job.status_details = body["statusDetails"]
            self._publish(f"{reply}/accepted", {"timestamp": int(time.time()), "clientToken": token})
            terminal = job.status in TERMINAL
        if terminal:
            self._notify()

    def _start_next(self, topic: str, token: str | None) -> None:
        """StartNextPendingJobExecution: the next execution, moved to IN_PROGRESS if it was QUEUED."""
        with self.lock:
            job = self._next()
            answer: dict[str, Any] = {"timestamp": int(time.time()), "clientToken": token}
            if job is not None:
                if job.status == "QUEUED":
                    job.status = "IN_PROGRESS"
                    job.version += 1
                answer["execution"] = job.execution(self.thing)
            self.started.append(None if job is None else job.job_id)
            self._publish(f"{topic}/accepted", answer)

    def _reject(self, topic: str, token: str | None, code: str, text: str) -> None:
        self._publish(
            f"{topic}/rejected",
            {"clientToken": token, "timestamp": int(time.time()), "code": code, "message": text},
        )

    def _resolve(self, topic: str, body: dict[str, Any]) -> None:
        with self.lock:
            self.resolve_requests.append(body)
        self.answer_resolve.wait()
        answer: dict[str, list[dict[str, Any]]] = {}
        with self.lock:
            for name, text in body["components"].items():
                requirement = Requirement.parse(text)
                versions = sorted(self.components.get(name, {}), key=Version.parse, reverse=True)
                answer[name] = [
                    {
                        "version": version,
                        "recipe": self.components[name][version].recipe,
                        "artifacts": self.components[name][version].artifacts,
                    }
                    for version in versions
                    if requirement.allows(version)
                ][:20]
        self._publish(
            f"{topic}/accepted",
            {"clientToken": body["clientToken"], "timestamp": int(time.time()), "components": answer},
        )


@contextmanager
def fleet_cloud(broker: Mosquitto, thing: str) -> Iterator[FleetCloud]:
    with ArtifactServer(broker.ca) as artifacts:
        cloud = FleetCloud(broker, thing, artifacts)
        try:
            yield cloud
        finally:
            cloud.close()
        assert not cloud.errors

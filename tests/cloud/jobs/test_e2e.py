"""Jobs end to end: a real ``edgewise cloud up``, devices bootstrapped through the API, and the unmodified
awsiotsdk ``iotjobs`` clients (v1 ``IotJobsClient`` over MQTT 3.1.1, ``IotJobsClientV2`` over MQTT 5), both
over mutual TLS; the namespaced topics with a plain paho client."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from awscrt import mqtt, mqtt_request_response  # type: ignore[import-untyped]
from awsiot import (  # type: ignore[import-untyped]
    ServiceStreamOptions,
    V2ServiceException,
    iotjobs,
    mqtt5_client_builder,
    mqtt_connection_builder,
)
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from typer.testing import CliRunner

from edgewise.cli.main import app
from tests.support.cloud_process import CloudProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

QOS = mqtt.QoS.AT_LEAST_ONCE
DEADLINE = 20


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("jobs") / "data") as process:
        yield process.wait_ready()


def bootstrap(cloud: CloudProcess, thing: str, directory: Path) -> Path:
    """Register ``thing`` with a certificate and the default policy; the directory with its files."""
    env = {"COLUMNS": "200", "EDGEWISE_API_TOKEN": None, "EDGEWISE_API_URL": None}
    result = CliRunner().invoke(
        app,
        ["device", "bootstrap", "--data", str(cloud.data_dir), "--thing", thing, "--out", str(directory)],
        env=env,
    )
    assert result.exit_code == 0, result.stderr
    return directory


def create_job(cloud: CloudProcess, job_id: str, thing: str, **fields: Any) -> dict[str, Any]:
    body = {
        "jobId": job_id,
        "targets": [thing],
        "document": {"operation": "firmware", "version": "2.0"},
        **fields,
    }
    with cloud.api(cloud.admin_token) as api:
        response = api.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def job_status(cloud: CloudProcess, job_id: str) -> str:
    with cloud.api(cloud.admin_token) as api:
        status: str = api.get(f"/jobs/{job_id}").json()["status"]
        return status


class Inbox:
    """What the awsiotsdk callbacks receive, by name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: dict[str, list[Any]] = {}

    def callback(self, name: str) -> Any:
        def receive(item: Any) -> None:
            with self._lock:
                self.items.setdefault(name, []).append(item)

        return receive

    def take(self, name: str, what: str | None = None) -> Any:
        """The oldest item received as ``name``, waiting for one."""

        def first() -> list[Any]:
            with self._lock:
                return self.items.get(name, [])[:1]

        [item] = wait_until(first, timeout=DEADLINE, what=what or name)
        with self._lock:
            self.items[name].pop(0)
        return item


def test_a_device_with_the_v1_iotjobs_client_runs_a_custom_job(cloud: CloudProcess, tmp_path: Path) -> None:
    files = bootstrap(cloud, "jobs-v1", tmp_path)
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost",
        port=cloud.mqtt_port,
        cert_filepath=str(files / "device.pem.crt"),
        pri_key_filepath=str(files / "private.pem.key"),
        ca_filepath=str(files / "root-ca.pem"),
        client_id="jobs-v1",
        clean_session=True,
        keep_alive_secs=30,
    )
    connection.connect().result(DEADLINE)
    try:
        jobs = iotjobs.IotJobsClient(connection)
        inbox = Inbox()
        thing = {"thing_name": "jobs-v1"}
        subscriptions = [
            jobs.subscribe_to_next_job_execution_changed_events(
                iotjobs.NextJobExecutionChangedSubscriptionRequest(**thing), QOS, inbox.callback("next")
            ),
            jobs.subscribe_to_get_pending_job_executions_accepted(
                iotjobs.GetPendingJobExecutionsSubscriptionRequest(**thing), QOS, inbox.callback("pending")
            ),
            jobs.subscribe_to_start_next_pending_job_execution_accepted(
                iotjobs.StartNextPendingJobExecutionSubscriptionRequest(**thing),
                QOS,
                inbox.callback("started"),
            ),
        ]
        for job_id in ("fw-v1", "other-v1"):
            update = iotjobs.UpdateJobExecutionSubscriptionRequest(job_id=job_id, **thing)
            subscriptions.append(
                jobs.subscribe_to_update_job_execution_accepted(update, QOS, inbox.callback("updated"))
            )
            subscriptions.append(
                jobs.subscribe_to_update_job_execution_rejected(update, QOS, inbox.callback("refused"))
            )
        for future, _ in subscriptions:
            future.result(DEADLINE)

        def answered() -> bool:
            # The device's ACL entry reaches the broker shortly after bootstrap; ask until it does.
            jobs.publish_get_pending_job_executions(
                iotjobs.GetPendingJobExecutionsRequest(client_token="warm-up", **thing), QOS
            ).result(DEADLINE)
            return wait_until(lambda: bool(inbox.items.get("pending")), timeout=1, what="pending") or True

        wait_until(
            lambda: _quietly(answered), timeout=DEADLINE, what="the first GetPendingJobExecutions reply"
        )
        assert inbox.take("pending").queued_jobs == []

        create_job(cloud, "fw-v1", "jobs-v1")
        announced = inbox.take("next", "the NextJobExecutionChanged event").execution
        assert (announced.job_id, announced.status, announced.job_document) == (
            "fw-v1",
            "QUEUED",
            {"operation": "firmware", "version": "2.0"},
        )
        jobs.publish_start_next_pending_job_execution(
            iotjobs.StartNextPendingJobExecutionRequest(
                client_token="s1", step_timeout_in_minutes=5, **thing
            ),
            QOS,
        ).result(DEADLINE)
        started = inbox.take("started")
        assert (started.client_token, started.execution.status, started.execution.version_number) == (
            "s1",
            "IN_PROGRESS",
            2,
        )
        for status, details in (("IN_PROGRESS", {"progress": "50%"}), ("SUCCEEDED", {"progress": "100%"})):
            jobs.publish_update_job_execution(
                iotjobs.UpdateJobExecutionRequest(
                    job_id="fw-v1",
                    status=status,
                    status_details=details,
                    include_job_execution_state=True,
                    client_token=status,
                    **thing,
                ),
                QOS,
            ).result(DEADLINE)
            updated = inbox.take("updated")
            assert (updated.client_token, updated.execution_state.status) == (status, status)
            assert updated.execution_state.status_details == details
        assert inbox.take("next", "the event that nothing is pending").execution is None
        wait_until(
            lambda: job_status(cloud, "fw-v1") == "COMPLETED", timeout=DEADLINE, what="the job to complete"
        )

        jobs.publish_update_job_execution(
            iotjobs.UpdateJobExecutionRequest(job_id="fw-v1", status="FAILED", client_token="late", **thing),
            QOS,
        ).result(DEADLINE)
        refused = inbox.take("refused")
        assert (refused.code, refused.client_token, refused.execution_state.status) == (
            "InvalidStateTransition",
            "late",
            "SUCCEEDED",
        )
        create_job(cloud, "other-v1", "jobs-v1")
        jobs.publish_update_job_execution(
            iotjobs.UpdateJobExecutionRequest(
                job_id="other-v1", status="IN_PROGRESS", expected_version=9, client_token="stale", **thing
            ),
            QOS,
        ).result(DEADLINE)
        refused = inbox.take("refused")
        assert (refused.code, refused.client_token, refused.execution_state.version_number) == (
            "VersionMismatch",
            "stale",
            1,
        )
    finally:
        connection.disconnect().result(DEADLINE)


def _quietly(check: Any) -> bool:
    try:
        return bool(check())
    except AssertionError:
        return False


def test_a_device_with_the_v2_iotjobs_client_over_mqtt5_runs_a_custom_job(
    cloud: CloudProcess, tmp_path: Path
) -> None:
    files = bootstrap(cloud, "jobs-v2", tmp_path)
    connected = threading.Event()
    stopped = threading.Event()
    client = mqtt5_client_builder.mtls_from_path(
        endpoint="localhost",
        port=cloud.mqtt_port,
        cert_filepath=str(files / "device.pem.crt"),
        pri_key_filepath=str(files / "private.pem.key"),
        ca_filepath=str(files / "root-ca.pem"),
        client_id="jobs-v2",
        on_lifecycle_connection_success=lambda _data: connected.set(),
        on_lifecycle_stopped=lambda _data: stopped.set(),
    )
    client.start()
    try:
        assert connected.wait(DEADLINE)
        jobs = iotjobs.IotJobsClientV2(
            client,
            mqtt_request_response.ClientOptions(
                max_request_response_subscriptions=4,
                max_streaming_subscriptions=2,
                operation_timeout_in_seconds=5,
            ),
        )
        inbox = Inbox()
        stream = jobs.create_next_job_execution_changed_stream(
            iotjobs.NextJobExecutionChangedSubscriptionRequest(thing_name="jobs-v2"),
            ServiceStreamOptions(incoming_event_listener=inbox.callback("next")),
        )
        stream.open()

        def pending() -> Any:
            try:
                return jobs.get_pending_job_executions(
                    iotjobs.GetPendingJobExecutionsRequest(thing_name="jobs-v2")
                ).result(DEADLINE)
            except V2ServiceException:
                return None  # the device's ACL entry is still on its way to the broker

        assert wait_until(pending, timeout=3 * DEADLINE, what="GetPendingJobExecutions").queued_jobs == []
        create_job(cloud, "fw-v2", "jobs-v2", document={"operation": "reboot"})
        event = inbox.take("next", "the NextJobExecutionChanged event")
        assert (event.execution.job_id, event.execution.job_document) == ("fw-v2", {"operation": "reboot"})

        started = jobs.start_next_pending_job_execution(
            iotjobs.StartNextPendingJobExecutionRequest(thing_name="jobs-v2")
        ).result(DEADLINE)
        assert (started.execution.job_id, started.execution.status) == ("fw-v2", "IN_PROGRESS")
        described = jobs.describe_job_execution(
            iotjobs.DescribeJobExecutionRequest(
                thing_name="jobs-v2", job_id="fw-v2", include_job_document=False
            )
        ).result(DEADLINE)
        assert (described.execution.status, described.execution.job_document) == ("IN_PROGRESS", None)
        updated = jobs.update_job_execution(
            iotjobs.UpdateJobExecutionRequest(
                thing_name="jobs-v2",
                job_id="fw-v2",
                status="SUCCEEDED",
                expected_version=2,
                include_job_execution_state=True,
            )
        ).result(DEADLINE)
        assert (updated.execution_state.status, updated.execution_state.version_number) == ("SUCCEEDED", 3)
        with pytest.raises(V2ServiceException) as caught:
            jobs.update_job_execution(
                iotjobs.UpdateJobExecutionRequest(thing_name="jobs-v2", job_id="fw-v2", status="FAILED")
            ).result(DEADLINE)
        assert caught.value.modeled_error.code == "InvalidStateTransition"
        with pytest.raises(V2ServiceException) as caught:
            jobs.describe_job_execution(
                iotjobs.DescribeJobExecutionRequest(thing_name="jobs-v2", job_id="nope")
            ).result(DEADLINE)
        assert caught.value.modeled_error.code == "ResourceNotFound"
    finally:
        client.stop()
        assert stopped.wait(DEADLINE)


def test_a_device_uses_the_namespaced_topics_greengrass_uses(cloud: CloudProcess, tmp_path: Path) -> None:
    files = bootstrap(cloud, "jobs-ns", tmp_path)
    prefix = "$aws/things/jobs-ns/jobs"
    received: list[tuple[str, dict[str, Any]]] = []
    subscribed = threading.Event()
    device = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="jobs-ns", protocol=MQTTProtocolVersion.MQTTv5
    )
    device.tls_set(str(files / "root-ca.pem"), str(files / "device.pem.crt"), str(files / "private.pem.key"))
    device.on_connect = lambda c, *_: c.subscribe(f"{prefix}/#", qos=1)
    device.on_subscribe = lambda *_: subscribed.set()
    device.on_message = lambda _c, _u, message: received.append((message.topic, json.loads(message.payload)))
    device.connect("localhost", cloud.mqtt_port, keepalive=30)
    device.loop_start()
    try:
        assert subscribed.wait(DEADLINE)

        def reply_to(topic: str, body: dict[str, Any]) -> dict[str, Any]:
            seen = len(received)
            device.publish(f"{prefix}/{topic}", json.dumps(body), qos=1)
            replies = wait_until(
                lambda: [
                    b
                    for t, b in received[seen:]
                    if t in (f"{prefix}/{topic}/accepted", f"{prefix}/{topic}/rejected")
                ],
                timeout=2,
                what=f"a reply to {topic}",
            )
            return replies[0]

        namespaced = "$next/namespace-aws-gg-deployment/get"
        wait_until(
            lambda: _quietly(lambda: reply_to(namespaced, {"clientToken": "w"})), timeout=DEADLINE, what="ACL"
        )
        create_job(
            cloud, "deploy-ns", "jobs-ns", namespaceId="aws-gg-deployment", targetSelection="CONTINUOUS"
        )
        notified = wait_until(
            lambda: [b for t, b in received if t == f"{prefix}/notify-namespace-aws-gg-deployment"],
            timeout=DEADLINE,
            what="the namespaced notify",
        )
        assert [summary["jobId"] for summary in notified[0]["jobs"]["QUEUED"]] == ["deploy-ns"]
        described = reply_to(namespaced, {"clientToken": "d1"})
        assert (described["clientToken"], described["execution"]["jobId"]) == ("d1", "deploy-ns")
        for status in ("IN_PROGRESS", "SUCCEEDED"):
            body = {
                "status": status,
                "statusDetails": {"detailed-deployment-status": "SUCCESSFUL"},
                "clientToken": status,
            }
            assert reply_to("deploy-ns/namespace-aws-gg-deployment/update", body)["clientToken"] == status
        assert reply_to("get", {})["queuedJobs"] == []
        assert not any(topic == f"{prefix}/notify-next" for topic, _ in received)
    finally:
        device.disconnect()
        device.loop_stop()

"""``edgewise cloud up --workers 2`` as a user runs it: a real cloud process on a throwaway PostgreSQL that starts
a second process, and devices (paho over mutual TLS, certificates from ``device bootstrap``) asking it things."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from typer.testing import CliRunner

from edgewise.cli.main import app
from edgewise.cloud.partition import Partition
from edgewise.protocol import resolve
from tests.cloud.broker.clients import TestClient
from tests.cloud.postgres import PostgresServer
from tests.support.cloud_process import CloudProcess, process_alive
from tests.support.pki import Credentials
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

THINGS = [f"fleet-{number}" for number in range(12)]
SECOND = Partition(1, 2)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer) -> Iterator[CloudProcess]:
    url = postgres.create_database("processes")
    data_dir = tmp_path_factory.mktemp("processes") / "data"
    with CloudProcess(data_dir, "--database-url", url, "--workers", "2", "--log-level", "DEBUG") as process:
        yield process.wait_ready()


class Device:
    """One thing's MQTT connection, counting the answers to its jobs and resolve requests by client token."""

    def __init__(self, cloud: CloudProcess, thing: str, directory: Path) -> None:
        result = CliRunner().invoke(
            app,
            ["device", "bootstrap", "--data", str(cloud.data_dir), "--thing", thing, "--out", str(directory)],
            env={"EDGEWISE_API_TOKEN": None, "EDGEWISE_API_URL": None},
        )
        assert result.exit_code == 0, result.output
        identity = Credentials(
            directory / "device.pem.crt", directory / "private.pem.key", directory / "root-ca.pem", 0
        )
        self.thing = thing
        self.client = TestClient(cloud.mqtt_port, thing, identity=identity)
        assert self.client.start(), f"{thing} was refused by the broker"
        self.client.subscribe(f"$aws/things/{thing}/jobs/get/+", f"{resolve.request_topic(thing)}/+")

    def ask(self, token: str) -> None:
        """Send a jobs and a resolve request, both with ``token``."""
        self.client.publish(f"$aws/things/{self.thing}/jobs/get", json.dumps({"clientToken": token}).encode())
        request = {"clientToken": token, "components": {"com.example.Missing": "*"}}
        self.client.publish(resolve.request_topic(self.thing), json.dumps(request).encode())

    def answers(self, token: str) -> list[str]:
        def token_of(message: paho.MQTTMessage) -> object:
            return json.loads(message.payload).get("clientToken")

        messages = list(self.client.messages)
        return [message.topic for message in messages if token_of(message) == token]

    def wait_answered(self, token: str) -> None:
        wait_until(
            lambda: len(self.answers(token)) >= 2,
            timeout=60,
            what=f"{self.thing}'s answers to {token}",
        )


def worker_process_pids(cloud: CloudProcess) -> list[int]:
    """The ``cloud worker`` processes ``cloud`` started."""
    pids = []
    for task in Path(f"/proc/{cloud.process.pid}/task").glob("*"):
        for child in (task / "children").read_text().split():
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if b"worker" in command and b"--process" in command and process_alive(int(child)):
                pids.append(int(child))
    return pids


def test_each_request_is_answered_once_by_the_process_owning_its_thing_and_a_killed_process_comes_back(
    cloud: CloudProcess, tmp_path: Path
) -> None:
    assert "Workers:        2 processes" in cloud.lines
    devices = [Device(cloud, thing, tmp_path / thing) for thing in THINGS]
    owned = [device for device in devices if SECOND.owns(device.thing)]
    assert owned
    assert len(owned) < len(devices)
    for device in devices:
        device.ask("first")
    for device in devices:
        device.wait_answered("first")
    # A barrier: once these are answered, a second answer to "first" from another process would be here too.
    for device in devices:
        device.ask("barrier")
    for device in devices:
        device.wait_answered("barrier")
    for device in devices:
        topics = sorted(device.answers("first"))
        assert topics == sorted(
            [
                f"$aws/things/{device.thing}/jobs/get/accepted",
                f"{resolve.reply_topic(device.thing, 'accepted')}",
            ]
        ), device.thing
        suffix = "-1" if SECOND.owns(device.thing) else ""
        for client, topic in (("jobs", "jobs/get"), ("components", "edgewise/components/resolve")):
            line = f"worker-message client=edgewise-{client}{suffix} topic=$aws/things/{device.thing}/{topic}"
            assert line in cloud.stderr, line

    [child] = worker_process_pids(cloud)
    subprocess.run(["kill", "-KILL", str(child)], check=True)
    wait_until(
        lambda: cloud.stderr.count("worker-process-ready process=1 pid=") == 2,
        what="the killed process to come back",
    )
    assert child not in worker_process_pids(cloud)
    for device in owned:
        device.ask("again")
    for device in owned:
        device.wait_answered("again")
    for device in devices:
        device.client.close()


def test_several_processes_on_sqlite_are_refused_and_nothing_starts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(app, ["cloud", "up", "--data", str(data_dir), "--workers", "2"])
    assert result.exit_code == 2, result.output
    assert "--workers: 2 processes need PostgreSQL" in result.stderr
    assert not data_dir.exists()


def test_a_worker_with_bad_settings_on_stdin_exits_naming_the_field(tmp_path: Path) -> None:
    settings = json.dumps({"databaseUrl": "sqlite:///x.db", "broker": {"host": "h", "port": 1}})
    result = CliRunner().invoke(
        app,
        ["cloud", "worker", "--data", str(tmp_path), "--process", "1", "--processes", "2"],
        input=settings + "\n",
    )
    assert result.exit_code == 1, result.output
    assert "'databaseUrl'" in result.stderr

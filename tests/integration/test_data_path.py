"""The data path from a component to the cloud store with nothing faked, and counted chaos on it.

A real ``edgewise cloud up``, a runtime enrolled to it with ``edgewise device bootstrap``, and components that
use the real ``stream-manager`` SDK against the runtime's built-in stream manager: a stream with a
``KinesisConfig`` export, appends with ``flush_on_write``, ingest into the cloud's store, and the query API and
``edgewise telemetry query`` reading it back. The chaos tests count: every append the SDK acknowledged (the
component records each sequence number ``append_message`` returned) is in the cloud store exactly once
afterwards, whatever happened in between:

- kill -9 of the runtime while the component appends and the stream exports, and a restart;
- the whole cloud (API, workers, Mosquitto) stopped during appends, then started again on the same data
  directory and the same device-facing MQTT port (its API gets a new port: nothing on the device uses it);
- the device's link to the cloud cut (every connection closed, the port refusing: :mod:`tests.support.tcp_link`)
  while the component appends, for longer than the first steps of the export retry back-off (1, 2, 4 s) and
  through several reconnect attempts, then restored.

The issue's outages are a minute and ten minutes; here they are seconds, so that the whole file runs in about
two minutes on a two-core machine: what is tested is the behaviour across an outage (appends go on, exports wait
and resume, nothing is lost or stored twice), not its length.

Also: a component that pip-installs the SDK from a wheel in its Install step and imports that copy, and bad input
at the edges through the real SDK against the real runtime (clients without a valid token, invalid stream names,
a full stream under each strategy), each a clear error with nothing stored half and other clients unaffected.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import importlib.metadata
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stream_manager

from edgewise.runtime.streams.store import stream_directory_name
from tests.cloud.test_cli_registry import run
from tests.integration.test_stream_manager_sdk import (
    STREAM_MANAGER,
    deploy,
    recorded,
    result_of,
    sdk_component,
    stream_manager_configuration,
)
from tests.support.cloud_process import CloudProcess
from tests.support.ports import free_port
from tests.support.runtime_process import RuntimeProcess, running, write_recipe
from tests.support.tcp_link import CuttableLink
from tests.support.telemetry_cloud import enroll_device, stored_messages
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

APPENDER = "stream_export_appender.py"
#: How long the scaled-down outages last, in seconds (see the module docstring).
CLOUD_OUTAGE = 5.0
LINK_OUTAGE = 10.0
#: Appends that must happen while the cloud is away, so that the outage falls among them.
APPENDS_DURING_OUTAGE = 50
APPENDS_AFTER_OUTAGE = 20
#: Enough for the export of a batch whose answer was lost to time out (30 s), be sent again, and the backlog to
#: follow it.
DELIVERY_TIMEOUT = 90.0
#: Polling the API is not free on two cores.
POLL = 0.25
WHEEL = "stream_manager-1.1.2-py2.py3-none-any.whl"


LOG_MANAGER = "aws.greengrass.LogManager"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path_factory.mktemp("data-path") / "data") as process:
        yield process.wait_ready()


class Appender:
    """The ``stream_export_appender.py`` component of one test: its record of acknowledged appends and its stop
    file."""

    def __init__(
        self, recipes: Path, artifacts: Path, directory: Path, stream: str, *, count: int = 0
    ) -> None:
        self.name = "test.Appender"
        self.record = directory / "record.txt"
        self.stop_file = directory / "stop"
        args = f"{self.record} {self.stop_file} {stream} {count}"
        sdk_component(recipes, artifacts, self.name, APPENDER, args)

    def acknowledged(self) -> list[tuple[int, str]]:
        """(sequence number, payload) of every append that returned, every run together."""
        return [line for lines in recorded(self.record).values() for line in lines]

    def runs(self) -> dict[str, list[tuple[int, str]]]:
        return recorded(self.record)

    def stop(self, runtime: RuntimeProcess) -> list[tuple[int, str]]:
        """Let the component finish its appends; what it acknowledged in all."""
        self.stop_file.touch()
        runtime.wait_state(self.name, "FINISHED")
        return self.acknowledged()

    def start(self, runtime: RuntimeProcess, recipes: Path, artifacts: Path) -> None:
        # Stream manager first: a component deployed with it may start before its server listens.
        deploy(
            runtime,
            recipes,
            artifacts,
            rootComponentVersionsToAdd={STREAM_MANAGER: "2.1.0"},
            componentToConfiguration=stream_manager_configuration(free_port()),
        )
        deploy(runtime, recipes, artifacts, rootComponentVersionsToAdd={self.name: "1.0.0"})


def exported(cloud: CloudProcess, thing: str, stream: str) -> int:
    return len(stored_messages(cloud, thing, stream))


def assert_stored_exactly_once(
    cloud: CloudProcess, thing: str, stream: str, acknowledged: list[tuple[int, str]]
) -> None:
    """Wait until every acknowledged append is in the cloud store; then each is there once, with its payload,
    and nothing is stored twice or skipped."""
    wanted = dict(acknowledged)
    assert len(wanted) == len(acknowledged), "the SDK returned a sequence number twice"

    def complete() -> list[dict[str, Any]]:
        stored = stored_messages(cloud, thing, stream)
        return stored if wanted.keys() <= {message["sequenceNumber"] for message in stored} else []

    stored = wait_until(
        complete, timeout=DELIVERY_TIMEOUT, interval=POLL, what=f"every acknowledged append in {stream}"
    )
    counts = Counter(message["sequenceNumber"] for message in stored)
    assert [number for number, times in counts.items() if times > 1] == []
    by_number = {message["sequenceNumber"]: message["payload"].decode() for message in stored}
    assert {number: by_number[number] for number in wanted} == wanted
    # Nothing skipped: the stream's numbers from 0 (an append the kill cut off before it was recorded may be there).
    assert sorted(by_number) == list(range(len(by_number)))


def test_every_appended_message_reaches_the_cloud_once_and_is_queryable(
    cloud: CloudProcess, tmp_path: Path, recipes: Path, artifacts: Path
) -> None:
    thing, count = "path-device", 50
    config = enroll_device(cloud, thing, tmp_path / "identity")
    appender = Appender(recipes, artifacts, tmp_path, "path-trucks", count=count)

    with running(tmp_path / "root", "--config", str(config)) as runtime:
        appender.start(runtime, recipes, artifacts)
        runtime.wait_state(appender.name, "FINISHED")
        acknowledged = appender.acknowledged()
        assert len(acknowledged) == count
        assert_stored_exactly_once(cloud, thing, "path-trucks", acknowledged)
        # The same device's logs take the same link: the component's log, as the runtime wrote it, in the cloud.
        uploads = {
            "logsUploaderConfiguration": {"componentLogsConfigurationMap": {appender.name: {}}},
            "periodicUploadIntervalSec": "0.2",
        }
        deploy(
            runtime,
            recipes,
            artifacts,
            rootComponentVersionsToAdd={LOG_MANAGER: "2.3.0"},
            componentToConfiguration={LOG_MANAGER: {"MERGE": uploads}},
        )
        written = (runtime.root / "logs" / f"{appender.name}.log").read_text().splitlines()

        def sent() -> list[dict[str, Any]]:
            shown = run(cloud, "logs", "--thing", thing, "--component", appender.name, "--json")
            assert shown.exit_code == 0, shown.stderr
            lines = [json.loads(line) for line in shown.stdout.splitlines()]
            return lines if len(lines) >= len(written) else []

        lines = wait_until(sent, timeout=DELIVERY_TIMEOUT, what="the component's log lines in the cloud")
        assert len(written) > 3
        for line, entry in zip(written, lines, strict=False):
            assert entry["message"] in line

    with cloud.api(cloud.admin_token) as api:
        answer = api.get("/telemetry/streams", params={"thing": thing})
    assert answer.status_code == 200, answer.text
    assert [(s["stream"], s["messages"], s["things"]) for s in answer.json()["data"]] == [
        ("path-trucks", count, 1)
    ]

    shown = run(
        cloud,
        *("telemetry", "query", "--thing", thing, "--stream", "path-trucks"),
        *("--since", "1h", "--limit", "1000", "--oldest", "--json"),
    )
    assert shown.exit_code == 0, shown.stderr
    messages = json.loads(shown.stdout)
    assert [(m["sequenceNumber"], base64.b64decode(m["payload"]).decode()) for m in messages] == acknowledged
    table = run(cloud, "telemetry", "query", "--thing", thing, "--stream", "path-trucks", "--limit", "5")
    assert table.exit_code == 0, table.stderr
    assert thing in table.stdout


def test_kill_9_of_the_runtime_while_it_appends_and_exports_loses_and_duplicates_nothing(
    cloud: CloudProcess, tmp_path: Path, recipes: Path, artifacts: Path
) -> None:
    thing = "killed-device"
    config = enroll_device(cloud, thing, tmp_path / "identity")
    appender = Appender(recipes, artifacts, tmp_path, "killed-trucks")
    root = tmp_path / "root"

    with running(root, "--config", str(config)) as runtime:
        appender.start(runtime, recipes, artifacts)
        wait_until(
            lambda: exported(cloud, thing, "killed-trucks") >= 20 and len(appender.acknowledged()) >= 40,
            interval=POLL,
            what="appends and exports before the kill",
        )
        runtime.kill9()

    first_runs = set(appender.runs())
    with running(root, "--config", str(config)) as runtime:
        # The component runs again at start and appends after the messages the first run stored.
        wait_until(
            lambda: any(len(lines) >= 20 for run, lines in appender.runs().items() if run not in first_runs),
            what="appends after the restart",
        )
        acknowledged = appender.stop(runtime)
        assert_stored_exactly_once(cloud, thing, "killed-trucks", acknowledged)


def wait_outage(seconds: float, appender: Appender) -> None:
    """Keep an outage up for ``seconds`` and until the component has appended through it."""
    before = len(appender.acknowledged())
    ends = time.monotonic() + seconds
    wait_until(
        lambda: time.monotonic() >= ends and len(appender.acknowledged()) >= before + APPENDS_DURING_OUTAGE,
        timeout=seconds + 30,
        what="the outage to last, with appends through it",
    )


def appends_after(appender: Appender, count: int) -> None:
    before = len(appender.acknowledged())
    wait_until(lambda: len(appender.acknowledged()) >= before + count, what=f"{count} more appends")


def test_stopping_the_whole_cloud_during_appends_loses_and_duplicates_nothing(
    tmp_path: Path, recipes: Path, artifacts: Path
) -> None:
    thing, stream = "outage-device", "outage-trucks"
    data = tmp_path / "cloud"
    appender = Appender(recipes, artifacts, tmp_path, stream)

    with contextlib.ExitStack() as stack:
        first = stack.enter_context(CloudProcess(data)).wait_ready()
        config = enroll_device(first, thing, tmp_path / "identity")
        runtime = stack.enter_context(running(tmp_path / "root", "--config", str(config)))
        appender.start(runtime, recipes, artifacts)
        wait_until(
            lambda: exported(first, thing, stream) >= 20, interval=POLL, what="exports before the outage"
        )

        first.__exit__(None, None, None)  # SIGTERM: the API, the workers and Mosquitto all stop
        assert first.process.returncode is not None
        wait_outage(CLOUD_OUTAGE, appender)

        second = stack.enter_context(CloudProcess(data, mqtt_port=first.mqtt_port)).wait_ready()
        appends_after(appender, APPENDS_AFTER_OUTAGE)
        acknowledged = appender.stop(runtime)
        assert_stored_exactly_once(second, thing, stream, acknowledged)


def test_cutting_the_devices_link_during_appends_loses_and_duplicates_nothing(
    cloud: CloudProcess, tmp_path: Path, recipes: Path, artifacts: Path
) -> None:
    thing, stream = "cut-device", "cut-trucks"
    appender = Appender(recipes, artifacts, tmp_path, stream)

    with CuttableLink(cloud.mqtt_port) as link:
        config = enroll_device(cloud, thing, tmp_path / "identity", port=link.port)
        with running(tmp_path / "root", "--config", str(config)) as runtime:
            appender.start(runtime, recipes, artifacts)
            wait_until(
                lambda: exported(cloud, thing, stream) >= 20, interval=POLL, what="exports before the cut"
            )
            connections = link.connections

            link.cut()
            wait_outage(LINK_OUTAGE, appender)
            link.restore()

            appends_after(appender, APPENDS_AFTER_OUTAGE)
            acknowledged = appender.stop(runtime)
            assert_stored_exactly_once(cloud, thing, stream, acknowledged)
            assert link.connections > connections  # the device came back over a new connection


def sdk_wheel(path: Path) -> Path:
    """A wheel of the installed ``stream-manager`` SDK, built offline: its package files and its ``.dist-info``
    (metadata, a RECORD with each file's digest), as ``pip`` installs them."""
    distribution = importlib.metadata.distribution("stream_manager")
    package = Path(stream_manager.__file__).parent
    files = {
        f"stream_manager/{source.relative_to(package).as_posix()}": source.read_bytes()
        for source in sorted(package.rglob("*.py"))
    }
    info = f"stream_manager-{distribution.version}.dist-info"
    for name in ("METADATA", "WHEEL", "top_level.txt", "LICENSE", "NOTICE"):
        text = distribution.read_text(name)
        if text is not None:
            files[f"{info}/{name}"] = text.encode()
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([name, f"sha256={digest}", len(data)])
    writer.writerow([f"{info}/RECORD", "", ""])
    files[f"{info}/RECORD"] = record.getvalue().encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
    return path


def test_a_component_that_pip_installs_the_sdk_in_its_install_step_uses_that_copy(
    runtime: RuntimeProcess, recipes: Path, artifacts: Path, tmp_path: Path
) -> None:
    name, out = "test.PipInstalled", tmp_path / "operations.json"
    folder = artifacts / name / "1.0.0"
    sdk_wheel(folder / WHEEL)
    (folder / "stream_operations.py").write_bytes(
        (Path(__file__).parent / "clients" / "stream_operations.py").read_bytes()
    )
    write_recipe(
        recipes,
        name,
        "1.0.0",
        f"""\
        ComponentDependencies:
          {STREAM_MANAGER}:
            VersionRequirement: ^2.0.0
        Manifests:
          - Lifecycle:
              Install: {sys.executable} -m pip install --quiet --no-index --no-deps --disable-pip-version-check --target {{work:path}}/site {{artifacts:path}}/{WHEEL}
              Run: PYTHONPATH={{work:path}}/site exec {sys.executable} {{artifacts:path}}/stream_operations.py {out}
        """,
    )
    deploy(
        runtime,
        recipes,
        artifacts,
        rootComponentVersionsToAdd={STREAM_MANAGER: "2.1.0"},
        componentToConfiguration=stream_manager_configuration(free_port()),
    )
    deploy(runtime, recipes, artifacts, rootComponentVersionsToAdd={name: "1.0.0"})
    # pip starts slowly on a loaded machine: wait for the component rather than for its result alone.
    try:
        runtime.wait_state(name, "FINISHED", timeout=90)
    except AssertionError as error:
        raise AssertionError(f"{error}: {runtime.log(name)[-3000:]}") from None
    result = result_of(runtime, out)

    site = runtime.paths.component_work(name).resolve() / "site"
    assert Path(result["sdk"]).resolve() == site / "stream_manager" / "__init__.py"
    installed = [d.version for d in importlib.metadata.distributions(path=[str(site)])]
    assert installed == ["1.1.2"]
    assert result["sequence_numbers"] == [0, 1, 2]
    assert result["read"] == [[0, "reading 0"], [1, "reading 1"], [2, "reading 2"]]


def test_bad_input_is_refused_clearly_stores_nothing_half_and_leaves_other_clients_alone(
    runtime: RuntimeProcess, recipes: Path, artifacts: Path, tmp_path: Path
) -> None:
    port = free_port()
    out = tmp_path / "bad-input.json"
    steady = Appender(recipes, artifacts, tmp_path, "steady-trucks")
    sdk_component(recipes, artifacts, "test.BadInput", "stream_bad_input.py", str(out))
    deploy(
        runtime,
        recipes,
        artifacts,
        rootComponentVersionsToAdd={STREAM_MANAGER: "2.1.0"},
        componentToConfiguration=stream_manager_configuration(port),
    )
    deploy(runtime, recipes, artifacts, rootComponentVersionsToAdd={steady.name: "1.0.0"})
    wait_until(lambda: len(steady.acknowledged()) >= 10, what="the steady component's appends")

    # Clients whose token is not a running component's, or who have none, are refused at connect (in processes
    # of their own: a refused SDK client leaves its event loop thread behind).
    probe = (
        "from stream_manager import StreamManagerClient\n"
        "try:\n"
        f"    StreamManagerClient(port={port}, connect_timeout=10).close()\n"
        "except Exception as error:\n"
        "    print(type(error).__name__)\n"
    )
    for token in ("not-a-component-token", "", None):
        environment = {k: v for k, v in os.environ.items() if k != "AWS_CONTAINER_AUTHORIZATION_TOKEN"}
        if token is not None:
            environment["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = token
        answer = subprocess.run(
            [sys.executable, "-c", probe],
            env=environment,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert answer.stdout.strip() == "ConnectFailedException", (token, answer.stdout, answer.stderr)

    deploy(runtime, recipes, artifacts, rootComponentVersionsToAdd={"test.BadInput": "1.0.0"})
    result = result_of(runtime, out)

    # Names the SDK refuses itself never leave it; with its checks off, the server refuses them naming the field.
    assert {kind for kind, _ in result["sdk_refused"]} == {"ValidationException"}
    for answers in (result["server_refused"], result["unchecked_refused"]):
        for kind, message in answers:
            assert kind == "InvalidRequestException", message
            assert "name" in message, message
    for kind, message in result["append_refused"] + result["unchecked_append_refused"]:
        assert kind in ("InvalidRequestException", "ResourceNotFoundException"), message
        assert "name" in message, message
    assert result["streams"] == sorted(["durable", "full-overwrite", "full-reject"])
    store = runtime.paths.component_work(STREAM_MANAGER)
    on_disk = {path.name for path in store.iterdir() if path.is_dir()}
    assert on_disk == {stream_directory_name(name) for name in result["streams"]}

    # RejectNewData: the append that does not fit is refused, saying why; what was accepted is all there.
    kind, message = result["reject_full"]
    assert kind == "InvalidRequestException"
    assert "full" in message, message
    assert "RejectNewData" in message, message
    assert 0 < len(result["reject_accepted"]) < 20
    assert result["reject_stored"] == result["reject_accepted"]
    assert result["reject_again"][0] == "InvalidRequestException"

    # OverwriteOldestData: every append is taken; the oldest go, the newest stay, in order, within max_size.
    appended = result["overwrite_appended"]
    assert [number for number, _ in appended] == list(range(20))
    oldest, newest, total_bytes = result["overwrite_status"]
    assert newest == 19
    assert 0 < oldest <= newest
    assert total_bytes <= 1024
    assert result["overwrite_stored"] == appended[oldest:]

    # The steady component appended through all of it and finishes normally.
    before = len(steady.acknowledged())
    wait_until(lambda: len(steady.acknowledged()) >= before + 10, what="steady appends after the bad input")
    assert runtime.states()[steady.name] == "RUNNING"
    acknowledged = steady.stop(runtime)
    assert [number for number, _ in acknowledged] == list(range(len(acknowledged)))

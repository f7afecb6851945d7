"""The built-in ``aws.greengrass.StreamManager`` against components that use the real ``stream-manager`` SDK:
one installed with the runtime's Python, one bundled in the component's artifacts, appends that survive kill -9
of the runtime, and a client whose token is not a component's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import stream_manager
from stream_manager import ReadMessagesOptions, StreamManagerClient

from tests.support.ports import free_port
from tests.support.runtime_process import CLIENTS, RuntimeProcess, running, write_recipe
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

STREAM_MANAGER = "aws.greengrass.StreamManager"


def sdk_component(
    recipes: Path, artifacts: Path, name: str, script: str, args: str, *, bundle_sdk: bool = False
) -> Path:
    """A component that depends on stream manager and runs ``clients/<script>`` with this Python; with
    ``bundle_sdk``, a copy of the SDK's source is in its artifacts and first on its ``PYTHONPATH``."""
    folder = artifacts / name / "1.0.0"
    folder.mkdir(parents=True)
    shutil.copy(CLIENTS / script, folder / script)
    environment = ""
    if bundle_sdk:
        shutil.copytree(Path(stream_manager.__file__).parent, folder / "sdk" / "stream_manager")
        environment = "PYTHONPATH={artifacts:path}/sdk "
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
              Run: {environment}exec {sys.executable} {{artifacts:path}}/{script} {args}
        """,
    )
    return folder


def stream_manager_configuration(port: int, **more: str) -> dict[str, Any]:
    return {STREAM_MANAGER: {"MERGE": {"STREAM_MANAGER_SERVER_PORT": str(port), **more}}}


def deploy(runtime: RuntimeProcess, recipes: Path, artifacts: Path, **request: Any) -> None:
    deployment = runtime.wait_deployment(runtime.deploy(recipes, artifacts=artifacts, **request))
    assert deployment["status"] == "SUCCEEDED", (deployment, runtime.stderr())


def result_of(runtime: RuntimeProcess, path: Path) -> dict[str, Any]:
    wait_until(path.exists, what=f"{path.name} ({runtime.stderr()[-1000:]})")
    result: dict[str, Any] = json.loads(path.read_text())
    assert "error" not in result, result["error"]
    return result


def test_a_component_uses_streams_with_the_sdk_found_through_its_environment(
    runtime: RuntimeProcess, recipes: Path, artifacts: Path, tmp_path: Path
) -> None:
    port = free_port()
    out = tmp_path / "operations.json"
    sdk_component(recipes, artifacts, "test.StreamUser", "stream_operations.py", str(out))

    # One deployment, as users write it: stream manager named at the version an older deployment pins and
    # configured, beside a component that needs ^2.0.0 of it and connects as soon as it starts.
    deploy(
        runtime,
        recipes,
        artifacts,
        rootComponentVersionsToAdd={STREAM_MANAGER: "2.1.0", "test.StreamUser": "1.0.0"},
        componentToConfiguration=stream_manager_configuration(port),
    )
    result = result_of(runtime, out)

    assert result["sequence_numbers"] == [0, 1, 2]
    assert result["read"] == [[0, "reading 0"], [1, "reading 1"], [2, "reading 2"]]
    assert result["described"] == ["telemetry", 0, 2]
    assert result["streams"] == ["telemetry"]
    assert runtime.states()[STREAM_MANAGER] == "RUNNING"


def test_a_component_that_bundles_the_sdk_in_its_artifacts_runs_unmodified(
    runtime: RuntimeProcess, recipes: Path, artifacts: Path, tmp_path: Path
) -> None:
    out = tmp_path / "operations.json"
    sdk_component(recipes, artifacts, "test.Bundled", "stream_operations.py", str(out), bundle_sdk=True)

    # Stream manager first: a component deployed with it may start before its server listens (docs/runtime.md).
    deploy(
        runtime,
        recipes,
        artifacts,
        rootComponentVersionsToAdd={STREAM_MANAGER: "2.1.0"},
        componentToConfiguration=stream_manager_configuration(free_port()),
    )
    deploy(runtime, recipes, artifacts, rootComponentVersionsToAdd={"test.Bundled": "1.0.0"})
    result = result_of(runtime, out)

    bundled = runtime.paths.root.resolve() / "packages"
    assert Path(result["sdk"]).resolve().is_relative_to(bundled), result["sdk"]
    assert Path(result["sdk"]).parent.parent.name == "sdk"
    assert result["read"] == [[0, "reading 0"], [1, "reading 1"], [2, "reading 2"]]


def test_a_client_whose_token_is_not_a_components_is_refused(
    runtime: RuntimeProcess, recipes: Path, artifacts: Path
) -> None:
    port = free_port()
    deploy(
        runtime,
        recipes,
        artifacts,
        rootComponentVersionsToAdd={STREAM_MANAGER: "2.1.0"},
        componentToConfiguration=stream_manager_configuration(port),
    )
    probe = (
        "from stream_manager import StreamManagerClient\n"
        "try:\n"
        f"    StreamManagerClient(port={port}).close()\n"
        "except Exception as error:\n"
        "    print(type(error).__name__, error)\n"
        "else:\n"
        "    print('connected')\n"
    )

    for token in ("not-a-component-token", None):
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
        assert answer.stdout.startswith("ConnectFailedException"), (token, answer.stdout, answer.stderr)
        # The SDK logs the status the server answered.
        assert "Unauthorized" in answer.stderr, answer.stderr


def recorded(path: Path) -> dict[str, list[tuple[int, str]]]:
    """The appender's record, by run: (sequence number, payload) of every acknowledged append."""
    runs: dict[str, list[tuple[int, str]]] = {}
    text = path.read_text() if path.exists() else ""
    for line in text.splitlines(keepends=True):
        if line.endswith("\n"):
            sequence_number, payload = line.split()
            runs.setdefault(payload.split("-")[0], []).append((int(sequence_number), payload))
    return runs


def test_acknowledged_appends_survive_kill_9_of_the_runtime(
    recipes: Path, artifacts: Path, tmp_path: Path
) -> None:
    port = free_port()
    record = tmp_path / "record.txt"
    count = 100
    sdk_component(recipes, artifacts, "test.Appender", "stream_appender.py", f"{record} {count}")

    root = tmp_path / "root"
    with running(root) as runtime:
        deploy(
            runtime,
            recipes,
            artifacts,
            rootComponentVersionsToAdd={STREAM_MANAGER: "2.1.0"},
            # Off, so that this test reads the stream back itself.
            componentToConfiguration=stream_manager_configuration(
                port, STREAM_MANAGER_AUTHENTICATE_CLIENT="false"
            ),
        )
        deploy(runtime, recipes, artifacts, rootComponentVersionsToAdd={"test.Appender": "1.0.0"})
        wait_until(lambda: sum(map(len, recorded(record).values())) >= 20, what="appends before the kill")
        runtime.kill9()

    first_runs = set(recorded(record))

    with running(root) as runtime:
        # The appender runs again at start and appends another COUNT messages after the ones stored.
        def second_run() -> list[tuple[int, str]] | None:
            runs = recorded(record)
            return next(
                (runs[run] for run in runs if run not in first_runs and len(runs[run]) == count), None
            )

        after = wait_until(second_run, what="the second run's appends")
        before = [line for run in first_runs for line in recorded(record)[run]]
        client = StreamManagerClient(port=port, request_timeout=30)
        try:
            stored = client.read_messages(
                "durable", ReadMessagesOptions(desired_start_sequence_number=0, max_message_count=10 * count)
            )
        finally:
            client.close()

    by_number = {message.sequence_number: message.payload.decode() for message in stored}
    assert [by_number.get(number) for number, _ in before] == [payload for _, payload in before]
    assert [by_number.get(number) for number, _ in after] == [payload for _, payload in after]
    assert min(number for number, _ in after) > max(number for number, _ in before)
    assert sorted(by_number) == list(range(len(by_number)))

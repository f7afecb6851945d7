"""An S3 export task end to end with nothing faked: a real ``edgewise cloud up``, a runtime enrolled to it with
``edgewise device bootstrap`` (which writes the cloud's HTTPS port into ``edgewise.yaml``), and a component that
uses the real ``stream-manager`` SDK to export a file through an ``S3ExportTaskExecutorConfig``. The file lands
in the cloud's object store under the thing's name, the component reads InProgress then Success from its status
stream, and ``edgewise telemetry objects get`` downloads the same bytes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cloud.test_cli_registry import run
from tests.integration.test_stream_manager_sdk import (
    STREAM_MANAGER,
    deploy,
    result_of,
    sdk_component,
    stream_manager_configuration,
)
from tests.support.cloud_process import CloudProcess
from tests.support.ports import free_port
from tests.support.runtime_process import running
from tests.support.telemetry_cloud import enroll_device

pytestmark = pytest.mark.integration


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[CloudProcess]:
    with CloudProcess(tmp_path / "cloud") as process:
        yield process.wait_ready()


def test_a_component_exports_a_file_through_an_s3_task_into_the_clouds_store(
    cloud: CloudProcess, tmp_path: Path, recipes: Path, artifacts: Path
) -> None:
    thing = "s3-device"
    config = enroll_device(cloud, thing, tmp_path / "identity")
    data = bytes(range(256)) * 4096
    source = tmp_path / "capture.bin"
    source.write_bytes(data)
    result = tmp_path / "result.json"
    args = f"{source} captures front/capture.bin {result}"
    sdk_component(recipes, artifacts, "test.FileExporter", "stream_s3_task.py", args)

    with running(tmp_path / "root", "--config", str(config)) as runtime:
        deploy(
            runtime,
            recipes,
            artifacts,
            rootComponentVersionsToAdd={STREAM_MANAGER: "2.1.0", "test.FileExporter": "1.0.0"},
            componentToConfiguration=stream_manager_configuration(free_port()),
        )
        statuses = result_of(runtime, result)["statuses"]

    assert [name for name, _message in statuses] == ["InProgress", "Success"], statuses
    with cloud.api(cloud.admin_token) as api:
        answer = api.get("/telemetry/objects", params={"thing": thing})
    assert answer.status_code == 200, answer.text
    [stored] = answer.json()["data"]
    assert (stored["bucket"], stored["key"], stored["size"]) == ("captures", "front/capture.bin", len(data))
    assert stored["userMetadata"] == {"origin": "component"}
    out = tmp_path / "downloaded.bin"
    got = run(cloud, "telemetry", "objects", "get", thing, "captures", "front/capture.bin", "--out", str(out))
    assert got.exit_code == 0, got.stderr
    assert out.read_bytes() == data

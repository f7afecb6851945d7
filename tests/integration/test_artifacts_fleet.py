"""A ZIP bomb from a fleet deployment, through a real runtime with a configured limit, a real Mosquitto and the
test-side cloud: the job fails naming the artifact and the limit, and nothing is left on the device."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_fleet_agent import broker, ca, cloud, config_file
from tests.support.fleet_cloud import FleetCloud
from tests.support.runtime_process import RuntimeProcess, running

__all__ = ["broker", "ca", "cloud", "config_file"]
pytestmark = pytest.mark.integration


@pytest.fixture
def runtime(tmp_path: Path, config_file: Path, cloud: FleetCloud) -> Iterator[RuntimeProcess]:
    """The fleet agent's runtime, allowed to expand a ZIP artifact to 1 MiB."""
    with config_file.open("a") as handle:
        handle.write("artifacts: {maxExpandedBytes: 1048576}\n")
    with running(tmp_path / "root", "--config", str(config_file)) as process:
        yield process


def zip_bomb() -> bytes:
    """About 20 KB that expands to 16 MiB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for index in range(16):
            bundle.writestr(f"model/{index}.bin", bytes(1 << 20))
    return buffer.getvalue()


def test_a_zip_bomb_fails_the_fleet_deployment_naming_the_limit_and_leaves_nothing(
    cloud: FleetCloud, runtime: RuntimeProcess
) -> None:
    name = "com.example.Model"
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": "1.0.0",
        "Manifests": [
            {
                "Platform": {"os": "*"},
                "Artifacts": [{"Uri": f"s3://edgewise-artifacts/{name}/1.0.0/model.zip", "Unarchive": "ZIP"}],
                "Lifecycle": {"Run": f"{sys.executable} -c pass"},
            }
        ],
    }
    cloud.publish_component(recipe, {"model.zip": zip_bomb()})

    cloud.deploy("job-1", {name: "1.0.0"})
    job = cloud.wait_status("job-1", "FAILED")

    details = job.status_details
    assert details["detailed-deployment-status"] == "FAILED_NO_STATE_CHANGE"
    assert json.loads(details["deployment-error-types"]) == ["ARTIFACT_ERROR"]
    assert details["deployment-failure-cause"] == (
        f"Artifact 'model.zip' of {name} 1.0.0 expands to more than 1 MiB (1048576 bytes), the limit set by "
        "artifacts.maxExpandedBytes; it was not installed"
    )
    assert name not in {entry["componentName"] for entry in runtime.call("ListComponents")["components"]}
    assert list(runtime.paths.artifacts_dir.iterdir()) == []
    assert list(runtime.paths.unarchived_dir.iterdir()) == []
    assert not (runtime.paths.deployments_dir / "downloads" / name).exists()

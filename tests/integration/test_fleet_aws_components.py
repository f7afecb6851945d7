"""AWS-provided components in fleet deployments, end to end: a real ``edgewise cloud up`` accepts a deployment
written for an older Greengrass, a real device serves its built-ins and reports the requested and the served
version back to the cloud; an AWS component Edgewise does not provide is refused when the deployment is created.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cloud.test_cli_registry import ok, run
from tests.integration.test_fleet_e2e import Fleet, deploy, done, wait_statuses
from tests.support.cloud_process import CloudProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

CLI = "aws.greengrass.Cli"
NUCLEUS = "aws.greengrass.Nucleus"


@pytest.fixture
def devices(tmp_path: Path) -> Iterator[Fleet]:
    """A cloud of its own and the devices the test enrolls in it."""
    with CloudProcess(tmp_path / "cloud-data") as process:
        fleet = Fleet(process.wait_ready(), tmp_path / "devices")
        try:
            yield fleet
        finally:
            fleet.stop()


def test_an_older_greengrass_document_reaches_the_device_which_reports_requested_and_served_versions(
    devices: Fleet, tmp_path: Path
) -> None:
    cloud = devices.cloud
    device = devices.enroll("old-1").start()
    ok(cloud, "group", "create", "legacy")
    done(cloud, "group", "add-thing", "legacy", "old-1")

    deployment = deploy(cloud, "legacy", {CLI: "2.4.0", NUCLEUS: "2.5.6"})

    wait_statuses(cloud, deployment, {"old-1": "SUCCEEDED"})
    details = device.call("GetComponentDetails", {"componentName": CLI})["componentDetails"]
    assert (details["version"], details["requestedVersion"]) == ("2.12.0", "2.4.0")

    def reported() -> dict[str, dict[str, object]] | None:
        installed = {
            c["componentName"]: c for c in ok(cloud, "core-device", "get", "old-1")["installedComponents"]
        }
        return installed if installed.get(CLI, {}).get("requestedVersion") == "2.4.0" else None

    installed = wait_until(reported, what="old-1's fleet status with aws.greengrass.Cli")
    assert (installed[CLI]["componentVersion"], installed[CLI]["lifecycleState"]) == ("2.12.0", "RUNNING")
    assert (installed[NUCLEUS]["componentVersion"], installed[NUCLEUS]["requestedVersion"]) == (
        "2.12.0",
        "2.5.6",
    )

    body = {
        "targetArn": "legacy",
        "components": {"aws.greengrass.DockerApplicationManager": {"componentVersion": "2.1.0"}},
    }
    request = tmp_path / "stream-manager.json"
    request.write_text(json.dumps(body))
    refused = run(cloud, "deployment", "create", "--file", str(request))
    assert refused.exit_code != 0
    assert (
        "aws.greengrass.DockerApplicationManager is an AWS-provided component that Edgewise does not provide"
        in " ".join(refused.stderr.split())
    )

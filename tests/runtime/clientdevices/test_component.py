"""The client-device built-ins in a real runtime process, deployed locally: Auth with Moquette starts the managed
Mosquitto and the gate on the configured port, a bad device-group rule fails the deployment naming the field, and
the broker ends with the runtime."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from tests.support.ports import free_port
from tests.support.runtime_process import process_alive, running
from tests.support.waiting import wait_until

from edgewise.runtime.clientdevices.names import AUTH, MOQUETTE

pytestmark = pytest.mark.integration

AUTH_CONFIGURATION = {
    "deviceGroups": {
        "formatVersion": "2021-03-05",
        "definitions": {"Sensors": {"selectionRule": "thingName: sensor*", "policyName": "Sensors"}},
        "policies": {"Sensors": {"Connect": {"operations": ["mqtt:connect"], "resources": ["*"]}}},
    }
}


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on the loopback ``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _mosquitto_of(root: Path) -> list[int]:
    """The Mosquitto processes running the broker configuration under ``root``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if command and command[0].endswith(b"mosquitto") and str(root).encode() in b" ".join(command):
            found.append(int(entry.name))
    return found


def test_deploying_auth_and_moquette_runs_the_broker_and_a_bad_rule_fails_naming_it(
    tmp_path: Path,
) -> None:
    port = free_port()
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    with running(tmp_path / "root") as runtime:
        deployment = runtime.deploy(
            recipes,
            rootComponentVersionsToAdd={AUTH: "2.5.0", MOQUETTE: "2.3.0"},
            componentToConfiguration={
                AUTH: {"MERGE": AUTH_CONFIGURATION},
                MOQUETTE: {"MERGE": {"moquette": {"ssl_port": str(port), "host": "127.0.0.1"}}},
            },
        )
        assert runtime.wait_deployment(deployment)["status"] == "SUCCEEDED"
        wait_until(lambda: listening(port), what=f"the gate on port {port}")
        brokers = wait_until(lambda: _mosquitto_of(runtime.paths.root), what="the managed Mosquitto")

        bad = AUTH_CONFIGURATION["deviceGroups"] | {
            "definitions": {"Sensors": {"selectionRule": "thingName: sen*sor", "policyName": "Sensors"}}
        }
        result = runtime.wait_deployment(
            runtime.deploy(recipes, componentToConfiguration={AUTH: {"MERGE": {"deviceGroups": bad}}})
        )
        assert result["status"] == "FAILED"
        cause = result["deploymentStatusDetails"]["deploymentFailureCause"]
        assert f"{AUTH} configuration deviceGroups.definitions.Sensors.selectionRule" in cause
        # The broker that ran keeps running, on the same port.
        assert listening(port)
        assert _mosquitto_of(runtime.paths.root) == brokers
    wait_until(
        lambda: not any(process_alive(pid) for pid in brokers), what="Mosquitto to end with the runtime"
    )

"""``aws.greengrass.ShadowManager`` syncing local shadows with the cloud, end to end: a real ``edgewise cloud up``,
a real runtime process enrolled with ``edgewise device bootstrap`` (its broker connection through a link the test
can cut), the ShadowManager configured by a local deployment in Greengrass's keys, and the unmodified awsiotsdk
IPC client (v2) on the runtime's socket for the component side. The cloud side is its REST API.

One cloud and one runtime serve the module; each test uses shadows of its own names.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from awsiot import greengrasscoreipc
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2
from awsiot.greengrasscoreipc.model import ResourceNotFoundError

from tests.support.cloud_process import CloudProcess
from tests.support.runtime_process import RuntimeProcess
from tests.support.tcp_link import CuttableLink
from tests.support.telemetry_cloud import enroll_device
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
THING = "shadow-sync-core"
SHADOW_MANAGER = "aws.greengrass.ShadowManager"
SYNCED = ["from-device", "conflict", "outage"]


class Cloud:
    """The cloud process of the module, which a test may stop and start again on the same data and MQTT port."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.process = CloudProcess(data).__enter__().wait_ready()

    def stop(self) -> None:
        self.process.__exit__(None, None, None)

    def start(self) -> None:
        self.process = CloudProcess(self.data, mqtt_port=self.process.mqtt_port).__enter__().wait_ready()

    def document(self, shadow: str) -> dict[str, Any] | None:
        with self.process.api(self.process.admin_token) as api:
            answer = api.get(f"/things/{THING}/shadow", params={"name": shadow})
        if answer.status_code == 404:
            return None
        assert answer.status_code == 200, answer.text
        document: dict[str, Any] = answer.json()
        return document

    def update(self, shadow: str, state: dict[str, Any]) -> None:
        with self.process.api(self.process.admin_token) as api:
            answer = api.post(f"/things/{THING}/shadow", params={"name": shadow}, json={"state": state})
        assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    running = Cloud(tmp_path_factory.mktemp("shadow-sync") / "data")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def link(cloud: Cloud) -> Iterator[CuttableLink]:
    with CuttableLink(cloud.process.mqtt_port) as relay:
        yield relay


def deploy(runtime: RuntimeProcess, recipes: Path, configuration: dict[str, Any]) -> dict[str, Any]:
    deployment = runtime.deploy(
        recipes,
        rootComponentVersionsToAdd={SHADOW_MANAGER: "2.3.0"},
        componentToConfiguration={SHADOW_MANAGER: {"MERGE": configuration}},
    )
    return runtime.wait_deployment(deployment)


@pytest.fixture(scope="module")
def runtime(
    cloud: Cloud, link: CuttableLink, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RuntimeProcess]:
    directory = tmp_path_factory.mktemp("device")
    config = enroll_device(cloud.process, THING, directory / "identity", port=link.port)
    process = RuntimeProcess(directory / "root", "--thing-name", THING, "--config", str(config)).start()
    try:
        recipes = directory / "recipes"
        recipes.mkdir()
        synchronize = {"coreThing": {"classic": "false", "namedShadows": SYNCED}}
        assert deploy(process, recipes, {"synchronize": synchronize})["status"] == "SUCCEEDED"
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def ipc(runtime: RuntimeProcess) -> Iterator[GreengrassCoreIPCClientV2]:
    """The awsiotsdk v2 client on the runtime's socket, authenticated with the CLI's token."""
    token = json.loads(runtime.paths.cli_token_file.read_text())["cli_auth_token"]
    client = GreengrassCoreIPCClientV2(
        client=greengrasscoreipc.connect(ipc_socket=str(runtime.paths.ipc_socket), authtoken=token)
    )
    try:
        yield client
    finally:
        client.close()


def local_state(ipc: GreengrassCoreIPCClientV2, shadow: str) -> dict[str, Any] | None:
    try:
        response = ipc.get_thing_shadow(thing_name=THING, shadow_name=shadow)
    except ResourceNotFoundError:
        return None
    return sections(json.loads(response.payload))


def sections(document: dict[str, Any] | None) -> dict[str, Any] | None:
    if document is None:
        return None
    return {key: document["state"][key] for key in ("desired", "reported") if key in document["state"]}


def local_update(ipc: GreengrassCoreIPCClientV2, shadow: str, state: dict[str, Any]) -> None:
    ipc.update_thing_shadow(
        thing_name=THING, shadow_name=shadow, payload=json.dumps({"state": state}).encode()
    )


def converged(cloud: Cloud, ipc: GreengrassCoreIPCClientV2, shadow: str, state: dict[str, Any]) -> None:
    wait_until(lambda: sections(cloud.document(shadow)) == state, what=f"{shadow} in the cloud")
    wait_until(lambda: local_state(ipc, shadow) == state, what=f"{shadow} on the device")


def test_a_component_change_reaches_the_cloud(cloud: Cloud, ipc: GreengrassCoreIPCClientV2) -> None:
    local_update(ipc, "from-device", {"reported": {"firmware": "1.2.0"}})

    wait_until(
        lambda: sections(cloud.document("from-device")) == {"reported": {"firmware": "1.2.0"}},
        what="the device's report in the cloud",
    )


def test_a_cloud_change_reaches_the_device_and_components_hear_the_delta(
    cloud: Cloud, runtime: RuntimeProcess, ipc: GreengrassCoreIPCClientV2, tmp_path: Path
) -> None:
    # The shadow joins the sync with a second deployment: the sync follows the component's configuration.
    synchronize = {"coreThing": {"classic": "false", "namedShadows": [*SYNCED, "from-cloud"]}}
    assert deploy(runtime, tmp_path, {"synchronize": synchronize})["status"] == "SUCCEEDED"
    deltas: list[dict[str, Any]] = []
    lock = threading.Lock()

    def on_event(event: Any) -> None:
        with lock:
            deltas.append(json.loads(event.binary_message.message))

    _, operation = ipc.subscribe_to_topic(
        topic=f"$aws/things/{THING}/shadow/name/from-cloud/update/delta", on_stream_event=on_event
    )
    try:
        cloud.update("from-cloud", {"desired": {"fan": "high"}})

        def heard() -> bool:
            with lock:
                return bool(deltas)

        wait_until(heard, what="the local delta")
    finally:
        operation.close()
    with lock:
        assert deltas[0]["state"] == {"fan": "high"}
    assert local_state(ipc, "from-cloud") == {"desired": {"fan": "high"}}


def test_a_bad_configuration_fails_the_deployment_naming_the_field_and_the_sync_keeps_running(
    cloud: Cloud, runtime: RuntimeProcess, ipc: GreengrassCoreIPCClientV2, tmp_path: Path
) -> None:
    deployment = deploy(runtime, tmp_path, {"synchronize": {"direction": "sideways"}})

    assert deployment["status"] == "FAILED"
    assert "synchronize.direction" in json.dumps(deployment)
    local_update(ipc, "from-device", {"reported": {"firmware": "1.3.0"}})
    wait_until(
        lambda: sections(cloud.document("from-device")) == {"reported": {"firmware": "1.3.0"}},
        what="the sync to go on after the refused deployment",
    )


def test_changes_made_while_the_cloud_is_down_are_synced_when_it_is_back(
    cloud: Cloud, ipc: GreengrassCoreIPCClientV2
) -> None:
    local_update(ipc, "outage", {"desired": {"mode": "eco"}, "reported": {"mode": "eco"}})
    converged(cloud, ipc, "outage", {"desired": {"mode": "eco"}, "reported": {"mode": "eco"}})

    cloud.stop()
    local_update(ipc, "outage", {"reported": {"mode": "eco", "battery": 40}})
    cloud.start()
    cloud.update("outage", {"desired": {"mode": "boost"}})

    converged(
        cloud, ipc, "outage", {"desired": {"mode": "boost"}, "reported": {"mode": "eco", "battery": 40}}
    )


def test_concurrent_changes_on_both_sides_merge_desired_from_the_cloud_and_reported_from_the_device(
    cloud: Cloud, link: CuttableLink, ipc: GreengrassCoreIPCClientV2
) -> None:
    base = {"desired": {"speed": 1}, "reported": {"speed": 1}}
    local_update(ipc, "conflict", base)
    converged(cloud, ipc, "conflict", base)

    link.cut()
    try:
        local_update(ipc, "conflict", {"desired": {"speed": 2}, "reported": {"speed": 2}})
        cloud.update("conflict", {"desired": {"speed": 3}, "reported": {"speed": 3}})
    finally:
        link.restore()

    converged(cloud, ipc, "conflict", {"desired": {"speed": 3}, "reported": {"speed": 2}})

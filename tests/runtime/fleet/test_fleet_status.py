"""Fleet status messages (docs/device-protocol.md): their shape, chunking, and when they are sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from unittest.mock import create_autospec

import pytest
from tests.support.waiting import eventually

from edgewise.protocol.health import MAX_PAYLOAD_BYTES, Trigger, health_payloads
from edgewise.runtime.fleet.status import FleetStatusReporter, component_health
from edgewise.runtime.lifecycle import ComponentState, ComponentStatus, LifecycleSupervisor

SERVICES = {
    "aws.greengrass.Nucleus": {"version": "2.12.0", "componentType": "aws.greengrass.nucleus"},
    "com.example.App": {"version": "1.0.0", "componentType": "aws.greengrass.generic"},
    "com.example.Lib": {"version": "2.0.0", "componentType": "aws.greengrass.generic"},
}
GROUPS = {"thinggroup/a": {"com.example.App": "1.0.0"}, "LOCAL_DEPLOYMENT": {"com.example.App": "1.0.0"}}
ARNS = {"thinggroup/a": "arn:aws:greengrass:r:a:configuration:thinggroup/a:3"}


def supervisor_with(states: dict[str, ComponentState]) -> Any:
    supervisor = create_autospec(LifecycleSupervisor, instance=True)
    supervisor.state.side_effect = states.get
    supervisor.status.side_effect = lambda name: ComponentStatus(
        name=name,
        version="1.0.0",
        state=states[name],
        error_counts={ComponentState.RUNNING: 2, ComponentState.NEW: 1},
        last_failure="Run exited with code 3",
    )
    return supervisor


def test_components_say_their_version_state_roots_and_configurations() -> None:
    supervisor = supervisor_with(
        {"com.example.App": ComponentState.RUNNING, "com.example.Lib": ComponentState.BROKEN}
    )

    entries = {
        entry["componentName"]: entry
        for entry in (health.to_json() for health in component_health(SERVICES, GROUPS, ARNS, supervisor))
    }

    assert entries["aws.greengrass.Nucleus"]["status"] == "RUNNING"
    assert entries["com.example.App"] == {
        "componentName": "com.example.App",
        "version": "1.0.0",
        "fleetConfigArns": [ARNS["thinggroup/a"]],
        "isRoot": True,
        "status": "RUNNING",
    }
    assert entries["com.example.Lib"]["isRoot"] is False
    assert entries["com.example.Lib"]["componentStatusDetails"] == {
        "statusCodes": ["INSTALL_ERROR", "RUN_ERROR"],
        "statusReason": "Run exited with code 3",
    }


def test_a_built_in_reports_the_requested_version_next_to_the_served_one() -> None:
    services = {
        **SERVICES,
        "aws.greengrass.Cli": {
            "version": "2.12.0",
            "requestedVersion": "2.4.0",
            "componentType": "aws.greengrass.nucleus",
        },
    }
    groups = {"thinggroup/a": {"aws.greengrass.Cli": "2.4.0"}}

    entries = {
        entry["componentName"]: entry
        for entry in (
            health.to_json() for health in component_health(services, groups, ARNS, supervisor_with({}))
        )
    }

    assert entries["aws.greengrass.Cli"] == {
        "componentName": "aws.greengrass.Cli",
        "version": "2.12.0",
        "requestedVersion": "2.4.0",
        "fleetConfigArns": [ARNS["thinggroup/a"]],
        "isRoot": True,
        "status": "RUNNING",
    }
    assert "requestedVersion" not in entries["aws.greengrass.Nucleus"]


def test_a_large_message_is_split_into_chunks_under_the_limit() -> None:
    components = [{"componentName": f"com.example.C{index:05}", "status": "RUNNING"} for index in range(5000)]
    message = {"messageType": "COMPLETE", "sequenceNumber": 4}

    payloads = health_payloads(message, components)

    assert len(payloads) > 1
    assert all(len(payload) <= MAX_PAYLOAD_BYTES for payload in payloads)
    decoded = [json.loads(payload) for payload in payloads]
    assert [d["chunkInfo"] for d in decoded] == [
        {"chunkId": index, "totalChunks": len(payloads)} for index in range(1, len(payloads) + 1)
    ]
    assert [c for d in decoded for c in d["components"]] == components
    assert {d["sequenceNumber"] for d in decoded} == {4}


def test_a_small_message_is_one_payload_without_chunk_info() -> None:
    (payload,) = health_payloads({"messageType": "PARTIAL"}, [])
    assert json.loads(payload) == {"messageType": "PARTIAL", "components": []}


class Link:
    """Stands in for the cloud link: records publishes, lets the test switch the connection."""

    def __init__(self) -> None:
        self.connected = False
        self.published: list[dict[str, Any]] = []
        self.listeners: list[Callable[[bool], None]] = []

    async def publish(self, topic: str, payload: bytes, qos: int = 0, **_: Any) -> None:
        assert (topic, qos) == ("$aws/things/edge-1/greengrassv2/health/json", 1)
        self.published.append(json.loads(payload))

    def add_status_listener(self, listener: Callable[[bool], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def connect(self) -> None:
        self.connected = True
        for listener in list(self.listeners):
            listener(True)

    def triggers(self) -> list[str]:
        return [message["trigger"] for message in self.published]


class Store:
    def get(self, key: tuple[str, ...]) -> Any:
        return {"services": SERVICES, "groups": GROUPS}[key[0]]


@pytest.fixture
async def reporter_parts() -> Any:
    """A reporter on stand-ins; its debounce is 0, so a burst of changes in one loop iteration is one message
    and the order of messages is deterministic."""
    link = Link()
    states = {"com.example.App": ComponentState.RUNNING, "com.example.Lib": ComponentState.RUNNING}
    supervisor = supervisor_with(states)
    callbacks: list[Callable[[str, ComponentState, ComponentState], None]] = []
    supervisor.subscribe.side_effect = lambda callback: callbacks.append(callback) or (lambda: None)
    reporter = FleetStatusReporter(
        link,
        thing="edge-1",
        platform={"os": "linux", "architecture": "amd64"},
        store=Store(),
        supervisor=supervisor,
        group_arns=lambda: ARNS,
        interval=3600,
        debounce=0,
    )
    await reporter.start()
    await eventually(lambda: link.published, what="the launch message")
    yield link, reporter, callbacks, states
    await reporter.close()


async def test_launch_sends_a_complete_message(reporter_parts: Any) -> None:
    link, _, _, _ = reporter_parts

    launch = link.published[0]

    assert launch["trigger"] == "NUCLEUS_LAUNCH"
    assert launch["messageType"] == "COMPLETE"
    assert launch["thing"] == "edge-1"
    assert (launch["platform"], launch["architecture"]) == ("linux", "amd64")
    assert launch["overallDeviceStatus"] == "HEALTHY"
    assert isinstance(launch["timestamp"], int)
    assert isinstance(launch["sequenceNumber"], int)
    assert {c["componentName"] for c in launch["components"]} == set(SERVICES)


async def test_a_burst_of_state_changes_makes_one_partial_message(reporter_parts: Any) -> None:
    link, reporter, callbacks, states = reporter_parts
    states["com.example.Lib"] = ComponentState.BROKEN

    callbacks[0]("com.example.App", ComponentState.STARTING, ComponentState.RUNNING)
    callbacks[0]("com.example.Lib", ComponentState.RUNNING, ComponentState.ERRORED)
    callbacks[0]("com.example.Lib", ComponentState.ERRORED, ComponentState.BROKEN)
    callbacks[0]("com.example.Lib", ComponentState.BROKEN, ComponentState.STOPPING)  # not reported
    partial = (await eventually(lambda: link.published[1:], what="the partial message"))[0]
    reporter.deployment_finished("thinggroup/a", None)  # a later message: nothing else came between
    await eventually(lambda: len(link.published) >= 3, what="the deployment message")

    assert link.triggers() == ["NUCLEUS_LAUNCH", "COMPONENT_STATUS_CHANGE", "THING_GROUP_DEPLOYMENT"]
    assert partial["messageType"] == "PARTIAL"
    assert {c["componentName"] for c in partial["components"]} == {"com.example.App", "com.example.Lib"}
    assert partial["overallDeviceStatus"] == "UNHEALTHY"


async def test_changes_during_a_deployment_go_out_with_its_message(reporter_parts: Any) -> None:
    link, reporter, callbacks, _ = reporter_parts

    reporter.hold()
    callbacks[0]("com.example.App", ComponentState.STARTING, ComponentState.RUNNING)
    await asyncio.sleep(0)  # the debounce timer (0 s) runs, and keeps the change back
    reporter.deployment_finished("thinggroup/a", {"status": "SUCCEEDED", "deploymentId": "d"})
    after = (await eventually(lambda: link.published[1:], what="the deployment message"))[0]
    link.connect()  # the first connection: no message
    link.connect()
    await eventually(lambda: len(link.published) >= 3, what="the reconnect message")

    assert link.triggers() == ["NUCLEUS_LAUNCH", "THING_GROUP_DEPLOYMENT", "RECONNECT"]
    assert after["messageType"] == "COMPLETE"
    assert after["deploymentInformation"] == {"status": "SUCCEEDED", "deploymentId": "d"}
    assert after["sequenceNumber"] > link.published[0]["sequenceNumber"]


async def test_reconnects_send_a_complete_message_at_most_once_a_minute(reporter_parts: Any) -> None:
    link, reporter, _, _ = reporter_parts

    link.connect()  # the first connection of the run: the launch message covers it
    link.connect()
    link.connect()
    reporter.deployment_finished("thing/edge-1", None)
    await eventually(lambda: len(link.published) >= 3, what="two more messages")

    assert link.triggers() == ["NUCLEUS_LAUNCH", "RECONNECT", "THING_DEPLOYMENT"]
    assert link.published[1]["messageType"] == "COMPLETE"


def test_a_thing_deployment_has_its_own_trigger() -> None:
    assert Trigger.for_group("thing/edge-1") is Trigger.THING_DEPLOYMENT
    assert Trigger.for_group("thinggroup/a") is Trigger.THING_GROUP_DEPLOYMENT


async def test_changes_kept_for_an_abandoned_deployment_are_sent_on_release(reporter_parts: Any) -> None:
    link, reporter, callbacks, _ = reporter_parts

    reporter.hold()
    callbacks[0]("com.example.App", ComponentState.STARTING, ComponentState.RUNNING)
    reporter.release()
    partial = (await eventually(lambda: link.published[1:], what="the kept changes"))[0]

    assert partial["trigger"] == "COMPONENT_STATUS_CHANGE"
    assert [c["componentName"] for c in partial["components"]] == ["com.example.App"]

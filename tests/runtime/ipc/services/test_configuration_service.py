"""The configuration IPC operations against a real runtime, over its socket, as components call them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.runtime.ipc.services.harness import (
    ComponentClient,
    connect,
    deploy,
    submit,
    wait_deployment,
)
from tests.support.runtime_process import write_recipe
from tests.support.waiting import eventually

from edgewise.runtime.deployment import DeploymentStatus, DetailedStatus
from edgewise.runtime.kernel import Kernel

OWNER = "test.Owner"
OTHER = "test.Other"


def _component(recipes: Path, name: str, configuration: str, run: str = "exec sleep 600") -> None:
    write_recipe(
        recipes,
        name,
        "1.0.0",
        f"""\
        ComponentConfiguration:
          DefaultConfiguration:
{configuration}
        Manifests:
          - Lifecycle:
              Run: {run}
        """,
    )


@pytest.fixture
async def deployed(kernel: Kernel, recipes: Path) -> Kernel:
    _component(
        recipes,
        OWNER,
        """\
            mode: normal
            settings:
              level: 1
              names: [a, b]
            accessControl:
              aws.greengrass.ipc.pubsub:
                test.Owner:pubsub:1:
                  operations: ["*"]
                  resources: ["*"]""",
        run='echo "mode={configuration:/mode}" && exec sleep 600',
    )
    _component(recipes, OTHER, "            shared: {x: 1}")
    record = await deploy(kernel, recipes, {OWNER: "1.0.0", OTHER: "1.0.0"})
    assert record.status is DeploymentStatus.SUCCEEDED, record.failure_cause
    return kernel


@pytest.fixture
async def owner(deployed: Kernel) -> AsyncIterator[ComponentClient]:
    client = await connect(deployed, OWNER)
    yield client
    await client.close()


def _configuration(kernel: Kernel, name: str) -> Any:
    return kernel.store.get(("services", name, "configuration"))


def _now() -> float:
    return time.time()


# GetConfiguration


async def test_get_configuration_without_key_path_returns_the_whole_configuration(
    owner: ComponentClient,
) -> None:
    reply = await owner.call("GetConfiguration", {"keyPath": []})

    assert reply.error is None
    assert reply.body["componentName"] == OWNER
    assert reply.body["value"]["settings"] == {"level": 1, "names": ["a", "b"]}
    assert reply.body["value"]["mode"] == "normal"


async def test_get_configuration_of_a_leaf_wraps_it_in_its_name(owner: ComponentClient) -> None:
    reply = await owner.call("GetConfiguration", {"keyPath": ["settings", "level"]})

    assert reply.body == {"componentName": OWNER, "value": {"level": 1}}


async def test_get_configuration_of_a_list_wraps_it_in_its_name(owner: ComponentClient) -> None:
    reply = await owner.call("GetConfiguration", {"keyPath": ["settings", "names"]})

    assert reply.body["value"] == {"names": ["a", "b"]}


async def test_get_configuration_of_an_object_returns_the_object(owner: ComponentClient) -> None:
    reply = await owner.call("GetConfiguration", {"keyPath": ["settings"]})

    assert reply.body["value"] == {"level": 1, "names": ["a", "b"]}


async def test_any_component_may_read_another_components_configuration(owner: ComponentClient) -> None:
    reply = await owner.call("GetConfiguration", {"componentName": OTHER, "keyPath": ["shared", "x"]})

    assert reply.body == {"componentName": OTHER, "value": {"x": 1}}


@pytest.mark.parametrize(
    ("request_body", "resource"),
    [
        ({"keyPath": ["settings", "missing"]}, "settings/missing"),
        ({"keyPath": ["settings", "level", "below_a_leaf"]}, "settings/level/below_a_leaf"),
        ({"componentName": "no.such.Component", "keyPath": []}, "no.such.Component"),
    ],
)
async def test_get_configuration_of_something_missing_is_resource_not_found(
    owner: ComponentClient, request_body: dict[str, Any], resource: str
) -> None:
    reply = await owner.call("GetConfiguration", request_body)

    assert reply.error == "ResourceNotFoundError"
    assert reply.body["resourceName"] == resource


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        ({"keyPath": "settings"}, "keyPath"),
        ({"keyPath": ["settings", 3]}, "keyPath[1]"),
        ({"keyPath": [""]}, "keyPath[0]"),
        ({"componentName": 12, "keyPath": []}, "componentName"),
    ],
)
async def test_get_configuration_names_the_malformed_field(
    owner: ComponentClient, request_body: dict[str, Any], field: str
) -> None:
    reply = await owner.call("GetConfiguration", request_body)

    assert reply.error == "InvalidArgumentsError"
    assert reply.message.startswith(f"{field}:")


# UpdateConfiguration


async def test_update_configuration_merges_into_the_callers_configuration(
    deployed: Kernel, owner: ComponentClient
) -> None:
    reply = await owner.call(
        "UpdateConfiguration",
        {"keyPath": ["settings"], "timestamp": _now(), "valueToMerge": {"level": 2, "extra": {"on": True}}},
    )

    assert reply.error is None
    assert reply.body == {}
    assert _configuration(deployed, OWNER)["settings"] == {
        "level": 2,
        "names": ["a", "b"],
        "extra": {"on": True},
    }
    assert _configuration(deployed, OTHER) == {"shared": {"x": 1}}


async def test_update_configuration_older_than_the_stored_value_fails_the_condition_check(
    deployed: Kernel, owner: ComponentClient
) -> None:
    await owner.call(
        "UpdateConfiguration", {"keyPath": [], "timestamp": _now(), "valueToMerge": {"mode": "fast"}}
    )

    reply = await owner.call(
        "UpdateConfiguration", {"keyPath": [], "timestamp": _now() - 3600, "valueToMerge": {"mode": "slow"}}
    )

    assert reply.error == "FailedUpdateConditionCheckError"
    assert _configuration(deployed, OWNER)["mode"] == "fast"


@pytest.mark.parametrize(
    ("key_path", "value"),
    [
        ([], {"accessControl": {}}),
        (["accessControl"], {"aws.greengrass.ipc.pubsub": {}}),
        (["accessControl", "aws.greengrass.Cli"], {"p": {"operations": ["*"]}}),
    ],
)
async def test_update_configuration_cannot_change_access_control(
    deployed: Kernel, owner: ComponentClient, key_path: list[str], value: dict[str, Any]
) -> None:
    before = _configuration(deployed, OWNER)["accessControl"]

    reply = await owner.call(
        "UpdateConfiguration", {"keyPath": key_path, "timestamp": _now(), "valueToMerge": value}
    )

    assert reply.error == "InvalidArgumentsError"
    assert "accessControl" in reply.message
    assert _configuration(deployed, OWNER)["accessControl"] == before


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        ({"valueToMerge": {"a": 1}}, "timestamp"),
        ({"timestamp": True, "valueToMerge": {"a": 1}}, "timestamp"),
        ({"timestamp": "now", "valueToMerge": {"a": 1}}, "timestamp"),
        ({"timestamp": -1, "valueToMerge": {"a": 1}}, "timestamp"),
        ({"timestamp": float("inf"), "valueToMerge": {"a": 1}}, "timestamp"),
        ({"timestamp": 1e300, "valueToMerge": {"a": 1}}, "timestamp"),
        ({"timestamp": 1.0}, "valueToMerge"),
        ({"timestamp": 1.0, "valueToMerge": [1, 2]}, "valueToMerge"),
        ({"timestamp": 1.0, "valueToMerge": {"a": 1}, "keyPath": [None]}, "keyPath[0]"),
    ],
)
async def test_update_configuration_names_the_malformed_field(
    deployed: Kernel, owner: ComponentClient, request_body: dict[str, Any], field: str
) -> None:
    before = _configuration(deployed, OWNER)

    reply = await owner.call("UpdateConfiguration", request_body)

    assert reply.error == "InvalidArgumentsError"
    assert reply.message.startswith(f"{field}:")
    assert _configuration(deployed, OWNER) == before


async def test_update_configuration_restarts_a_component_whose_lifecycle_uses_it(
    deployed: Kernel, owner: ComponentClient
) -> None:
    status = deployed.supervisor.status(OWNER)
    assert status is not None
    first_pid = status.pids[0]

    await owner.call("UpdateConfiguration", {"timestamp": _now(), "valueToMerge": {"mode": "fast"}})

    def restarted() -> bool:
        now = deployed.supervisor.status(OWNER)
        return (
            now is not None and now.state.value == "RUNNING" and bool(now.pids) and now.pids[0] != first_pid
        )

    await eventually(restarted, what="the owner to restart with its new mode")
    assert "mode=fast" in deployed.paths.component_log(OWNER).read_text()
    assert "mode: fast" in deployed.paths.effective_config.read_text()


# SubscribeToConfigurationUpdate


async def test_configuration_update_events_name_the_changed_key_under_the_watched_one(
    owner: ComponentClient,
) -> None:
    subscription = await owner.subscribe("SubscribeToConfigurationUpdate", {"keyPath": ["settings"]})
    assert subscription.reply.error is None

    await owner.call("UpdateConfiguration", {"timestamp": _now(), "valueToMerge": {"mode": "quiet"}})
    await owner.call(
        "UpdateConfiguration", {"keyPath": ["settings"], "timestamp": _now(), "valueToMerge": {"level": 5}}
    )

    event = await subscription.next_event()
    assert event == {"configurationUpdateEvent": {"componentName": OWNER, "keyPath": ["settings", "level"]}}
    assert subscription.received() == []


async def test_configuration_update_events_of_another_component_follow_a_deployment_merge(
    deployed: Kernel, recipes: Path, owner: ComponentClient
) -> None:
    subscription = await owner.subscribe(
        "SubscribeToConfigurationUpdate", {"componentName": OTHER, "keyPath": ["shared"]}
    )

    record = await deploy(
        deployed,
        recipes,
        {OTHER: "1.0.0"},
        componentToConfiguration={OTHER: {"MERGE": {"shared": {"y": 2}}}},
    )

    assert record.status is DeploymentStatus.SUCCEEDED
    event = await subscription.next_event()
    assert event == {"configurationUpdateEvent": {"componentName": OTHER, "keyPath": ["shared", "y"]}}


async def test_subscribing_to_an_unknown_components_configuration_is_resource_not_found(
    owner: ComponentClient,
) -> None:
    subscription = await owner.subscribe(
        "SubscribeToConfigurationUpdate", {"componentName": "no.such.Component"}
    )

    assert subscription.reply.error == "ResourceNotFoundError"


async def test_a_closed_configuration_subscription_gets_no_more_events(owner: ComponentClient) -> None:
    closed = await owner.subscribe("SubscribeToConfigurationUpdate", {"keyPath": ["mode"]})
    kept = await owner.subscribe("SubscribeToConfigurationUpdate", {"keyPath": ["mode"]})
    closed.close()
    # A round trip on the same connection: the server has handled the close before answering.
    await owner.call("GetConfiguration", {"keyPath": []})

    await owner.call("UpdateConfiguration", {"timestamp": _now(), "valueToMerge": {"mode": "quiet"}})

    assert (await kept.next_event())["configurationUpdateEvent"]["keyPath"] == ["mode"]
    # Both events would have been written in the same burst, the closed one's first.
    assert closed.received() == []


async def test_subscriptions_past_the_connection_limit_are_refused_and_all_dropped_on_disconnect(
    deployed: Kernel, owner: ComponentClient
) -> None:
    hoarder = await connect(deployed, OTHER)
    limit = deployed.server.max_streams_per_connection
    subscriptions = []
    for _ in range(limit + 50):
        subscriptions.append(
            await hoarder.subscribe("SubscribeToConfigurationUpdate", {"componentName": OWNER, "keyPath": []})
        )
    refused = [s.reply.error for s in subscriptions if s.reply.error is not None]
    assert refused == ["ServiceError"] * 50

    await owner.call("UpdateConfiguration", {"timestamp": _now(), "valueToMerge": {"mode": "loud"}})

    for subscription in subscriptions[:limit]:
        event = await subscription.next_event()
        assert event["configurationUpdateEvent"]["keyPath"] == ["mode"]
    await hoarder.close()
    await eventually(lambda: deployed.server.statistics().streams == 0, what="the streams to be dropped")
    reply = await owner.call("UpdateConfiguration", {"timestamp": _now(), "valueToMerge": {"mode": "after"}})
    assert reply.error is None


# Validation


def _validation_request(component: str, merge: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    return {
        "componentToConfiguration": {component: {"MERGE": merge}},
        "configurationValidationPolicy": {"timeoutInSeconds": timeout},
    }


async def test_a_rejected_configuration_fails_the_deployment_and_keeps_the_old_one(
    deployed: Kernel, recipes: Path, owner: ComponentClient
) -> None:
    validation = await owner.subscribe("SubscribeToValidateConfigurationUpdates")
    deployment_id = submit(deployed, recipes, {OWNER: "1.0.0"}, **_validation_request(OWNER, {"mode": "bad"}))

    event = (await validation.next_event())["validateConfigurationUpdateEvent"]
    assert event["deploymentId"] == deployment_id
    assert event["configuration"]["mode"] == "bad"
    assert event["configuration"]["settings"]["level"] == 1
    report = {"status": "REJECTED", "deploymentId": deployment_id, "message": "mode bad is not supported"}
    reply = await owner.call("SendConfigurationValidityReport", {"configurationValidityReport": report})
    assert reply.error is None

    record = await wait_deployment(deployed, deployment_id)
    assert record.status is DeploymentStatus.FAILED
    assert record.detailed_status is DetailedStatus.FAILED_NO_STATE_CHANGE
    assert record.failure_cause is not None
    assert OWNER in record.failure_cause
    assert "mode bad is not supported" in record.failure_cause
    assert _configuration(deployed, OWNER)["mode"] == "normal"


async def test_an_accepted_configuration_lets_the_deployment_succeed(
    deployed: Kernel, recipes: Path, owner: ComponentClient
) -> None:
    validation = await owner.subscribe("SubscribeToValidateConfigurationUpdates")
    deployment_id = submit(
        deployed, recipes, {OWNER: "1.0.0"}, **_validation_request(OWNER, {"mode": "good"})
    )

    await validation.next_event()
    report = {"status": "ACCEPTED", "deploymentId": deployment_id}
    await owner.call("SendConfigurationValidityReport", {"configurationValidityReport": report})

    record = await wait_deployment(deployed, deployment_id)
    assert record.status is DeploymentStatus.SUCCEEDED
    assert _configuration(deployed, OWNER)["mode"] == "good"


async def test_a_silent_validator_does_not_hold_the_deployment_past_its_timeout(
    deployed: Kernel, recipes: Path, owner: ComponentClient
) -> None:
    await owner.subscribe("SubscribeToValidateConfigurationUpdates")
    started = time.monotonic()

    record = await deploy(
        deployed, recipes, {OWNER: "1.0.0"}, **_validation_request(OWNER, {"mode": "x"}, 0.5)
    )

    assert record.status is DeploymentStatus.SUCCEEDED
    assert time.monotonic() - started >= 0.5


async def test_a_validator_that_went_away_does_not_hold_the_deployment(
    deployed: Kernel, recipes: Path, owner: ComponentClient
) -> None:
    validation = await owner.subscribe("SubscribeToValidateConfigurationUpdates")
    deployment_id = submit(
        deployed, recipes, {OWNER: "1.0.0"}, **_validation_request(OWNER, {"mode": "z"}, 30)
    )
    await validation.next_event()
    started = time.monotonic()

    validation.close()

    record = await wait_deployment(deployed, deployment_id)
    assert record.status is DeploymentStatus.SUCCEEDED
    assert time.monotonic() - started < 10


async def test_a_late_validity_report_is_invalid(
    deployed: Kernel, recipes: Path, owner: ComponentClient
) -> None:
    await owner.subscribe("SubscribeToValidateConfigurationUpdates")
    record = await deploy(
        deployed, recipes, {OWNER: "1.0.0"}, **_validation_request(OWNER, {"mode": "y"}, 0.2)
    )

    report = {"status": "ACCEPTED", "deploymentId": record.deployment_id}
    reply = await owner.call("SendConfigurationValidityReport", {"configurationValidityReport": report})

    assert reply.error == "InvalidArgumentsError"
    assert record.deployment_id in reply.message


async def test_components_whose_configuration_does_not_change_are_not_asked(
    deployed: Kernel, recipes: Path, owner: ComponentClient
) -> None:
    validation = await owner.subscribe("SubscribeToValidateConfigurationUpdates")

    record = await deploy(
        deployed, recipes, {OTHER: "1.0.0"}, **_validation_request(OTHER, {"shared": {"z": 1}})
    )

    assert record.status is DeploymentStatus.SUCCEEDED
    await owner.call("GetConfiguration", {"keyPath": []})
    assert validation.received() == []


@pytest.mark.parametrize(
    ("report", "field"),
    [
        (None, "configurationValidityReport"),
        ({"status": "MAYBE", "deploymentId": "d"}, "configurationValidityReport.status"),
        ({"status": "ACCEPTED"}, "configurationValidityReport.deploymentId"),
        ({"status": "ACCEPTED", "deploymentId": "d", "message": 5}, "configurationValidityReport.message"),
    ],
)
async def test_a_malformed_validity_report_names_the_field(
    owner: ComponentClient, report: Any, field: str
) -> None:
    reply = await owner.call("SendConfigurationValidityReport", {"configurationValidityReport": report})

    assert reply.error == "InvalidArgumentsError"
    assert reply.message.startswith(f"{field}:")

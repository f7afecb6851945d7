"""The lifecycle IPC operations against a real runtime: reported states, component updates, pause and resume."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from shlex import quote
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

from edgewise.runtime.deployment import DeploymentStatus
from edgewise.runtime.kernel import Kernel
from edgewise.runtime.lifecycle import ComponentState

CONTROLLER = "test.Controller"
WORKER = "test.Worker"
NEWCOMER = "test.Newcomer"
NUCLEUS = "aws.greengrass.Nucleus"


def _component(recipes: Path, name: str, lifecycle: str, configuration: str = "") -> None:
    write_recipe(
        recipes,
        name,
        "1.0.0",
        f"""\
        ComponentConfiguration:
          DefaultConfiguration:
            unused: true
{configuration}
        Manifests:
          - Lifecycle:
{lifecycle}
        """,
    )


def _policy(resources: str) -> str:
    return f"""\
            accessControl:
              aws.greengrass.ipc.lifecycle:
                test.Controller:lifecycle:1:
                  operations: ["aws.greengrass#PauseComponent", "aws.greengrass#ResumeComponent"]
                  resources: {resources}"""


def _group_states(leader: int) -> dict[int, str]:
    """The state letter (R, S, T, ...) of every live process in the group led by ``leader``."""
    states = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == leader and fields[0] not in ("Z", "X"):
            states[int(entry.name)] = fields[0]
    return states


@pytest.fixture
async def controller(kernel: Kernel, recipes: Path, tmp_path: Path) -> AsyncIterator[ComponentClient]:
    marker = tmp_path / "terminated"
    _component(
        recipes,
        CONTROLLER,
        "              Run: exec sleep 600",
        _policy(f'["{WORKER}", "no.such.Component", "{NUCLEUS}"]'),
    )
    # Two processes in the group; the shell records a SIGTERM only if it runs when the signal arrives.
    _component(
        recipes,
        WORKER,
        f"""\
              Run: |
                trap 'echo terminated > {quote(str(marker))}; exit 0' TERM
                sleep 600 &
                while true; do sleep 0.05; done""",
    )
    record = await deploy(kernel, recipes, {CONTROLLER: "1.0.0", WORKER: "1.0.0"})
    assert record.status is DeploymentStatus.SUCCEEDED, record.failure_cause
    client = await connect(kernel, CONTROLLER)
    yield client
    await client.close()


def _worker_leader(kernel: Kernel) -> int:
    status = kernel.supervisor.status(WORKER)
    assert status is not None
    assert status.pids
    return status.pids[0]


# UpdateState


async def test_update_state_running_makes_a_startup_component_that_keeps_running_ready(
    kernel: Kernel, recipes: Path
) -> None:
    _component(recipes, "test.Service", "              Startup: exec sleep 600")
    deployment_id = submit(kernel, recipes, {"test.Service": "1.0.0"})
    await eventually(
        lambda: kernel.supervisor.state("test.Service") is ComponentState.STARTING, what="STARTING"
    )
    client = await connect(kernel, "test.Service")

    reply = await client.call("UpdateState", {"state": "RUNNING"})

    assert reply.error is None
    record = await wait_deployment(kernel, deployment_id)
    assert record.status is DeploymentStatus.SUCCEEDED
    status = kernel.supervisor.status("test.Service")
    assert status is not None
    assert status.state is ComponentState.RUNNING
    assert status.pids
    await client.close()


async def test_update_state_errored_makes_the_component_errored(
    kernel: Kernel, controller: ComponentClient
) -> None:
    seen: list[ComponentState] = []
    kernel.supervisor.subscribe(lambda name, old, new: seen.append(new) if name == CONTROLLER else None)

    reply = await controller.call("UpdateState", {"state": "ERRORED"})

    assert reply.error is None
    await eventually(lambda: ComponentState.ERRORED in seen, what="the controller to be ERRORED")


@pytest.mark.parametrize("state", ["FINISHED", "running", None, 1])
async def test_update_state_accepts_only_running_and_errored(controller: ComponentClient, state: Any) -> None:
    reply = await controller.call("UpdateState", {"state": state})

    assert reply.error == "InvalidArgumentsError"
    assert reply.message.startswith("state:")


# Pause and resume


async def test_pause_stops_every_process_of_the_component_and_resume_continues_them(
    kernel: Kernel, controller: ComponentClient
) -> None:
    leader = _worker_leader(kernel)
    await eventually(lambda: len(_group_states(leader)) >= 2, what="the worker's background sleep")

    reply = await controller.call("PauseComponent", {"componentName": WORKER})

    assert reply.error is None
    await eventually(
        lambda: set(_group_states(leader).values()) == {"T"}, what="every worker process stopped"
    )
    status = kernel.supervisor.status(WORKER)
    assert status is not None
    assert status.paused
    assert status.state is ComponentState.RUNNING

    reply = await controller.call("ResumeComponent", {"componentName": WORKER})

    assert reply.error is None
    await eventually(lambda: "T" not in _group_states(leader).values(), what="every worker process continued")
    status = kernel.supervisor.status(WORKER)
    assert status is not None
    assert not status.paused


async def test_a_paused_component_is_resumed_before_it_is_stopped(
    kernel: Kernel, controller: ComponentClient, tmp_path: Path
) -> None:
    await controller.call("PauseComponent", {"componentName": WORKER})

    await kernel.supervisor.stop(WORKER)

    # A shell left stopped would never run its TERM trap: the grace period would end in SIGKILL.
    assert (tmp_path / "terminated").read_text().strip() == "terminated"
    status = kernel.supervisor.status(WORKER)
    assert status is not None
    assert status.state is ComponentState.FINISHED
    assert not status.paused


async def test_pause_and_resume_need_a_policy_covering_the_target(
    kernel: Kernel, controller: ComponentClient
) -> None:
    worker = await connect(kernel, WORKER)
    for operation in ("PauseComponent", "ResumeComponent"):
        denied = await worker.call(operation, {"componentName": CONTROLLER})
        outside_policy = await controller.call(operation, {"componentName": CONTROLLER})

        assert denied.error == "UnauthorizedError"
        assert WORKER in denied.message
        assert operation in denied.message
        assert outside_policy.error == "UnauthorizedError"
    await worker.close()
    status = kernel.supervisor.status(CONTROLLER)
    assert status is not None
    assert not status.paused


@pytest.mark.parametrize(
    ("request_body", "error"),
    [
        ({"componentName": "no.such.Component"}, "ResourceNotFoundError"),
        ({"componentName": ""}, "InvalidArgumentsError"),
        ({}, "InvalidArgumentsError"),
    ],
)
async def test_pause_of_an_unknown_or_unnamed_component_is_refused(
    controller: ComponentClient, request_body: dict[str, Any], error: str
) -> None:
    for operation in ("PauseComponent", "ResumeComponent"):
        reply = await controller.call(operation, request_body)

        assert reply.error == error


async def test_a_builtin_service_cannot_be_paused(kernel: Kernel, controller: ComponentClient) -> None:
    assert kernel.supervisor.state(NUCLEUS) is ComponentState.RUNNING

    reply = await controller.call("PauseComponent", {"componentName": NUCLEUS})

    assert reply.error == "InvalidArgumentsError"
    assert "built-in" in reply.message


async def test_only_a_running_component_can_be_paused(kernel: Kernel, controller: ComponentClient) -> None:
    await kernel.supervisor.stop(WORKER)

    paused = await controller.call("PauseComponent", {"componentName": WORKER})
    resumed = await controller.call("ResumeComponent", {"componentName": WORKER})

    assert paused.error == "InvalidArgumentsError"
    assert "FINISHED" in paused.message
    assert resumed.error == "InvalidArgumentsError"


# Component updates


def _notify(timeout: float) -> dict[str, Any]:
    return {"componentUpdatePolicy": {"action": "NOTIFY_COMPONENTS", "timeoutInSeconds": timeout}}


async def test_a_deferred_update_waits_and_is_announced_again_then_reported_done(
    kernel: Kernel, recipes: Path, controller: ComponentClient
) -> None:
    _component(recipes, NEWCOMER, "              Run: exec sleep 600")
    updates = await controller.subscribe("SubscribeToComponentUpdates")
    assert updates.reply.error is None
    deployment_id = submit(kernel, recipes, {NEWCOMER: "1.0.0"}, **_notify(30))

    first = await updates.next_event()
    assert first == {"preUpdateEvent": {"deploymentId": deployment_id, "isGgcRestarting": False}}
    deferred_at = time.monotonic()
    reply = await controller.call(
        "DeferComponentUpdate", {"deploymentId": deployment_id, "message": "busy", "recheckAfterMs": 400}
    )
    assert reply.error is None

    second = await updates.next_event()
    assert second == first
    assert time.monotonic() - deferred_at >= 0.4
    assert kernel.supervisor.status(NEWCOMER) is None
    await controller.call("DeferComponentUpdate", {"deploymentId": deployment_id, "recheckAfterMs": 0})

    assert (await updates.next_event()) == {"postUpdateEvent": {"deploymentId": deployment_id}}
    record = await wait_deployment(kernel, deployment_id)
    assert record.status is DeploymentStatus.SUCCEEDED
    assert kernel.supervisor.state(NEWCOMER) is ComponentState.RUNNING


async def test_an_update_deferred_past_its_timeout_goes_ahead_at_the_timeout(
    kernel: Kernel, recipes: Path, controller: ComponentClient
) -> None:
    _component(recipes, NEWCOMER, "              Run: exec sleep 600")
    updates = await controller.subscribe("SubscribeToComponentUpdates")
    started = time.monotonic()
    deployment_id = submit(kernel, recipes, {NEWCOMER: "1.0.0"}, **_notify(1.0))

    await updates.next_event()
    await controller.call("DeferComponentUpdate", {"deploymentId": deployment_id, "recheckAfterMs": 60_000})

    record = await wait_deployment(kernel, deployment_id)
    assert record.status is DeploymentStatus.SUCCEEDED
    assert 1.0 <= time.monotonic() - started < 30


async def test_an_unanswered_update_goes_ahead_at_the_timeout_and_a_late_answer_is_refused(
    kernel: Kernel, recipes: Path, controller: ComponentClient
) -> None:
    _component(recipes, NEWCOMER, "              Run: exec sleep 600")
    updates = await controller.subscribe("SubscribeToComponentUpdates")

    record = await deploy(kernel, recipes, {NEWCOMER: "1.0.0"}, **_notify(0.3))

    assert record.status is DeploymentStatus.SUCCEEDED
    assert (await updates.next_event())["preUpdateEvent"]["deploymentId"] == record.deployment_id
    late = await controller.call("DeferComponentUpdate", {"deploymentId": record.deployment_id})
    assert late.error == "ServiceError"
    assert record.deployment_id in late.message


async def test_a_subscriber_that_goes_away_no_longer_holds_the_update(
    kernel: Kernel, recipes: Path, controller: ComponentClient
) -> None:
    _component(recipes, NEWCOMER, "              Run: exec sleep 600")
    updates = await controller.subscribe("SubscribeToComponentUpdates")
    deployment_id = submit(kernel, recipes, {NEWCOMER: "1.0.0"}, **_notify(30))
    await updates.next_event()
    started = time.monotonic()

    updates.close()

    record = await wait_deployment(kernel, deployment_id)
    assert record.status is DeploymentStatus.SUCCEEDED
    assert time.monotonic() - started < 10


async def test_deployments_that_skip_notification_send_no_update_events(
    kernel: Kernel, recipes: Path, controller: ComponentClient
) -> None:
    _component(recipes, NEWCOMER, "              Run: exec sleep 600")
    updates = await controller.subscribe("SubscribeToComponentUpdates")

    record = await deploy(kernel, recipes, {NEWCOMER: "1.0.0"})

    assert record.status is DeploymentStatus.SUCCEEDED
    await controller.call("GetConfiguration", {"keyPath": []})
    assert updates.received() == []


async def test_deferring_without_a_subscription_is_invalid(controller: ComponentClient) -> None:
    reply = await controller.call("DeferComponentUpdate", {"deploymentId": "d-1", "recheckAfterMs": 10})

    assert reply.error == "InvalidArgumentsError"
    assert CONTROLLER in reply.message


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        ({}, "deploymentId"),
        ({"deploymentId": "d", "recheckAfterMs": -1}, "recheckAfterMs"),
        ({"deploymentId": "d", "recheckAfterMs": 1.5}, "recheckAfterMs"),
        ({"deploymentId": "d", "message": ["x"]}, "message"),
    ],
)
async def test_a_malformed_deferral_names_the_field(
    controller: ComponentClient, request_body: dict[str, Any], field: str
) -> None:
    await controller.subscribe("SubscribeToComponentUpdates")

    reply = await controller.call("DeferComponentUpdate", request_body)

    assert reply.error == "InvalidArgumentsError"
    assert reply.message.startswith(f"{field}:")

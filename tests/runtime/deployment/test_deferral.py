"""The notify-and-defer stage on a fake clock: rounds of update events, deferrals, the update timeout; and in
the deployment service's pipeline, the done event after a successful deployment only."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest
from tests.runtime.deployment.conftest import Device
from tests.support.clock import FakeClock
from tests.support.waiting import eventually

from edgewise.runtime.deployment import DeploymentStatus
from edgewise.runtime.deployment.deferral import ComponentUpdateDeferral, UpdateNotPendingError
from edgewise.runtime.deployment.document import DeploymentDocument, parse_local_deployment
from edgewise.runtime.deployment.negotiation import DeploymentClock

TIMEOUT = 60.0


class Subscriber:
    """A component's subscription: the events it received; it takes events while open."""

    def __init__(self) -> None:
        self.events: list[Mapping[str, Any]] = []
        self.open = True

    def send(self, event: Mapping[str, Any]) -> bool:
        if not self.open:
            return False
        self.events.append(event)
        return True

    def pre_updates(self) -> int:
        return sum("preUpdateEvent" in event for event in self.events)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def deferral(clock: FakeClock) -> ComponentUpdateDeferral:
    return ComponentUpdateDeferral(clock=DeploymentClock(now=clock.now, sleep=clock.sleep))


def _document(deployment_id: str = "d-1", update_timeout: float = TIMEOUT) -> DeploymentDocument:
    document = parse_local_deployment({"rootComponentVersionsToAdd": {"a.B": "1.0.0"}})
    return dataclasses.replace(
        document, deployment_id=deployment_id, notify_components=True, update_timeout=update_timeout
    )


def _pre_update(deployment_id: str = "d-1") -> dict[str, Any]:
    return {"preUpdateEvent": {"deploymentId": deployment_id, "isGgcRestarting": False}}


def _subscribe(deferral: ComponentUpdateDeferral, component: str) -> Subscriber:
    subscriber = Subscriber()
    deferral.subscribe(component, subscriber.send)
    return subscriber


async def test_without_subscribers_the_update_goes_ahead_at_once(
    deferral: ComponentUpdateDeferral, clock: FakeClock
) -> None:
    await deferral.before_update(_document())

    assert clock.time == 0.0


async def test_the_update_goes_ahead_once_every_subscriber_answered_zero(
    deferral: ComponentUpdateDeferral, clock: FakeClock
) -> None:
    first, second = _subscribe(deferral, "a.First"), _subscribe(deferral, "a.Second")
    update = asyncio.create_task(deferral.before_update(_document()))
    await eventually(lambda: first.events and second.events, what="the update event")

    deferral.defer("a.First", "d-1", 0)
    await asyncio.sleep(0)
    assert not update.done()
    deferral.defer("a.Second", "d-1", 0)

    await asyncio.wait_for(update, timeout=5)
    assert first.events == second.events == [_pre_update()]
    assert clock.time == 0.0


async def test_a_deferral_waits_the_longest_delay_then_asks_again(
    deferral: ComponentUpdateDeferral, clock: FakeClock
) -> None:
    first, second = _subscribe(deferral, "a.First"), _subscribe(deferral, "a.Second")
    update = asyncio.create_task(deferral.before_update(_document()))
    await eventually(lambda: first.events and second.events, what="the update event")

    deferral.defer("a.First", "d-1", 2_000, "busy")
    deferral.defer("a.Second", "d-1", 500)
    await eventually(lambda: clock.sleeping == [2.0], what="the wait for the longest deferral")
    clock.advance(1.5)
    await asyncio.sleep(0)
    assert first.pre_updates() == 1
    clock.advance(0.5)
    await eventually(lambda: first.pre_updates() == second.pre_updates() == 2, what="the second round")
    deferral.defer("a.First", "d-1", 0)
    deferral.defer("a.Second", "d-1", 0)

    await asyncio.wait_for(update, timeout=5)
    assert first.events == [_pre_update(), _pre_update()]
    assert clock.time == 2.0


async def test_an_update_deferred_past_its_timeout_goes_ahead_at_the_timeout_without_asking_again(
    deferral: ComponentUpdateDeferral, clock: FakeClock
) -> None:
    subscriber = _subscribe(deferral, "a.First")
    update = asyncio.create_task(deferral.before_update(_document(update_timeout=10.0)))
    await eventually(lambda: subscriber.events, what="the update event")
    clock.advance(4.0)

    deferral.defer("a.First", "d-1", 60_000)

    await eventually(lambda: clock.sleeping == [6.0], what="the wait until the timeout")
    clock.advance(6.0)
    await asyncio.wait_for(update, timeout=5)
    assert subscriber.pre_updates() == 1


async def test_an_unanswered_update_goes_ahead_at_the_timeout_and_a_late_answer_is_refused(
    deferral: ComponentUpdateDeferral, clock: FakeClock
) -> None:
    subscriber = _subscribe(deferral, "a.First")
    update = asyncio.create_task(deferral.before_update(_document(update_timeout=30.0)))
    await eventually(lambda: clock.sleeping == [30.0], what="the wait for answers")

    clock.advance(30.0)

    await asyncio.wait_for(update, timeout=5)
    assert subscriber.pre_updates() == 1
    with pytest.raises(UpdateNotPendingError, match="d-1") as refused:
        deferral.defer("a.First", "d-1", 0)
    assert (refused.value.component, refused.value.deployment_id) == ("a.First", "d-1")


async def test_a_subscriber_that_goes_away_mid_round_no_longer_holds_the_update(
    deferral: ComponentUpdateDeferral, clock: FakeClock
) -> None:
    staying = _subscribe(deferral, "a.Staying")
    leaving = Subscriber()
    unsubscribe = deferral.subscribe("a.Leaving", leaving.send)
    update = asyncio.create_task(deferral.before_update(_document()))
    await eventually(lambda: staying.events and leaving.events, what="the update event")
    deferral.defer("a.Staying", "d-1", 0)

    unsubscribe()

    await asyncio.wait_for(update, timeout=5)
    assert clock.time == 0.0
    assert not deferral.is_subscribed("a.Leaving")


async def test_a_component_with_another_subscription_left_still_holds_the_update(
    deferral: ComponentUpdateDeferral, clock: FakeClock
) -> None:
    kept = Subscriber()
    deferral.subscribe("a.First", kept.send)
    ended = deferral.subscribe("a.First", Subscriber().send)
    update = asyncio.create_task(deferral.before_update(_document()))
    await eventually(lambda: kept.events, what="the update event")

    ended()

    await asyncio.sleep(0)
    assert not update.done()
    assert deferral.is_subscribed("a.First")
    deferral.defer("a.First", "d-1", 0)
    await asyncio.wait_for(update, timeout=5)


async def test_a_closed_subscription_is_not_asked(
    deferral: ComponentUpdateDeferral, clock: FakeClock
) -> None:
    closed = _subscribe(deferral, "a.First")
    closed.open = False

    await deferral.before_update(_document())

    assert closed.events == []
    assert clock.time == 0.0


async def test_answers_to_another_deployment_or_from_a_component_not_asked_are_refused(
    deferral: ComponentUpdateDeferral,
) -> None:
    subscriber = _subscribe(deferral, "a.First")
    update = asyncio.create_task(deferral.before_update(_document()))
    await eventually(lambda: subscriber.events, what="the update event")

    with pytest.raises(UpdateNotPendingError):
        deferral.defer("a.First", "d-other", 0)
    with pytest.raises(UpdateNotPendingError):
        deferral.defer("a.Stranger", "d-1", 0)
    deferral.defer("a.First", "d-1", 0)
    await asyncio.wait_for(update, timeout=5)


async def test_the_update_event_comes_before_the_update_and_the_done_event_only_after_it(
    deferral: ComponentUpdateDeferral,
) -> None:
    first, second = _subscribe(deferral, "a.First"), _subscribe(deferral, "a.Second")
    update = asyncio.create_task(deferral.before_update(_document()))
    await eventually(lambda: first.events and second.events, what="the update event")
    deferral.defer("a.First", "d-1", 0)
    deferral.defer("a.Second", "d-1", 0)
    await asyncio.wait_for(update, timeout=5)
    assert first.events == second.events == [_pre_update()]

    await deferral.after_update(_document())

    done = {"postUpdateEvent": {"deploymentId": "d-1"}}
    assert first.events == second.events == [_pre_update(), done]


@pytest.mark.parametrize(
    ("breaks", "status", "done"),
    [(False, DeploymentStatus.SUCCEEDED, True), (True, DeploymentStatus.FAILED, False)],
)
async def test_in_the_pipeline_the_done_event_follows_a_successful_deployment_only(
    deferral: ComponentUpdateDeferral, device: Device, breaks: bool, status: DeploymentStatus, done: bool
) -> None:
    device.recipe("A", "1.0.0")
    if breaks:
        device.supervisor.breaks.add(("A", "1.0.0"))
    subscriber = Subscriber()
    loop = asyncio.get_running_loop()

    def answer(event: Mapping[str, Any]) -> bool:
        if "preUpdateEvent" in event:
            loop.call_soon(deferral.defer, "a.Watcher", event["preUpdateEvent"]["deploymentId"], 0)
        return subscriber.send(event)

    deferral.subscribe("a.Watcher", answer)
    service = device.service()
    service.add_hook(deferral)
    service.recover()
    service.start()

    service.submit(device.document("d-1", {"A": "1.0.0"}, notify_components=True, update_timeout=TIMEOUT))
    record = await service.wait_final("d-1")

    assert record is not None
    assert record.status is status
    assert subscriber.events[0] == _pre_update()
    assert ({"postUpdateEvent": {"deploymentId": "d-1"}} in subscriber.events) is done

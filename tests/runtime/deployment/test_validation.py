"""The validate stage on a fake clock: subscribers asked, accepted, rejected with a message, silent."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest
from tests.support.clock import FakeClock
from tests.support.waiting import eventually

from edgewise.runtime.deployment.document import DeploymentDocument, parse_local_deployment
from edgewise.runtime.deployment.negotiation import DeploymentClock
from edgewise.runtime.deployment.validation import ConfigurationValidation, ValidationNotPendingError

TIMEOUT = 20.0


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


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def current() -> dict[str, Any]:
    """The components' current configurations."""
    return {"a.First": {"level": 1}, "a.Second": {"level": 1}}


@pytest.fixture
def validation(clock: FakeClock, current: dict[str, Any]) -> ConfigurationValidation:
    return ConfigurationValidation(current.get, clock=DeploymentClock(now=clock.now, sleep=clock.sleep))


def _document(validation_timeout: float = TIMEOUT) -> DeploymentDocument:
    document = parse_local_deployment({"rootComponentVersionsToAdd": {"a.First": "1.0.0"}})
    return dataclasses.replace(document, deployment_id="d-1", validation_timeout=validation_timeout)


def _services(**configurations: Any) -> dict[str, Any]:
    """The planned services tree, each component with its new configuration."""
    return {name.replace("_", "."): {"configuration": value} for name, value in configurations.items()}


def _subscribe(validation: ConfigurationValidation, component: str) -> Subscriber:
    subscriber = Subscriber()
    validation.subscribe(component, subscriber.send)
    return subscriber


async def test_without_subscribers_the_configuration_is_accepted_at_once(
    validation: ConfigurationValidation, clock: FakeClock
) -> None:
    assert await validation.validate(_document(), _services(a_First={"level": 2})) is None
    assert clock.time == 0.0


async def test_a_subscriber_gets_its_new_configuration_and_may_accept_it(
    validation: ConfigurationValidation, clock: FakeClock
) -> None:
    subscriber = _subscribe(validation, "a.First")
    verdict = asyncio.create_task(validation.validate(_document(), _services(a_First={"level": 2})))
    await eventually(lambda: subscriber.events, what="the validation event")

    validation.report("a.First", "d-1", accepted=True)

    assert await asyncio.wait_for(verdict, timeout=5) is None
    assert subscriber.events == [
        {"validateConfigurationUpdateEvent": {"configuration": {"level": 2}, "deploymentId": "d-1"}}
    ]
    assert clock.time == 0.0


async def test_a_rejection_fails_validation_with_the_component_and_its_message(
    validation: ConfigurationValidation,
) -> None:
    first, second = _subscribe(validation, "a.First"), _subscribe(validation, "a.Second")
    verdict = asyncio.create_task(
        validation.validate(_document(), _services(a_First={"level": 2}, a_Second={"level": 3}))
    )
    await eventually(lambda: first.events and second.events, what="the validation events")

    validation.report("a.Second", "d-1", accepted=False, message="level 3 is too high")

    assert await asyncio.wait_for(verdict, timeout=5) == (
        "a.Second rejected its new configuration: level 3 is too high"
    )


async def test_a_rejection_without_a_message_says_so(validation: ConfigurationValidation) -> None:
    subscriber = _subscribe(validation, "a.First")
    verdict = asyncio.create_task(validation.validate(_document(), _services(a_First={"level": 2})))
    await eventually(lambda: subscriber.events, what="the validation event")

    validation.report("a.First", "d-1", accepted=False)

    assert await asyncio.wait_for(verdict, timeout=5) == (
        "a.First rejected its new configuration: no reason given"
    )


async def test_a_silent_subscriber_does_not_hold_validation_past_its_timeout_and_a_late_report_is_refused(
    validation: ConfigurationValidation, clock: FakeClock
) -> None:
    subscriber = _subscribe(validation, "a.First")
    verdict = asyncio.create_task(validation.validate(_document(), _services(a_First={"level": 2})))
    await eventually(lambda: clock.sleeping == [TIMEOUT], what="the wait for reports")

    clock.advance(TIMEOUT)

    assert await asyncio.wait_for(verdict, timeout=5) is None
    assert len(subscriber.events) == 1
    with pytest.raises(ValidationNotPendingError, match="d-1") as refused:
        validation.report("a.First", "d-1", accepted=True)
    assert (refused.value.component, refused.value.deployment_id) == ("a.First", "d-1")


async def test_an_acceptance_still_waits_for_the_others(
    validation: ConfigurationValidation, clock: FakeClock
) -> None:
    first, second = _subscribe(validation, "a.First"), _subscribe(validation, "a.Second")
    verdict = asyncio.create_task(
        validation.validate(_document(), _services(a_First={"level": 2}, a_Second={"level": 2}))
    )
    await eventually(lambda: first.events and second.events, what="the validation events")
    validation.report("a.First", "d-1", accepted=True)
    clock.advance(5.0)
    await eventually(lambda: clock.sleeping == [TIMEOUT - 5.0], what="the wait for the other report")

    validation.report("a.Second", "d-1", accepted=False, message="no")

    assert await asyncio.wait_for(verdict, timeout=5) == "a.Second rejected its new configuration: no"


async def test_a_subscriber_that_goes_away_no_longer_holds_validation(
    validation: ConfigurationValidation, clock: FakeClock
) -> None:
    leaving = Subscriber()
    unsubscribe = validation.subscribe("a.First", leaving.send)
    verdict = asyncio.create_task(validation.validate(_document(), _services(a_First={"level": 2})))
    await eventually(lambda: leaving.events, what="the validation event")

    unsubscribe()

    assert await asyncio.wait_for(verdict, timeout=5) is None
    assert clock.time == 0.0


async def test_components_whose_configuration_does_not_change_or_that_are_not_deployed_are_not_asked(
    validation: ConfigurationValidation, current: dict[str, Any]
) -> None:
    unchanged = _subscribe(validation, "a.First")
    absent = _subscribe(validation, "a.Second")
    fresh = _subscribe(validation, "a.Fresh")

    verdict = await validation.validate(_document(), _services(a_First={"level": 1}, a_Fresh={}))

    assert verdict is None
    assert unchanged.events == absent.events == fresh.events == []


async def test_a_report_for_a_deployment_not_being_validated_is_refused(
    validation: ConfigurationValidation,
) -> None:
    _subscribe(validation, "a.First")

    with pytest.raises(ValidationNotPendingError):
        validation.report("a.First", "d-1", accepted=True)

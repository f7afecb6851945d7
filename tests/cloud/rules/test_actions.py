"""Rule actions against real parts: republish through a real Mosquitto to a paho device, HTTP POST to a local
server, telemetry rows in SQLite, and the error action with AWS's error payload when an action fails."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker import BrokerConnection, MosquittoBroker
from edgewise.cloud.rules.actions import (
    ActionContext,
    PreparedAction,
    RuleActionError,
    create_http_client,
    error_payload,
    prepare_action,
    run_action,
    run_actions,
)
from edgewise.cloud.rules.evaluate import RuleMessage, RuleOutput
from edgewise.cloud.rules.schemas import RuleAction
from edgewise.cloud.telemetry import TelemetryMessage
from edgewise.cloud.workerlink import WorkerLink
from tests.cloud.broker.clients import TestClient
from tests.cloud.broker.conftest import (  # noqa: F401
    authority,
    broker,
    device,
    identities,
    settings,
)
from tests.cloud.rules.conftest import HttpReceiver
from tests.support.waiting import eventually

MESSAGE = RuleMessage(
    topic="dt/A/temp", payload=b'{"temp": 31}', client_id="A", timestamp_ms=1_764_100_000_000
)
OUTPUT = RuleOutput(b'{"t":31}')


def action(document: dict[str, Any]) -> PreparedAction:
    return prepare_action(RuleAction.model_validate(document))


def no_publish(topic: str, payload: bytes, qos: int) -> None:
    raise AssertionError("nothing is published here")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with create_http_client() as client:
        yield client


@pytest.fixture
def context(sessions: sessionmaker[Session], http: httpx.AsyncClient) -> ActionContext:
    return ActionContext(publish=no_publish, sessions=sessions, http=http)


def rows(sessions: sessionmaker[Session]) -> list[TelemetryMessage]:
    with sessions() as session:
        return list(session.scalars(sa.select(TelemetryMessage).order_by(TelemetryMessage.id)).all())


@pytest.fixture
async def link(broker: MosquittoBroker) -> AsyncIterator[WorkerLink]:  # noqa: F811
    workers = broker.settings.workers
    assert workers is not None

    async def ignore(topic: str, payload: bytes) -> None:
        return

    worker_link = WorkerLink(
        BrokerConnection.for_listener(workers), client_id="rules-test", filters=("unused",), on_message=ignore
    )
    await worker_link.start()
    try:
        yield worker_link
    finally:
        await worker_link.close()


async def test_republish_reaches_a_subscribed_device_on_the_substituted_topic(
    link: WorkerLink,
    device: Callable[..., TestClient],  # noqa: F811
    context: ActionContext,
) -> None:
    thing_a = await asyncio.to_thread(device, "A")
    await asyncio.to_thread(thing_a.subscribe, "dt/A/#")
    publishing = ActionContext(
        publish=lambda topic, payload, qos: link.publish(topic, payload, qos=qos),
        sessions=context.sessions,
        http=context.http,
    )

    await run_action(
        action({"republish": {"topic": "dt/${topic(2)}/alerts", "qos": 1}}), OUTPUT, MESSAGE, publishing
    )

    received = await eventually(lambda: thing_a.messages, what="the republished message")
    assert (received[0].topic, received[0].payload, received[0].qos) == ("dt/A/alerts", OUTPUT.payload, 1)


async def test_republish_to_an_invalid_topic_fails_naming_it(context: ActionContext) -> None:
    with pytest.raises(RuleActionError) as caught:
        await run_action(action({"republish": {"topic": "a/${missing}+"}}), OUTPUT, MESSAGE, context)

    assert caught.value.action == "RepublishAction"
    assert caught.value.resource == "a/+"


async def test_http_posts_the_output_with_substituted_headers(
    context: ActionContext, http_receiver: HttpReceiver
) -> None:
    http_action = action(
        {
            "http": {
                "url": http_receiver.url + "/hook/${topic(2)}",
                "headers": [{"key": "X-Thing", "value": "${clientid()}"}],
            }
        }
    )

    await run_action(http_action, OUTPUT, MESSAGE, context)

    [request] = http_receiver.requests
    assert (request.path, request.body) == ("/hook/A", OUTPUT.payload)
    assert request.headers["x-thing"] == "A"
    assert request.headers["content-type"] == "application/json"


async def test_http_does_not_follow_a_redirect(context: ActionContext, http_receiver: HttpReceiver) -> None:
    http_receiver.status = 307
    http_receiver.location = "http://elsewhere.invalid/steal"

    with pytest.raises(RuleActionError, match=re.escape("redirect to 'http://elsewhere.invalid/steal'")):
        await run_action(action({"http": {"url": http_receiver.url}}), OUTPUT, MESSAGE, context)

    assert len(http_receiver.requests) == 1


async def test_http_to_a_closed_port_fails(context: ActionContext) -> None:
    with pytest.raises(RuleActionError) as caught:
        await run_action(action({"http": {"url": "http://127.0.0.1:9/x"}}), OUTPUT, MESSAGE, context)

    assert caught.value.action == "HttpAction"


async def test_telemetry_stores_a_row_for_the_publishing_thing(
    context: ActionContext, sessions: sessionmaker[Session]
) -> None:
    await run_action(action({"telemetry": {"stream": "temp-${topic(2)}"}}), OUTPUT, MESSAGE, context)
    anonymous = RuleMessage(topic="x/y", payload=b"", client_id="not-a-registered-thing", timestamp_ms=5)
    await run_action(action({"telemetry": {"stream": "other"}}), OUTPUT, anonymous, context)

    stored = rows(sessions)
    assert [(row.thing_name, row.stream, row.topic, row.payload, row.timestamp_ms) for row in stored] == [
        ("A", "temp-A", "dt/A/temp", OUTPUT.payload, MESSAGE.timestamp_ms),
        ("", "other", "x/y", OUTPUT.payload, 5),
    ]
    assert stored[0].payload_json == {"t": 31}


async def test_a_failing_http_action_runs_the_error_action_with_aws_error_shape(
    context: ActionContext, sessions: sessionmaker[Session], http_receiver: HttpReceiver
) -> None:
    http_receiver.status = 500
    actions = [
        action({"http": {"url": http_receiver.url}}),
        action({"telemetry": {"stream": "good"}}),
    ]

    outcome = await run_actions(
        "HotRule", actions, action({"telemetry": {"stream": "errors"}}), OUTPUT, MESSAGE, context
    )

    assert [failure.action for failure in outcome.failures] == ["HttpAction"]
    assert outcome.error_action_failure is None
    by_stream = {row.stream: row for row in rows(sessions)}
    assert by_stream["good"].payload == OUTPUT.payload
    report = json.loads(by_stream["errors"].payload)
    assert set(report) == {
        "ruleName",
        "topic",
        "cloudwatchTraceId",
        "clientId",
        "base64OriginalPayload",
        "failures",
    }
    assert (report["ruleName"], report["topic"], report["clientId"]) == ("HotRule", "dt/A/temp", "A")
    assert base64.b64decode(report["base64OriginalPayload"]) == MESSAGE.payload
    assert report["failures"] == [
        {"failedAction": "HttpAction", "failedResource": http_receiver.url, "errorMessage": "answered 500"}
    ]


async def test_a_failing_error_action_is_reported_not_raised(
    context: ActionContext, http_receiver: HttpReceiver
) -> None:
    http_receiver.status = 503
    failing = action({"http": {"url": http_receiver.url}})

    outcome = await run_actions("R", [failing], failing, OUTPUT, MESSAGE, context)

    assert len(outcome.failures) == 1
    assert outcome.error_action_failure is not None
    assert len(http_receiver.requests) == 2


def test_error_payload_lists_every_failure() -> None:
    failures = [
        RuleActionError("HttpAction", "http://a", "answered 500"),
        RuleActionError("RepublishAction", "t", "x"),
    ]

    report = json.loads(error_payload("R", MESSAGE, failures))

    assert [failure["failedAction"] for failure in report["failures"]] == ["HttpAction", "RepublishAction"]

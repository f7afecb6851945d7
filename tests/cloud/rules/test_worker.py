"""The rules worker end to end on a real Mosquitto: a device (paho, mutual TLS) publishes, the enabled rules
republish to it and store telemetry, rule changes take effect, a failing action never stops the others, and
the counters reach the store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker import BrokerConnection, MosquittoBroker
from edgewise.cloud.rules import service
from edgewise.cloud.rules.schemas import RuleCreate
from edgewise.cloud.rules.worker import RulesWorker, publisher_of
from edgewise.cloud.telemetry import TelemetryMessage
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


def create(
    sessions: sessionmaker[Session], name: str, sql: str, *actions: dict[str, object], **extra: object
) -> None:
    request = RuleCreate.model_validate(
        {"ruleName": name, "topicRulePayload": {"sql": sql, "actions": list(actions), **extra}}
    )
    with sessions() as session:
        service.create_rule(session, request)


def streams(sessions: sessionmaker[Session]) -> dict[str, list[bytes]]:
    with sessions() as session:
        found: dict[str, list[bytes]] = {}
        for row in session.scalars(sa.select(TelemetryMessage).order_by(TelemetryMessage.id)):
            found.setdefault(row.stream, []).append(row.payload)
        return found


@pytest.fixture
async def worker(
    broker: MosquittoBroker,  # noqa: F811
    sessions: sessionmaker[Session],
) -> AsyncIterator[RulesWorker]:
    workers = broker.settings.workers
    assert workers is not None
    create(
        sessions,
        "Hot",
        "SELECT temp, topic(2) AS thing FROM 'dt/+/temp' WHERE temp > 30",
        {"republish": {"topic": "dt/${topic(2)}/alerts", "qos": 1}},
        {"telemetry": {"stream": "hot"}},
    )
    running = RulesWorker(
        sessions, BrokerConnection.for_listener(workers), poll_interval=30, flush_interval=30
    )
    await running.start()
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def thing_a(worker: RulesWorker, device: Callable[..., TestClient]) -> TestClient:  # noqa: F811
    client = await asyncio.to_thread(device, "A")
    await asyncio.to_thread(client.subscribe, "dt/A/alerts")
    return client


async def publish(client: TestClient, topic: str, document: dict[str, object]) -> None:
    await asyncio.to_thread(client.publish, topic, json.dumps(document).encode())


async def test_a_device_message_is_republished_and_stored_when_the_rule_matches(
    worker: RulesWorker, thing_a: TestClient, sessions: sessionmaker[Session]
) -> None:
    await publish(thing_a, "dt/A/temp", {"temp": 20})
    await publish(thing_a, "dt/A/temp", {"temp": 35})

    alerts = await eventually(lambda: thing_a.messages, what="the republished alert")
    assert json.loads(alerts[0].payload) == {"temp": 35, "thing": "A"}
    stored = await eventually(lambda: streams(sessions).get("hot"), what="the stored row")
    assert [json.loads(payload) for payload in stored] == [{"temp": 35, "thing": "A"}]
    with sessions() as session:
        # The broker lets only thing A publish under dt/A/, so the stored row is A's.
        assert session.scalars(sa.select(TelemetryMessage.thing_name)).all() == ["A"]
    await worker.close()
    with sessions() as session:
        rule = service.get_rule(session, "Hot")
        assert (rule.matched, rule.actions_failed) == (1, 0)


async def test_rules_created_or_disabled_later_take_effect_when_the_worker_is_woken(
    worker: RulesWorker, thing_a: TestClient, sessions: sessionmaker[Session]
) -> None:
    create(sessions, "Everything", "SELECT * FROM 'dt/A/#'", {"telemetry": {"stream": "all"}})
    with sessions() as session:
        service.set_enabled(session, "Hot", enabled=False)
    worker.wake()
    await eventually(
        lambda: [rule.name for rule in worker.rules] == ["Everything"], what="the rules reloaded"
    )

    await publish(thing_a, "dt/A/temp", {"temp": 99})

    await eventually(lambda: streams(sessions).get("all"), what="the new rule's row")
    assert "hot" not in streams(sessions)
    assert thing_a.messages == []


async def test_a_failing_action_does_not_stop_other_actions_or_rules(
    worker: RulesWorker, thing_a: TestClient, sessions: sessionmaker[Session]
) -> None:
    create(
        sessions,
        "Broken",
        "SELECT * FROM 'dt/+/temp'",
        {"http": {"url": "http://127.0.0.1:9/nowhere"}},
        {"telemetry": {"stream": "broken-but-stored"}},
        errorAction={"telemetry": {"stream": "errors"}},
    )
    worker.wake()
    await eventually(lambda: len(worker.rules) == 2, what="the rules reloaded")

    await publish(thing_a, "dt/A/temp", {"temp": 40})

    await eventually(lambda: thing_a.messages, what="the Hot rule's alert")
    # The rules' actions run concurrently: wait for every row, not just the error action's.
    expected = {"hot", "broken-but-stored", "errors"}
    found = await eventually(
        lambda: (s := streams(sessions)).keys() >= expected and s, what="every action's row"
    )
    assert set(found) == expected
    report = json.loads(found["errors"][0])
    assert report["ruleName"] == "Broken"
    assert report["failures"][0]["failedAction"] == "HttpAction"
    await worker.close()
    with sessions() as session:
        broken = service.get_rule(session, "Broken")
        assert (broken.matched, broken.actions_failed) == (1, 1)
        assert "HttpAction" in (broken.last_error or "")


async def test_with_no_enabled_rule_the_worker_holds_no_subscription(
    worker: RulesWorker, sessions: sessionmaker[Session]
) -> None:
    assert worker.subscriptions == ("#",)
    with sessions() as session:
        service.delete_rule(session, "Hot")
    worker.wake()

    await eventually(lambda: worker.subscriptions == (), what="the subscription dropped")


async def test_a_full_queue_drops_messages_instead_of_growing(
    broker: MosquittoBroker,  # noqa: F811
    sessions: sessionmaker[Session],
    device: Callable[..., TestClient],  # noqa: F811
    http_receiver: HttpReceiver,
) -> None:
    workers = broker.settings.workers
    assert workers is not None
    create(sessions, "Slow", "SELECT * FROM 'dt/+/slow'", {"http": {"url": http_receiver.url}})
    http_receiver.answering.clear()
    running = RulesWorker(
        sessions, BrokerConnection.for_listener(workers), queue_size=1, consumers=1, poll_interval=30
    )
    await running.start()
    try:
        thing_a = await asyncio.to_thread(device, "A")
        for number in range(5):
            await publish(thing_a, "dt/A/slow", {"n": number})
        await eventually(lambda: running.statistics().dropped >= 1, what="a message dropped")
        http_receiver.answering.set()
        await eventually(
            lambda: len(http_receiver.requests) + running.statistics().dropped == 5,
            what="every message either posted or dropped",
        )
        assert running.statistics().queued == 0
    finally:
        http_receiver.answering.set()
        await running.close()


@pytest.mark.parametrize(
    ("topic", "publisher"),
    [
        ("dt/pump-1/temp", "pump-1"),
        ("$aws/things/pump-1/shadow/update", "pump-1"),
        ("$aws/things/pump-1", None),
        ("factory/line-1/temp", None),
        ("dt//temp", None),
    ],
)
def test_the_publisher_is_known_where_the_acl_ties_the_topic_to_one_thing(
    topic: str, publisher: str | None
) -> None:
    assert publisher_of(topic) == publisher

"""Log ingest over MQTT on a real Mosquitto: a device (its own mTLS certificate, the default device permissions,
the real paho client) sends log batches that are stored once and answered with their token after commit, and
malformed batches are refused naming the field; the default device policy lets a thing use its own logs topics
only; the retention worker prunes on its clock."""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker import BrokerConnection, MosquittoBroker
from edgewise.cloud.db import create_database_engine, create_session_factory, upgrade_database
from edgewise.cloud.identity.policy import (
    Action,
    RequestContext,
    default_device_policy,
    evaluate,
    validate_policy,
)
from edgewise.cloud.logs import DeviceLog, LogsRetentionWorker, LogsWorker
from edgewise.cloud.logs.service import LogLine, store_lines
from edgewise.protocol import logs
from edgewise.protocol.logs import LogEntry
from tests.cloud.broker.clients import TestClient
from tests.cloud.broker.conftest import (  # noqa: F401
    authority,
    broker,
    device,
    identities,
    settings,
)
from tests.support.waiting import eventually

T0 = 1_764_100_000_000
BATCH = logs.batch_topic("A")


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, sessionmaker[Session]]]:
    url = f"sqlite:///{tmp_path / 'edgewise.db'}"
    upgrade_database(url)
    engine = create_database_engine(url)
    yield url, create_session_factory(engine)
    engine.dispose()


@pytest.fixture
def sessions(database: tuple[str, sessionmaker[Session]]) -> sessionmaker[Session]:
    return database[1]


@pytest.fixture
async def worker(
    broker: MosquittoBroker,  # noqa: F811
    sessions: sessionmaker[Session],
) -> AsyncIterator[LogsWorker]:
    assert broker.settings.workers is not None
    running = LogsWorker(sessions, BrokerConnection.for_listener(broker.settings.workers))
    await running.start()
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def thing_a(worker: LogsWorker, device: Callable[..., TestClient]) -> TestClient:  # noqa: F811
    """Device A over mutual TLS, subscribed to the answers to its batches."""
    client = await asyncio.to_thread(device, "A")
    await asyncio.to_thread(client.subscribe, f"{BATCH}/accepted", f"{BATCH}/rejected")
    return client


def entries(offsets: range, *, component: str = "com.example.Hello") -> list[LogEntry]:
    return [
        LogEntry(component, f"{component}.log", "ino-7", n * 100, T0 + n, "INFO", f"hello {n}")
        for n in offsets
    ]


async def send(client: TestClient, payload: bytes) -> tuple[str, dict[str, Any]]:
    """Publish a batch as device A and return the answer (outcome and body)."""
    seen = len(client.topics())
    await asyncio.to_thread(client.publish, BATCH, payload)
    replies = await eventually(lambda: client.messages[seen:], what="an answer to the batch")
    body: dict[str, Any] = json.loads(replies[0].payload)
    return replies[0].topic.rsplit("/", 1)[1], body


def stored(sessions: sessionmaker[Session]) -> list[DeviceLog]:
    with sessions() as session:
        return list(session.scalars(sa.select(DeviceLog).order_by(DeviceLog.id)))


async def test_a_batch_sent_twice_is_stored_once_and_each_is_answered_with_its_token(
    thing_a: TestClient, worker: LogsWorker, sessions: sessionmaker[Session]
) -> None:
    payload = logs.build_batch("t1", entries(range(3)))
    outcome, reply = await send(thing_a, payload)
    assert (outcome, reply) == ("accepted", {"clientToken": "t1", "stored": 3, "duplicates": 0})
    # Answered after the commit: the rows are there the moment the answer is.
    rows = stored(sessions)
    assert [(row.thing_name, row.component, row.file_id, row.offset, row.message) for row in rows] == [
        ("A", "com.example.Hello", "ino-7", n * 100, f"hello {n}") for n in range(3)
    ]
    outcome, reply = await send(thing_a, logs.build_batch("t2", entries(range(3))))
    assert (outcome, reply) == ("accepted", {"clientToken": "t2", "stored": 0, "duplicates": 3})
    outcome, reply = await send(thing_a, logs.build_batch("t3", entries(range(2, 5), component="System")))
    assert (reply["stored"], reply["duplicates"]) == (2, 1)
    assert len(stored(sessions)) == 5
    assert isinstance(logs.read_reply(f"{BATCH}/accepted", json.dumps(reply).encode()), logs.BatchAccepted)
    statistics = worker.statistics()
    assert (statistics.stored, statistics.duplicates, statistics.accepted_batches) == (5, 4, 3)


@pytest.mark.parametrize(
    ("payload", "field", "token"),
    [
        (b"not json", "payload", None),
        (json.dumps({"clientToken": "t9", "entries": []}).encode(), "entries", "t9"),
        (
            json.dumps(
                {
                    "clientToken": "t9",
                    "entries": [
                        {
                            "component": "System",
                            "file": "edgewise.log",
                            "fileId": "x",
                            "offset": -1,
                            "timestamp": None,
                            "level": None,
                            "message": "m",
                        }
                    ],
                }
            ).encode(),
            "entries[0].offset",
            "t9",
        ),
    ],
)
async def test_a_malformed_batch_is_rejected_naming_the_field_and_nothing_is_stored(
    thing_a: TestClient, sessions: sessionmaker[Session], payload: bytes, field: str, token: str | None
) -> None:
    outcome, reply = await send(thing_a, payload)
    assert (outcome, reply["code"], reply.get("clientToken")) == ("rejected", "InvalidPayload", token)
    assert f"Field {field!r} is invalid" in reply["message"]
    assert stored(sessions) == []


def test_the_default_device_policy_lets_a_thing_use_its_own_logs_topics_only() -> None:
    policy = validate_policy(default_device_policy())
    context = RequestContext(client_id="A", thing_name="A")
    assert evaluate([policy], Action.PUBLISH, logs.batch_topic("A"), context)
    for outcome in (logs.ACCEPTED, logs.REJECTED):
        assert evaluate([policy], Action.SUBSCRIBE, logs.reply_topic("A", outcome), context)
        assert evaluate([policy], Action.RECEIVE, logs.reply_topic("A", outcome), context)
    assert not evaluate([policy], Action.PUBLISH, logs.batch_topic("B"), context)
    assert not evaluate([policy], Action.SUBSCRIBE, logs.reply_topic("B", logs.ACCEPTED), context)


async def test_the_retention_worker_prunes_old_lines_on_its_clock(sessions: sessionmaker[Session]) -> None:
    now = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)
    with sessions.begin() as session:
        store_lines(
            session, [LogLine("A", "System", "edgewise.log", "f", n, None, None, "m") for n in range(3)]
        )
        session.execute(
            sa.update(DeviceLog)
            .where(DeviceLog.offset < 2)
            .values(received_at=now - datetime.timedelta(days=31))
        )
    worker = LogsRetentionWorker(sessions, interval=3600, clock=lambda: now)
    await worker.start()
    try:
        await eventually(lambda: worker.passes >= 1, what="a retention pass")
    finally:
        await worker.close()
    assert (worker.deleted, [row.offset for row in stored(sessions)]) == (2, [2])

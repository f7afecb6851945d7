"""Telemetry ingest over MQTT on a real Mosquitto: devices (their own mTLS certificates, the default device
policy, the real paho client) export batches that are stored once and answered after commit, have malformed
batches refused naming the field, and publish on ``dt/<thing>/...`` topics that are stored with their topic."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker import BrokerConnection, MosquittoBroker
from edgewise.cloud.db import create_database_engine, create_session_factory, upgrade_database
from edgewise.cloud.telemetry import TelemetryMessage, TelemetryWorker
from edgewise.protocol import telemetry
from edgewise.protocol.telemetry import ExportBatch, ExportRecord
from tests.cloud.broker.clients import TestClient
from tests.cloud.broker.conftest import (  # noqa: F401
    authority,
    broker,
    device,
    identities,
    settings,
)
from tests.support.waiting import eventually

NOW_MS = 1_764_100_000_000
BATCH = telemetry.batch_topic("A")


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


def worker_connection(broker: MosquittoBroker) -> BrokerConnection:  # noqa: F811
    assert broker.settings.workers is not None
    return BrokerConnection.for_listener(broker.settings.workers)


@pytest.fixture
async def worker(
    broker: MosquittoBroker,  # noqa: F811
    sessions: sessionmaker[Session],
) -> AsyncIterator[TelemetryWorker]:
    running = TelemetryWorker(
        sessions, worker_connection(broker), flush_messages=100, flush_interval_ms=20, clock=lambda: NOW_MS
    )
    await running.start()
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def thing_a(worker: TelemetryWorker, device: Callable[..., TestClient]) -> TestClient:  # noqa: F811
    """Device A over mutual TLS, subscribed to the answers to its batches."""
    client = await asyncio.to_thread(device, "A")
    await asyncio.to_thread(client.subscribe, f"{BATCH}/accepted", f"{BATCH}/rejected")
    return client


def batch(token: str, numbers: range, *, stream: str = "factory/temperature") -> ExportBatch:
    records = tuple(ExportRecord(n, NOW_MS + n, json.dumps({"celsius": 20 + n}).encode()) for n in numbers)
    return ExportBatch(token, stream, "LocalTemperature", "to-cloud", records)


async def send(client: TestClient, payload: bytes) -> tuple[str, dict[str, Any]]:
    """Publish a batch as device A and return the answer (outcome and body)."""
    seen = len(client.topics())
    await asyncio.to_thread(client.publish, BATCH, payload)
    replies = await eventually(lambda: client.messages[seen:], what="an answer to the batch")
    body: dict[str, Any] = json.loads(replies[0].payload)
    return replies[0].topic.rsplit("/", 1)[1], body


def stored(sessions: sessionmaker[Session]) -> list[TelemetryMessage]:
    with sessions() as session:
        return list(session.scalars(sa.select(TelemetryMessage).order_by(TelemetryMessage.id)))


async def test_a_batch_is_stored_once_and_answered_and_resent_it_is_answered_with_duplicates(
    thing_a: TestClient, sessions: sessionmaker[Session]
) -> None:
    payload = telemetry.build_batch(batch("c1", range(3)))
    outcome, reply = await send(thing_a, payload)
    assert outcome == "accepted"
    assert reply == {"clientToken": "c1", "stored": 3, "duplicates": 0, "lastSequenceNumber": 2}
    # Answered after the commit: the rows are there the moment the answer is.
    rows = stored(sessions)
    assert [(row.thing_name, row.stream, row.sequence_number, row.topic) for row in rows] == [
        ("A", "factory/temperature", n, None) for n in range(3)
    ]
    assert [row.payload_json for row in rows] == [{"celsius": 20 + n} for n in range(3)]
    assert [row.timestamp_ms for row in rows] == [NOW_MS + n for n in range(3)]

    outcome, reply = await send(thing_a, payload)
    assert (outcome, reply["stored"], reply["duplicates"]) == ("accepted", 0, 3)
    outcome, reply = await send(thing_a, telemetry.build_batch(batch("c3", range(2, 5))))
    assert (reply["stored"], reply["duplicates"], reply["lastSequenceNumber"]) == (2, 1, 4)
    assert len(stored(sessions)) == 5
    assert isinstance(
        telemetry.read_reply(f"{BATCH}/accepted", json.dumps(reply).encode()), telemetry.BatchAccepted
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"not json", "payload"),
        (
            json.dumps(
                {"clientToken": "c9", "stream": "/abs", "source": "s", "exportId": "e", "records": []}
            ),
            "stream",
        ),
        (
            json.dumps(
                {
                    "clientToken": "c9",
                    "stream": "s",
                    "source": "s",
                    "exportId": "e",
                    "records": [{"sequenceNumber": 0, "timestamp": 0, "payload": "%%%"}],
                }
            ),
            "records[0].payload",
        ),
    ],
)
async def test_a_malformed_batch_is_rejected_naming_the_field_and_nothing_is_stored(
    thing_a: TestClient, sessions: sessionmaker[Session], payload: bytes | str, field: str
) -> None:
    data = payload.encode() if isinstance(payload, str) else payload
    outcome, reply = await send(thing_a, data)
    assert outcome == "rejected"
    assert reply["code"] == "InvalidPayload"
    assert f"Field {field!r} is invalid" in reply["message"]
    assert reply.get("clientToken") == (None if field == "payload" else "c9")
    assert stored(sessions) == []


async def test_device_topic_messages_are_stored_with_their_topic_and_thing(
    worker: TelemetryWorker,
    device: Callable[..., TestClient],  # noqa: F811
    sessions: sessionmaker[Session],
) -> None:
    client = await asyncio.to_thread(device, "B")
    await asyncio.to_thread(client.publish, "dt/B/temperature", b'{"celsius": 21.5}')
    await asyncio.to_thread(client.publish, "dt/B/raw/bytes", b"\x00\xff")
    rows = await eventually(lambda: len(rows := stored(sessions)) == 2 and rows, what="two stored messages")
    assert [(row.thing_name, row.stream, row.topic, row.sequence_number) for row in rows] == [
        ("B", "dt/B/temperature", "dt/B/temperature", None),
        ("B", "dt/B/raw/bytes", "dt/B/raw/bytes", None),
    ]
    assert [(row.payload, row.payload_json, row.timestamp_ms) for row in rows] == [
        (b'{"celsius": 21.5}', {"celsius": 21.5}, NOW_MS),
        (b"\x00\xff", None, NOW_MS),
    ]


async def test_a_batch_that_fails_to_store_is_answered_internal_error_and_the_others_are_stored(
    thing_a: TestClient, database: tuple[str, sessionmaker[Session]]
) -> None:
    url, sessions = database
    engine = create_database_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "CREATE TRIGGER poison BEFORE INSERT ON telemetry_messages WHEN NEW.stream = 'poison' "
                "BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
            )
        )
    engine.dispose()
    outcome, reply = await send(thing_a, telemetry.build_batch(batch("bad", range(2), stream="poison")))
    assert (outcome, reply["code"], reply["clientToken"]) == ("rejected", "InternalError", "bad")
    assert "poison" in reply["message"]
    outcome, reply = await send(thing_a, telemetry.build_batch(batch("good", range(2))))
    assert (outcome, reply["stored"]) == ("accepted", 2)
    assert {row.stream for row in stored(sessions)} == {"factory/temperature"}


async def test_messages_are_written_once_enough_wait_and_closing_writes_the_rest(
    broker: MosquittoBroker,  # noqa: F811
    device: Callable[..., TestClient],  # noqa: F811
    sessions: sessionmaker[Session],
) -> None:
    # A minute-long interval: only the count (3), or closing, can make these writes happen within the test.
    running = TelemetryWorker(sessions, worker_connection(broker), flush_messages=3, flush_interval_ms=60_000)
    await running.start()
    try:
        client = await asyncio.to_thread(device, "A")
        for index in range(4):
            await asyncio.to_thread(client.publish, f"dt/A/n{index}", b"1")
        await eventually(lambda: len(stored(sessions)) == 3, what="the first three messages written")
        await eventually(lambda: running.statistics().pending_records == 1, what="the fourth message waiting")
    finally:
        await running.close()
    assert [row.topic for row in stored(sessions)] == [f"dt/A/n{index}" for index in range(4)]
    assert running.statistics().stored == 4


async def test_an_export_batch_is_written_and_answered_without_waiting_for_the_interval(
    broker: MosquittoBroker,  # noqa: F811
    device: Callable[..., TestClient],  # noqa: F811
    sessions: sessionmaker[Session],
) -> None:
    # A minute-long interval and a large count: only the waiting device can make this write happen in the test.
    running = TelemetryWorker(
        sessions, worker_connection(broker), flush_messages=1000, flush_interval_ms=60_000
    )
    await running.start()
    try:
        client = await asyncio.to_thread(device, "A")
        await asyncio.to_thread(client.subscribe, f"{BATCH}/accepted", f"{BATCH}/rejected")
        outcome, reply = await send(client, telemetry.build_batch(batch("now", range(2))))
    finally:
        await running.close()
    assert (outcome, reply["stored"]) == ("accepted", 2)


async def test_configured_filters_are_stored_without_a_thing(
    broker: MosquittoBroker,  # noqa: F811
    sessions: sessionmaker[Session],
) -> None:
    running = TelemetryWorker(
        sessions, worker_connection(broker), topic_filters=("plant/+/power",), flush_interval_ms=1
    )
    await running.start()
    try:
        assert broker.settings.workers is not None
        workers = broker.settings.workers
        with TestClient(
            workers.port, "publisher", credentials=(workers.username, workers.password)
        ) as publisher:
            assert await asyncio.to_thread(publisher.start)
            await asyncio.to_thread(publisher.publish, "plant/7/power", b"3.2")
            await asyncio.to_thread(publisher.publish, "plant/7/other", b"ignored")
            await asyncio.to_thread(publisher.publish, "dt/A/not-subscribed", b"ignored")
            await asyncio.to_thread(publisher.publish, "plant/8/power", b"4.1")
            rows = await eventually(lambda: len(rows := stored(sessions)) == 2 and rows, what="two messages")
    finally:
        await running.close()
    assert [(row.thing_name, row.topic, row.payload_json) for row in rows] == [
        ("", "plant/7/power", None),
        ("", "plant/8/power", None),
    ]

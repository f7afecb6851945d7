"""The jobs worker on a real Mosquitto, with devices over mutual TLS on their own topics: notifications,
the four operations with AWS's payloads, every rejection with the client token echoed, and throttling."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker import BrokerConnection, MosquittoBroker
from edgewise.cloud.db import create_database_engine, create_session_factory, upgrade_database
from edgewise.cloud.jobs import executions
from edgewise.cloud.jobs.worker import JobsWorker
from edgewise.cloud.partition import Partition
from edgewise.cloud.registry import service as registry
from edgewise.protocol import jobs
from tests.cloud.broker.clients import TestClient
from tests.cloud.broker.conftest import (  # noqa: F401
    authority,
    broker,
    device,
    identities,
    settings,
)
from tests.cloud.jobs.conftest import SEALER, FakeClock, create, latest
from tests.support.waiting import eventually

J = "$aws/things/A/jobs"


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """SQLite with things A and B (the devices the broker fixture lets in)."""
    url = f"sqlite:///{tmp_path / 'edgewise.db'}"
    upgrade_database(url)
    engine = create_database_engine(url)
    factory = create_session_factory(engine)
    with factory() as session:
        for name in ("A", "B"):
            registry.create_thing(session, name)
    yield factory
    engine.dispose()


async def start_worker(
    broker: MosquittoBroker,  # noqa: F811
    sessions: sessionmaker[Session],
    clock: FakeClock,
    **options: Any,
) -> JobsWorker:
    assert broker.settings.workers is not None
    worker = JobsWorker(
        sessions,
        BrokerConnection.for_listener(broker.settings.workers),
        sealer=SEALER,
        clock=clock,
        **options,
    )
    await worker.start()
    return worker


@pytest.fixture
async def worker(
    broker: MosquittoBroker,  # noqa: F811
    sessions: sessionmaker[Session],
    clock: FakeClock,
) -> AsyncIterator[JobsWorker]:
    running = await start_worker(broker, sessions, clock)
    yield running
    await running.close()


@pytest.fixture
async def thing_a(device: Callable[..., TestClient], worker: JobsWorker) -> TestClient:  # noqa: F811
    """Device A, subscribed to everything under its jobs topics."""
    client = await asyncio.to_thread(device, "A")
    await asyncio.to_thread(client.subscribe, f"{J}/#")
    return client


class Conversation:
    """Requests from a device and the replies and notifications it gets."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.seen = 0

    async def ask(self, topic: str, body: Any) -> tuple[str, dict[str, Any]]:
        """Publish ``body`` on ``topic``; the outcome (accepted/rejected) and body of the reply."""
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        start = len(self.client.messages)
        await asyncio.to_thread(self.client.publish, f"{J}/{topic}", payload)
        replies = await eventually(
            lambda: [
                m
                for m in self.client.messages[start:]
                if m.topic in (f"{J}/{topic}/accepted", f"{J}/{topic}/rejected")
            ],
            what=f"a reply to {topic}",
        )
        return replies[0].topic.rsplit("/", 1)[1], json.loads(replies[0].payload)

    async def told(self, topic: str) -> dict[str, Any]:
        """The next message on ``J/<topic>`` not read yet."""

        def find() -> list[int]:
            messages = self.client.messages
            return [
                index for index in range(self.seen, len(messages)) if messages[index].topic == f"{J}/{topic}"
            ]

        index = (await eventually(find, what=f"a message on {topic}"))[0]
        self.seen = index + 1
        body: dict[str, Any] = json.loads(self.client.messages[index].payload)
        return body


async def test_a_device_is_notified_starts_the_job_and_reports_success(
    thing_a: TestClient, sessions: sessionmaker[Session], clock: FakeClock
) -> None:
    chat = Conversation(thing_a)
    await asyncio.to_thread(create, sessions, clock, targets=["A"], document={"firmware": "2.0"})
    now = int(clock().timestamp())
    assert await chat.told("notify") == {
        "timestamp": now,
        "jobs": {
            "QUEUED": [
                {
                    "jobId": "job-1",
                    "queuedAt": now,
                    "lastUpdatedAt": now,
                    "versionNumber": 1,
                    "executionNumber": 1,
                }
            ]
        },
    }
    announced = await chat.told("notify-next")
    assert announced["execution"]["jobDocument"] == {"firmware": "2.0"}

    outcome, pending = await chat.ask("get", {"clientToken": "c0"})
    assert (outcome, pending["clientToken"], [j["jobId"] for j in pending["queuedJobs"]]) == (
        "accepted",
        "c0",
        ["job-1"],
    )
    outcome, started = await chat.ask(
        "start-next", {"clientToken": "c1", "statusDetails": {"step": "download"}}
    )
    assert (outcome, started["clientToken"], started["timestamp"]) == ("accepted", "c1", now)
    assert started["execution"]["status"] == "IN_PROGRESS"
    assert started["execution"]["statusDetails"] == {"step": "download"}
    outcome, updated = await chat.ask(
        "job-1/update",
        {"clientToken": "c2", "status": "SUCCEEDED", "expectedVersion": 2, "includeJobExecutionState": True},
    )
    assert (outcome, updated["executionState"]) == (
        "accepted",
        {"status": "SUCCEEDED", "statusDetails": {"step": "download"}, "versionNumber": 3},
    )
    assert await chat.told("notify") == {"timestamp": now, "jobs": {}}
    assert await chat.told("notify-next") == {"timestamp": now}
    outcome, described = await chat.ask("$next/get", {"clientToken": "c3"})
    assert (outcome, described) == ("accepted", {"timestamp": now, "clientToken": "c3"})


async def test_a_thing_s_requests_are_answered_in_the_order_it_sent_them(
    thing_a: TestClient, sessions: sessionmaker[Session], clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await asyncio.to_thread(create, sessions, clock, targets=["A"])
    applying = executions.update

    def slow_update(*args: Any, **kwargs: Any) -> dict[str, Any]:
        # Widens the window in which a request sent after the update could be read before it is applied.
        time.sleep(0.3)
        return applying(*args, **kwargs)

    monkeypatch.setattr(executions, "update", slow_update)
    start = len(thing_a.messages)
    for topic, body in (
        ("job-1/update", {"clientToken": "u1", "status": "IN_PROGRESS", "statusDetails": {"step": "get"}}),
        ("job-1/get", {"clientToken": "d"}),
        ("job-1/update", {"clientToken": "u2", "status": "SUCCEEDED", "statusDetails": {"step": "done"}}),
    ):
        await asyncio.to_thread(thing_a.publish, f"{J}/{topic}", json.dumps(body).encode())

    replies = await eventually(
        lambda: (
            (found := [m for m in thing_a.messages[start:] if m.topic.endswith(("/accepted", "/rejected"))])
            and len(found) == 3
            and found
        ),
        what="three replies",
    )
    tokens = [json.loads(m.payload).get("clientToken") for m in replies]
    assert tokens == ["u1", "d", "u2"]
    assert all(m.topic.endswith("/accepted") for m in replies), [m.topic for m in replies]
    described = json.loads(replies[1].payload)["execution"]
    assert (described["status"], described["statusDetails"]) == ("IN_PROGRESS", {"step": "get"})
    assert latest(sessions) == {"A": "SUCCEEDED"}


@pytest.mark.parametrize(
    ("topic", "body", "code"),
    [
        (
            "job-1/update",
            {"clientToken": "t", "status": "SUCCEEDED", "expectedVersion": 7},
            "VersionMismatch",
        ),
        ("job-1/update", {"clientToken": "t", "status": "QUEUED"}, "InvalidRequest"),
        (
            "job-1/update",
            {"clientToken": "t", "status": "SUCCEEDED", "statusDetails": {"k": 1}},
            "InvalidRequest",
        ),
        ("nope/update", {"clientToken": "t", "status": "SUCCEEDED"}, "ResourceNotFound"),
        ("nope/get", {"clientToken": "t"}, "ResourceNotFound"),
        ("get", b'{"clientToken": "t", ', "InvalidJson"),
        ("job-1/cancel", {"clientToken": "t"}, "InvalidTopic"),
        ("job-1/namespace-other/get", {"clientToken": "t"}, "ResourceNotFound"),
    ],
)
async def test_rejections_carry_the_aws_code_and_echo_the_client_token(
    thing_a: TestClient, sessions: sessionmaker[Session], clock: FakeClock, topic: str, body: Any, code: str
) -> None:
    await asyncio.to_thread(create, sessions, clock, targets=["A"])
    outcome, rejected = await Conversation(thing_a).ask(topic, body)
    assert outcome == "rejected"
    assert rejected["code"] == code
    assert rejected["timestamp"] == int(clock().timestamp())
    if code != "InvalidJson":
        assert rejected["clientToken"] == "t"
    assert ("executionState" in rejected) == (code == "VersionMismatch")


async def test_a_finished_execution_refuses_more_updates_and_describes(
    thing_a: TestClient, sessions: sessionmaker[Session], clock: FakeClock
) -> None:
    chat = Conversation(thing_a)
    await asyncio.to_thread(create, sessions, clock, targets=["A"])
    assert (await chat.ask("job-1/update", {"status": "REJECTED"}))[0] == "accepted"
    outcome, refused = await chat.ask("job-1/update", {"clientToken": "late", "status": "SUCCEEDED"})
    assert (outcome, refused["code"], refused["executionState"]["status"]) == (
        "rejected",
        "InvalidStateTransition",
        "REJECTED",
    )
    outcome, refused = await chat.ask("job-1/get", {"clientToken": "d"})
    assert (outcome, refused["code"]) == ("rejected", "TerminalStateReached")


async def test_namespaced_jobs_use_the_namespaced_topics(
    thing_a: TestClient, sessions: sessionmaker[Session], clock: FakeClock
) -> None:
    chat = Conversation(thing_a)
    await asyncio.to_thread(
        create, sessions, clock, "deploy-1", targets=["A"], namespaceId="aws-gg-deployment"
    )
    notified = await chat.told("notify-namespace-aws-gg-deployment")
    assert [summary["jobId"] for summary in notified["jobs"]["QUEUED"]] == ["deploy-1"]
    outcome, described = await chat.ask("$next/namespace-aws-gg-deployment/get", {})
    assert (outcome, described["execution"]["jobId"]) == ("accepted", "deploy-1")
    assert (await chat.ask("get", {}))[1]["queuedJobs"] == []
    outcome, _ = await chat.ask("deploy-1/namespace-aws-gg-deployment/update", {"status": "IN_PROGRESS"})
    assert outcome == "accepted"
    assert not any(message.topic.endswith("/notify-next") for message in thing_a.messages)


async def test_a_thing_that_asks_too_fast_is_throttled(
    broker: MosquittoBroker,  # noqa: F811
    device: Callable[..., TestClient],  # noqa: F811
    sessions: sessionmaker[Session],
    clock: FakeClock,
) -> None:
    slow = await start_worker(broker, sessions, clock, burst=2, requests_per_second=0.001)
    try:
        client = await asyncio.to_thread(device, "A")
        await asyncio.to_thread(client.subscribe, f"{J}/#")
        chat = Conversation(client)
        outcomes = [(await chat.ask("get", {"clientToken": str(n)}))[1].get("code") for n in range(3)]
        assert outcomes == [None, None, "RequestThrottled"]
    finally:
        await slow.close()


async def test_a_store_failure_is_an_internal_error_with_the_client_token(
    thing_a: TestClient, sessions: sessionmaker[Session]
) -> None:
    with sessions() as session:
        session.execute(sa.text("DROP TABLE job_executions"))
        session.commit()
    outcome, rejected = await Conversation(thing_a).ask("get", {"clientToken": "broken"})
    assert (outcome, rejected["code"], rejected["clientToken"]) == ("rejected", "InternalError", "broken")
    assert rejected["message"] == "The request failed; see the cloud log"


async def test_only_the_device_gets_the_secret_values_of_its_job_in_clear(
    thing_a: TestClient, sessions: sessionmaker[Session], clock: FakeClock
) -> None:
    secret = {
        "arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf",
        "versionId": "v1",
        "secretString": "s3cr3t-value",
    }
    document = {
        "components": {
            "aws.greengrass.SecretManager": {"configurationUpdate": {"merge": {"secrets": [secret]}}}
        }
    }
    chat = Conversation(thing_a)
    await asyncio.to_thread(create, sessions, clock, targets=["A"], document=document)
    with sessions() as session:
        stored = session.scalar(sa.select(sa.text("document")).select_from(sa.text("jobs")))
    assert "s3cr3t-value" not in json.dumps(stored)
    assert (await chat.told("notify-next"))["execution"]["jobDocument"] == document
    outcome, described = await chat.ask("job-1/get", {})
    assert (outcome, described["execution"]["jobDocument"]) == ("accepted", document)
    outcome, started = await chat.ask("start-next", {})
    assert (outcome, started["execution"]["jobDocument"]) == ("accepted", document)
    outcome, updated = await chat.ask("job-1/update", {"status": "SUCCEEDED", "includeJobDocument": True})
    assert (outcome, updated["jobDocument"]) == ("accepted", document)


def test_beside_other_processes_the_worker_subscribes_to_request_topics_only() -> None:
    connection = BrokerConnection("127.0.0.1", 1883)
    alone = JobsWorker(sessionmaker(), connection, sealer=SEALER)
    beside = JobsWorker(sessionmaker(), connection, sealer=SEALER, partition=Partition(1, 2))
    # Alone it hears malformed topics too (answered InvalidTopic); beside others, never their replies.
    assert alone._link._filters == [jobs.EVERY_THING_FILTER]
    assert beside._link._filters == list(jobs.REQUEST_FILTERS)

"""The jobs worker answers different things' requests in one transaction (SQLite and PostgreSQL): a rejected
request shares it and changes nothing, and a request that fails the transaction costs the others nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker import BrokerConnection
from edgewise.cloud.jobs import executions
from edgewise.cloud.jobs.events import ExecutionChange, JobChange
from edgewise.cloud.jobs.worker import JobsWorker
from edgewise.protocol import jobs
from edgewise.protocol.jobs import JobsRejection, Operation, Request
from tests.cloud.jobs.conftest import SEALER, FakeClock, create, latest
from tests.cloud.statements import selects_sent


def asked(
    thing: str,
    kind: jobs.OperationKind,
    body: dict[str, Any],
    job_id: str | None = None,
    namespace: str = "",
) -> tuple[Operation, Request]:
    """A request as the worker gets it; ``namespace`` is a topic part such as ``/namespace-<ns>``."""
    topic = f"$aws/things/{thing}/jobs/" + (
        "start-next" if kind == "start_next" else f"{job_id}{namespace}/update"
    )
    operation = jobs.parse_request_topic(topic)
    assert operation is not None
    assert operation.kind == kind
    return operation, jobs.parse_request(kind, json.dumps(body).encode())


def unstarted_worker(sessions: sessionmaker[Session], clock: FakeClock) -> JobsWorker:
    return JobsWorker(sessions, BrokerConnection("127.0.0.1", 1883), sealer=SEALER, clock=clock)


def test_a_batch_is_one_transaction_and_a_rejected_request_in_it_changes_nothing(
    fleet: sessionmaker[Session], clock: FakeClock, changes: list[JobChange]
) -> None:
    create(fleet, clock, targets=["t1", "t2", "t3"])
    changes.clear()
    commits: list[object] = []
    engine, committed = fleet.kw["bind"], commits.append
    event.listen(engine, "commit", committed)
    try:
        with selects_sent(engine) as selects:
            outcomes = unstarted_worker(fleet, clock)._handle(
                [
                    asked("t1", "start_next", {"clientToken": "s1"}),
                    asked("t2", "update", {"status": "SUCCEEDED", "expectedVersion": 9}, "job-1"),
                    asked("t3", "update", {"clientToken": "u3", "status": "SUCCEEDED"}, "job-1"),
                ]
            )
    finally:
        event.remove(engine, "commit", committed)

    started, refused, succeeded = outcomes
    assert isinstance(started, dict)
    assert started["execution"]["status"] == "IN_PROGRESS"
    assert started["clientToken"] == "s1"
    assert started["timestamp"] == int(clock().timestamp())
    assert isinstance(refused, JobsRejection)
    assert refused.code == "VersionMismatch"
    assert succeeded == {"clientToken": "u3", "timestamp": int(clock().timestamp())}
    assert len(commits) == 1
    # The start-nexts' pending lists, their jobs' documents (once per job), then the updates' executions.
    assert len(selects) == 3, selects
    assert latest(fleet) == {"t1": "IN_PROGRESS", "t2": "QUEUED", "t3": "SUCCEEDED"}
    # The listeners hear the batch's changes together, once committed.
    told = [change for change in changes if isinstance(change, ExecutionChange)]
    assert sorted((change.thing_name, change.status.value) for change in told) == [
        ("t1", "IN_PROGRESS"),
        ("t3", "SUCCEEDED"),
    ]


def test_a_request_that_fails_the_batch_costs_the_others_nothing(
    fleet: sessionmaker[Session], clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    create(fleet, clock, targets=["t1", "t2", "t3"])
    applying = executions.update

    def failing_on_t2(session: Session, thing: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        body = applying(session, thing, *args, **kwargs)
        if thing == "t2":
            raise RuntimeError("the store broke on t2")
        return body

    monkeypatch.setattr(executions, "update", failing_on_t2)
    outcomes = unstarted_worker(fleet, clock)._handle(
        [asked(thing, "update", {"status": "SUCCEEDED"}, "job-1") for thing in ("t1", "t2", "t3")]
    )

    assert isinstance(outcomes[1], RuntimeError)
    answered = [outcome for outcome in outcomes if isinstance(outcome, dict)]
    assert answered == [{"timestamp": int(clock().timestamp())}] * 2
    assert latest(fleet) == {"t1": "SUCCEEDED", "t2": "QUEUED", "t3": "SUCCEEDED"}


def test_a_batch_answers_what_was_not_read_ahead_as_one_request_would(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    create(
        fleet,
        clock,
        targets=["t1", "t2"],
        jobExecutionsRetryConfig={"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 1}]},
    )
    create(fleet, clock, "deploy", targets=["t3"], namespaceId="aws-gg-deployment")
    failed = asked("t1", "update", {"status": "FAILED"}, "job-1")
    assert isinstance(unstarted_worker(fleet, clock)._handle([failed])[0], dict)  # t1 now has execution 2

    outcomes = unstarted_worker(fleet, clock)._handle(
        [
            asked("t1", "update", {"status": "SUCCEEDED", "executionNumber": 1}, "job-1"),
            asked("t2", "update", {"status": "IN_PROGRESS", "includeJobDocument": True}, "job-1"),
            asked("t3", "update", {"status": "SUCCEEDED"}, "deploy", "/namespace-aws-gg-deployment"),
            asked("t4", "start_next", {}),
            asked("t5", "update", {"status": "SUCCEEDED"}, "job-9"),
            asked("t6", "update", {"status": "SUCCEEDED"}, "job-1"),
        ]
    )

    terminal, with_document, namespaced, nothing_next, no_job, no_execution = outcomes
    assert isinstance(terminal, JobsRejection)
    assert terminal.code == "InvalidStateTransition"  # execution 1 is FAILED; its retry is number 2
    assert isinstance(with_document, dict)
    assert with_document["jobDocument"] == {"op": "test"}
    assert isinstance(namespaced, dict)
    assert isinstance(nothing_next, dict)
    assert "execution" not in nothing_next
    assert isinstance(no_job, JobsRejection)
    assert str(no_job) == "Job 'job-9' does not exist"
    assert isinstance(no_execution, JobsRejection)
    assert str(no_execution) == "Job 'job-1' has no execution on thing 't6'"
    assert latest(fleet) == {"t1": "QUEUED#2", "t2": "IN_PROGRESS"}
    assert latest(fleet, "deploy") == {"t3": "SUCCEEDED"}

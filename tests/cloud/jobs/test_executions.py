"""The Jobs device operations on the store, on SQLite and PostgreSQL: the pending list's order, start-next,
describe (``$next``, execution numbers, documents), update (versions, transitions, details) and namespaces."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.jobs import executions
from edgewise.cloud.jobs.models import JobExecution
from edgewise.protocol import jobs
from edgewise.protocol.jobs import JobsRejection
from tests.cloud.jobs.conftest import FakeClock, create, latest, report, start_next
from tests.cloud.jobs.test_protocol import request_fields
from tests.cloud.statements import selects_sent


def describe(
    sessions: sessionmaker[Session], thing: str, job_id: str, namespace: str | None = None, **fields: Any
) -> dict[str, Any]:
    request = jobs.parse_request("describe", json.dumps(fields).encode())
    with sessions() as session:
        return executions.describe(session, thing, namespace, job_id, request)


def pending(sessions: sessionmaker[Session], thing: str, namespace: str | None = None) -> dict[str, Any]:
    with sessions() as session:
        return executions.get_pending(session, thing, namespace)


def rejection(call: Any) -> JobsRejection:
    with pytest.raises(JobsRejection) as caught:
        call()
    return caught.value


def test_pending_lists_in_progress_first_then_queued_oldest_first(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    for job_id in ("a", "b", "c"):
        create(fleet, clock, job_id, targets=["t1"])
        clock.advance(seconds=10)
    report(fleet, clock, "t1", "IN_PROGRESS", "b")
    listed = pending(fleet, "t1")
    assert [summary["jobId"] for summary in listed["inProgressJobs"]] == ["b"]
    assert [summary["jobId"] for summary in listed["queuedJobs"]] == ["a", "c"]
    first = listed["queuedJobs"][0]
    assert first == {
        "jobId": "a",
        "queuedAt": int(clock.now.timestamp()) - 30,
        "lastUpdatedAt": int(clock.now.timestamp()) - 30,
        "versionNumber": 1,
        "executionNumber": 1,
    }
    assert "startedAt" in listed["inProgressJobs"][0]
    assert pending(fleet, "t6") == {"inProgressJobs": [], "queuedJobs": []}


def test_start_next_starts_the_oldest_queued_unless_one_is_in_progress(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    create(fleet, clock, "a", targets=["t1"], document={"step": 1})
    clock.advance(seconds=1)
    create(fleet, clock, "b", targets=["t1"])
    clock.advance(seconds=1)
    started = start_next(fleet, clock, "t1", statusDetails={"phase": "begin"})["execution"]
    assert started == {
        "jobId": "a",
        "thingName": "t1",
        "status": "IN_PROGRESS",
        "statusDetails": {"phase": "begin"},
        "queuedAt": int(clock.now.timestamp()) - 2,
        "startedAt": int(clock.now.timestamp()),
        "lastUpdatedAt": int(clock.now.timestamp()),
        "versionNumber": 2,
        "executionNumber": 1,
        "jobDocument": {"step": 1},
    }
    assert start_next(fleet, clock, "t1", statusDetails={"phase": "again"})["execution"] == started
    report(fleet, clock, "t1", "SUCCEEDED", "a")
    assert start_next(fleet, clock, "t1")["execution"]["jobId"] == "b"
    report(fleet, clock, "t1", "SUCCEEDED", "b")
    assert start_next(fleet, clock, "t1") == {}


def test_describe_next_shows_without_starting_and_a_job_by_id_or_number(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    assert describe(fleet, "t1", "$next") == {}
    create(
        fleet,
        clock,
        targets=["t1"],
        document={"v": 2},
        jobExecutionsRetryConfig={"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 1}]},
    )
    next_one = describe(fleet, "t1", "$next")["execution"]
    assert (next_one["jobId"], next_one["status"], next_one["jobDocument"]) == ("job-1", "QUEUED", {"v": 2})
    assert "jobDocument" not in describe(fleet, "t1", "job-1", includeJobDocument=False)["execution"]
    report(fleet, clock, "t1", "FAILED")
    assert describe(fleet, "t1", "job-1")["execution"]["executionNumber"] == 2
    assert rejection(lambda: describe(fleet, "t1", "job-1", executionNumber=1)).code == "TerminalStateReached"
    assert rejection(lambda: describe(fleet, "t1", "job-1", executionNumber=3)).code == "ResourceNotFound"
    assert rejection(lambda: describe(fleet, "t2", "job-1")).code == "ResourceNotFound"
    assert rejection(lambda: describe(fleet, "t1", "other")).code == "ResourceNotFound"


def test_update_checks_the_expected_version_and_leaves_terminal_executions_alone(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    create(fleet, clock)
    mismatch = rejection(lambda: report(fleet, clock, "t1", "IN_PROGRESS", expectedVersion=5))
    assert mismatch.code == "VersionMismatch"
    assert mismatch.execution_state == {"status": "QUEUED", "statusDetails": {}, "versionNumber": 1}
    accepted = report(
        fleet,
        clock,
        "t1",
        "IN_PROGRESS",
        expectedVersion=1,
        statusDetails={"progress": "50%"},
        includeJobExecutionState=True,
        includeJobDocument=True,
    )
    assert accepted == {
        "executionState": {"status": "IN_PROGRESS", "statusDetails": {"progress": "50%"}, "versionNumber": 2},
        "jobDocument": {"op": "test"},
    }
    assert report(fleet, clock, "t1", "SUCCEEDED") == {}
    transition = rejection(lambda: report(fleet, clock, "t1", "FAILED"))
    assert transition.code == "InvalidStateTransition"
    assert transition.execution_state == {
        "status": "SUCCEEDED",
        "statusDetails": {"progress": "50%"},
        "versionNumber": 3,
    }
    assert latest(fleet) == {"t1": "SUCCEEDED", "t2": "QUEUED"}
    assert report(fleet, clock, "t2", "REJECTED", statusDetails={"reason": "low battery"}) == {}
    no_execution = rejection(lambda: report(fleet, clock, "t3", "SUCCEEDED"))
    assert (no_execution.code, str(no_execution)) == (
        "ResourceNotFound",
        "Job 'job-1' has no execution on thing 't3'",
    )
    no_job = rejection(lambda: report(fleet, clock, "t3", "SUCCEEDED", "job-9"))
    assert (no_job.code, str(no_job)) == ("ResourceNotFound", "Job 'job-9' does not exist")


def test_an_update_reads_its_execution_and_job_in_one_query_without_the_document(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    create(fleet, clock)
    with selects_sent(fleet.kw["bind"]) as selects:
        report(fleet, clock, "t1", "IN_PROGRESS", statusDetails={"step": "1"})
    assert len(selects) == 1, selects
    # The reply leaves the document out, so it is not read (nor are the job's targets and configurations).
    assert "document" not in selects[0], selects[0]
    assert "targets" not in selects[0], selects[0]
    assert latest(fleet) == {"t1": "IN_PROGRESS", "t2": "QUEUED"}


def test_namespaced_jobs_are_only_seen_in_their_namespace(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    create(fleet, clock, "plain", targets=["t1"])
    create(fleet, clock, "deploy", targets=["t1"], namespaceId="aws-gg-deployment")
    assert [s["jobId"] for s in pending(fleet, "t1")["queuedJobs"]] == ["plain"]
    assert [s["jobId"] for s in pending(fleet, "t1", "aws-gg-deployment")["queuedJobs"]] == ["deploy"]
    assert describe(fleet, "t1", "$next", "aws-gg-deployment")["execution"]["jobId"] == "deploy"
    assert rejection(lambda: describe(fleet, "t1", "deploy")).code == "ResourceNotFound"
    assert rejection(lambda: describe(fleet, "t1", "plain", "aws-gg-deployment")).code == "ResourceNotFound"
    request = jobs.parse_request("update", b'{"status": "SUCCEEDED"}')
    with fleet() as session:
        executions.update(session, "t1", "aws-gg-deployment", "deploy", request, now=clock())
        session.commit()
    assert latest(fleet, "deploy") == {"t1": "SUCCEEDED"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["start_next", "describe", "update"]),
    body=request_fields,
    job_id=st.sampled_from(["job-1", "$next", "other"]),
)
def test_a_refused_request_changes_nothing(
    fleet: sessionmaker[Session],
    clock: FakeClock,
    kind: jobs.OperationKind,
    body: dict[str, Any],
    job_id: str,
) -> None:
    if not fleet_has_job(fleet):
        create(fleet, clock, targets=["t1"])
    before = snapshot(fleet)
    refused: JobsRejection | None = None
    try:
        request = jobs.parse_request(kind, json.dumps(body).encode())
    except JobsRejection as exc:
        refused = exc
    else:
        with fleet() as session:
            try:
                if kind == "start_next":
                    executions.start_next(session, "t1", None, request, now=clock())
                elif kind == "describe":
                    executions.describe(session, "t1", None, job_id, request)
                elif job_id != "$next":
                    executions.update(session, "t1", None, job_id, request, now=clock())
            except JobsRejection as exc:
                refused = exc
            # The worker commits a batch of requests together: a rejected one must have changed nothing.
            session.commit()
    if refused is not None:
        assert refused.code in REFUSALS
        assert snapshot(fleet) == before


REFUSALS = (
    "InvalidRequest",
    "ResourceNotFound",
    "VersionMismatch",
    "InvalidStateTransition",
    "TerminalStateReached",
)


def fleet_has_job(sessions: sessionmaker[Session]) -> bool:
    with sessions() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(JobExecution)) != 0


def snapshot(sessions: sessionmaker[Session]) -> list[tuple[Any, ...]]:
    with sessions() as session:
        rows = session.scalars(sa.select(JobExecution).order_by(JobExecution.id))
        return [
            (row.execution_number, row.status, row.status_details, row.version_number, row.step_timeout_at)
            for row in rows
        ]

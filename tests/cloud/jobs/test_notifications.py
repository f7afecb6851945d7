"""Which notifications committed execution changes call for (``J/notify``, ``J/notify-next`` and the
namespaced notify), worked out from the store on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.jobs import executions, notifications
from edgewise.cloud.jobs.events import JobChange
from edgewise.protocol import jobs
from tests.cloud.jobs.conftest import FakeClock, create, report, start_next
from tests.cloud.statements import selects_sent

NOTIFY = "$aws/things/t1/jobs/notify"
NEXT = "$aws/things/t1/jobs/notify-next"


def told(
    sessions: sessionmaker[Session], clock: FakeClock, changes: list[JobChange]
) -> list[tuple[str, Any]]:
    """The notifications the changes so far call for, as (topic, short summary); the changes are consumed."""
    with sessions() as session:
        messages = notifications.plan_from_store(session, list(changes), now=clock())
    changes.clear()
    summary: list[tuple[str, Any]] = []
    for message in messages:
        assert message.payload["timestamp"] == int(clock().timestamp())
        if "jobs" in message.payload:
            lists = message.payload["jobs"]
            summary.append(
                (message.topic, {status: [s["jobId"] for s in items] for status, items in lists.items()})
            )
        else:
            execution = message.payload.get("execution")
            summary.append(
                (message.topic, None if execution is None else (execution["jobId"], execution["status"]))
            )
    return summary


def test_notify_when_the_pending_list_changes_and_notify_next_when_its_head_does(
    fleet: sessionmaker[Session], clock: FakeClock, changes: list[JobChange]
) -> None:
    create(fleet, clock, "a", targets=["t1"])
    assert told(fleet, clock, changes) == [(NOTIFY, {"QUEUED": ["a"]}), (NEXT, ("a", "QUEUED"))]
    clock.advance(seconds=1)
    create(fleet, clock, "b", targets=["t1"])
    assert told(fleet, clock, changes) == [(NOTIFY, {"QUEUED": ["a", "b"]})]
    start_next(fleet, clock, "t1")
    assert told(fleet, clock, changes) == []
    report(fleet, clock, "t1", "IN_PROGRESS", "a", statusDetails={"p": "1"})
    assert told(fleet, clock, changes) == []
    report(fleet, clock, "t1", "SUCCEEDED", "a")
    assert told(fleet, clock, changes) == [(NOTIFY, {"QUEUED": ["b"]}), (NEXT, ("b", "QUEUED"))]
    report(fleet, clock, "t1", "FAILED", "b")
    assert told(fleet, clock, changes) == [(NOTIFY, {}), (NEXT, None)]


def test_a_job_queued_behind_one_in_progress_changes_only_the_list(
    fleet: sessionmaker[Session], clock: FakeClock, changes: list[JobChange]
) -> None:
    create(fleet, clock, "a", targets=["t1"])
    clock.advance(seconds=1)
    start_next(fleet, clock, "t1")
    changes.clear()
    create(fleet, clock, "b", targets=["t1"])
    assert told(fleet, clock, changes) == [(NOTIFY, {"IN_PROGRESS": ["a"], "QUEUED": ["b"]})]


def test_a_batch_is_compared_with_the_state_before_all_of_it(
    fleet: sessionmaker[Session], clock: FakeClock, changes: list[JobChange]
) -> None:
    create(fleet, clock, "a", targets=["t1", "t2"])
    start_next(fleet, clock, "t1")
    report(fleet, clock, "t2", "SUCCEEDED", "a")
    assert told(fleet, clock, changes) == [
        (NOTIFY, {"IN_PROGRESS": ["a"]}),
        (NEXT, ("a", "IN_PROGRESS")),
    ]


def test_a_retry_replaces_the_failed_execution_as_next(
    fleet: sessionmaker[Session], clock: FakeClock, changes: list[JobChange]
) -> None:
    create(
        fleet,
        clock,
        targets=["t1"],
        jobExecutionsRetryConfig={"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 1}]},
    )
    changes.clear()
    report(fleet, clock, "t1", "FAILED")
    with fleet() as session:
        messages = notifications.plan_from_store(session, list(changes), now=clock())
    assert [message.topic for message in messages] == [NOTIFY, NEXT]
    assert messages[1].payload["execution"]["executionNumber"] == 2


def test_namespaced_jobs_notify_on_their_own_topic_only(
    fleet: sessionmaker[Session], clock: FakeClock, changes: list[JobChange]
) -> None:
    create(fleet, clock, "d", targets=["t1"], namespaceId="aws-gg-deployment")
    assert told(fleet, clock, changes) == [
        ("$aws/things/t1/jobs/notify-namespace-aws-gg-deployment", {"QUEUED": ["d"]})
    ]


def test_a_list_notification_holds_at_most_15_executions(
    fleet: sessionmaker[Session], clock: FakeClock, changes: list[JobChange]
) -> None:
    for number in range(16):
        create(fleet, clock, f"job-{number:02}", targets=["t1"])
        clock.advance(seconds=1)
    changes[:] = changes[-1:]
    [(topic, lists)] = told(fleet, clock, changes)
    assert topic == NOTIFY
    assert lists["QUEUED"] == [f"job-{number:02}" for number in range(15)]


def test_a_namespaced_execution_that_stays_pending_costs_no_store_read(
    fleet: sessionmaker[Session], clock: FakeClock, changes: list[JobChange]
) -> None:
    create(fleet, clock, "d", targets=["t1"], namespaceId="aws-gg-deployment")
    changes.clear()
    with fleet() as session:
        start = jobs.parse_request("start_next", b"{}")
        executions.start_next(session, "t1", "aws-gg-deployment", start, now=clock())
        session.commit()
    reads: list[notifications.Pair] = []

    def pending(pairs: Collection[notifications.Pair]) -> dict[notifications.Pair, list[Any]]:
        reads.extend(pairs)
        return {pair: [] for pair in pairs}

    # QUEUED -> IN_PROGRESS: the pending set is the same, and a namespace has no notify-next.
    assert notifications.plan(list(changes), pending, now=clock()) == []
    assert reads == []
    changes.clear()
    with fleet() as session:
        done = jobs.parse_request("update", b'{"status": "SUCCEEDED"}')
        executions.update(session, "t1", "aws-gg-deployment", "d", done, now=clock())
        session.commit()
    assert told(fleet, clock, changes) == [("$aws/things/t1/jobs/notify-namespace-aws-gg-deployment", {})]


def test_a_batch_over_several_things_and_namespaces_reads_their_lists_and_documents_in_two_queries(
    fleet: sessionmaker[Session], clock: FakeClock, changes: list[JobChange]
) -> None:
    create(fleet, clock, "d", targets=["t1", "t3"], namespaceId="aws-gg-deployment")
    clock.advance(seconds=1)
    create(fleet, clock, "a", targets=["t1", "t2"])
    with selects_sent(fleet.kw["bind"]) as selects:
        summary = told(fleet, clock, changes)
    # The lists, then the documents of their two jobs in one more query (not one per thing's row).
    assert len(selects) == 2, selects
    assert "document" not in selects[0], selects
    assert "document" in selects[1], selects
    namespaced = "$aws/things/{}/jobs/notify-namespace-aws-gg-deployment"
    # Each thing's list holds only its own executions of its namespace's jobs.
    assert sorted(summary) == sorted(
        [
            (namespaced.format("t1"), {"QUEUED": ["d"]}),
            (namespaced.format("t3"), {"QUEUED": ["d"]}),
            (NOTIFY, {"QUEUED": ["a"]}),
            (NEXT, ("a", "QUEUED")),
            ("$aws/things/t2/jobs/notify", {"QUEUED": ["a"]}),
            ("$aws/things/t2/jobs/notify-next", ("a", "QUEUED")),
        ]
    )

"""Jobs for operators and the deployments layer: creating (targets by name or ARN, thing groups), describing,
listing, cancelling and deleting, on SQLite and PostgreSQL, and the changes told to listeners."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.errors import AlreadyExistsError, CloudConflictError, InvalidRequestError, NotFoundError
from edgewise.cloud.jobs import service
from edgewise.cloud.jobs.events import ExecutionChange, JobChange, JobStatusChange, record
from edgewise.cloud.jobs.models import ExecutionStatus, JobStatus, TargetSelection
from edgewise.cloud.jobs.schemas import JobCreate
from edgewise.cloud.registry import service as registry
from tests.cloud.jobs.conftest import FakeClock, create, latest, report, run_pass, start_next


def job_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return service.list_jobs(session).total


def test_create_resolves_things_groups_and_arns_and_queues_every_thing(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    job = create(
        fleet,
        clock,
        targets=["arn:aws:iot:us-east-1:123456789012:thing/t5", "fleet", "t1", "t4"],
        description="firmware 2",
    )
    assert job.status is JobStatus.IN_PROGRESS
    assert job.planned_things == ["t5", "t1", "t2", "t3", "t4"]
    assert latest(fleet) == dict.fromkeys(["t1", "t2", "t3", "t4", "t5"], "QUEUED")
    with fleet() as session:
        stored = service.get_job(session, "job-1")
        assert stored.targets == [
            {"kind": "thing", "name": "t5"},
            {"kind": "group", "name": "fleet"},
            {"kind": "thing", "name": "t1"},
            {"kind": "thing", "name": "t4"},
        ]
        assert stored.document == {"op": "test"}
        assert service.process_details(session, stored)[ExecutionStatus.QUEUED] == 5


def test_group_targets_include_child_groups_and_dynamic_groups_by_query(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    with fleet() as session:
        registry.create_group(session, "north", parent_name="fleet")
        registry.remove_thing_from_group(session, "fleet", "t3")
        registry.add_thing_to_group(session, "north", "t3")
        registry.create_group(session, "hot", query_string="attributes.temperature:hot")
        registry.update_thing(session, "t6", attributes={"temperature": "hot"})
    create(fleet, clock, targets=["fleet", "arn:aws:iot:::thinggroup/hot"])
    assert set(latest(fleet)) == {"t1", "t2", "t3", "t6"}


def test_document_may_be_a_json_string_as_aws_cli_sends_it(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    job = create(fleet, clock, document='{"operation": "reboot"}', namespaceId="ops")
    assert job.document == {"operation": "reboot"}
    assert job.namespace_id == "ops"


@pytest.mark.parametrize(
    ("targets", "error", "message"),
    [
        (["nobody"], NotFoundError, "Thing or thing group 'nobody' does not exist"),
        (["arn:aws:iot:::thing/nobody"], NotFoundError, "Thing 'nobody' does not exist"),
        (["arn:aws:iot:::thinggroup/t1"], NotFoundError, "Thing group 't1' does not exist"),
        (["arn:aws:s3:::bucket"], InvalidRequestError, "Field 'targets[0]' is invalid"),
        (["t1", "bad name"], InvalidRequestError, "Field 'targets[1]' is invalid"),
    ],
)
def test_bad_targets_are_refused_and_nothing_is_stored(
    fleet: sessionmaker[Session], clock: FakeClock, targets: list[str], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("[", r"\[").replace("]", r"\]")):
        create(fleet, clock, targets=targets)
    assert job_count(fleet) == 0


def test_a_name_of_both_a_thing_and_a_group_needs_an_arn(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    with fleet() as session:
        registry.create_group(session, "t1")
    with pytest.raises(InvalidRequestError, match="names both a thing and a thing group; give the ARN"):
        create(fleet, clock, targets=["t1"])
    assert create(fleet, clock, targets=["arn:aws:iot:::thinggroup/t1"]).planned_things == []


def test_job_ids_are_unique(fleet: sessionmaker[Session], clock: FakeClock) -> None:
    create(fleet, clock)
    with pytest.raises(AlreadyExistsError, match="Job 'job-1' already exists"):
        create(fleet, clock, targets=["t3"])
    assert latest(fleet) == {"t1": "QUEUED", "t2": "QUEUED"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"jobId": "has space"}, "jobId"),
        ({"jobId": "x" * 65}, "jobId"),
        ({"targets": []}, "targets"),
        ({"document": "[1, 2]"}, "document"),
        ({"document": "not json"}, "document"),
        ({"document": {"big": "x" * 40_000}}, "document"),
        ({"targetSelection": "SOMETIMES"}, "targetSelection"),
        ({"jobExecutionsRolloutConfig": {"maximumPerMinute": 1001}}, "maximumPerMinute"),
        ({"jobExecutionsRolloutConfig": {"maximumPerMinute": "5"}}, "maximumPerMinute"),
        (
            {
                "jobExecutionsRolloutConfig": {
                    "exponentialRate": {
                        "baseRatePerMinute": 5,
                        "incrementFactor": 1.15,
                        "rateIncreaseCriteria": {"numberOfNotifiedThings": 5},
                    }
                }
            },
            "incrementFactor",
        ),
        (
            {
                "jobExecutionsRolloutConfig": {
                    "exponentialRate": {
                        "baseRatePerMinute": 5,
                        "incrementFactor": 2,
                        "rateIncreaseCriteria": {"numberOfNotifiedThings": 5, "numberOfSucceededThings": 5},
                    }
                }
            },
            "rateIncreaseCriteria",
        ),
        (
            {
                "abortConfig": {
                    "criteriaList": [
                        {
                            "failureType": "FAILED",
                            "action": "CANCEL",
                            "thresholdPercentage": 10.999,
                            "minNumberOfExecutedThings": 1,
                        }
                    ]
                }
            },
            "thresholdPercentage",
        ),
        (
            {
                "abortConfig": {
                    "criteriaList": [
                        {
                            "failureType": "FAILED",
                            "action": "STOP",
                            "thresholdPercentage": 10,
                            "minNumberOfExecutedThings": 1,
                        }
                    ]
                }
            },
            "action",
        ),
        ({"timeoutConfig": {"inProgressTimeoutInMinutes": 10081}}, "inProgressTimeoutInMinutes"),
        (
            {"jobExecutionsRetryConfig": {"criteriaList": [{"failureType": "ALL", "numberOfRetries": 11}]}},
            "numberOfRetries",
        ),
        (
            {
                "jobExecutionsRetryConfig": {
                    "criteriaList": [
                        {"failureType": "FAILED", "numberOfRetries": 6},
                        {"failureType": "TIMED_OUT", "numberOfRetries": 5},
                    ]
                }
            },
            "criteriaList",
        ),
        (
            {
                "jobExecutionsRetryConfig": {
                    "criteriaList": [
                        {"failureType": "ALL", "numberOfRetries": 1},
                        {"failureType": "FAILED", "numberOfRetries": 1},
                    ]
                }
            },
            "criteriaList",
        ),
        ({"unknownField": 1}, "unknownField"),
    ],
)
def test_job_specifications_are_checked_field_by_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        JobCreate.model_validate({"jobId": "job-1", "targets": ["t1"], "document": {}, **fields})
    assert field in str(caught.value)


def test_cancel_cancels_queued_executions_and_lets_in_progress_ones_finish(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    create(fleet, clock, targets=["fleet"])
    start_next(fleet, clock, "t1")
    with fleet() as session:
        job = service.cancel_job(
            session, "job-1", reason_code="BAD_BUILD", comment="wrong image", now=clock()
        )
    assert (job.status, job.reason_code, job.comment, job.force_canceled) == (
        JobStatus.CANCELED,
        "BAD_BUILD",
        "wrong image",
        False,
    )
    assert latest(fleet) == {"t1": "IN_PROGRESS", "t2": "CANCELED", "t3": "CANCELED"}
    report(fleet, clock, "t1", "SUCCEEDED")
    assert latest(fleet)["t1"] == "SUCCEEDED"


def test_force_cancel_also_cancels_in_progress_executions_even_of_a_cancelled_job(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    create(fleet, clock)
    start_next(fleet, clock, "t1")
    with fleet() as session:
        service.cancel_job(session, "job-1", now=clock())
        with pytest.raises(CloudConflictError, match="already CANCELED; give force"):
            service.cancel_job(session, "job-1", now=clock())
        assert service.cancel_job(session, "job-1", force=True, now=clock()).force_canceled
    assert latest(fleet) == {"t1": "CANCELED", "t2": "CANCELED"}


def test_a_completed_job_cannot_be_cancelled(fleet: sessionmaker[Session], clock: FakeClock) -> None:
    create(fleet, clock, targets=["t1"])
    report(fleet, clock, "t1", "SUCCEEDED")
    assert run_pass(fleet, clock).completed == ["job-1"]
    with fleet() as session, pytest.raises(CloudConflictError, match="is COMPLETED and cannot be cancelled"):
        service.cancel_job(session, "job-1", force=True, now=clock())


def test_delete_needs_force_while_in_progress_then_the_engine_removes_the_job(
    fleet: sessionmaker[Session], clock: FakeClock, changes: list[JobChange]
) -> None:
    create(fleet, clock)
    with fleet() as session:
        with pytest.raises(CloudConflictError, match="is IN_PROGRESS; cancel it first or give force"):
            service.delete_job(session, "job-1", now=clock())
        service.delete_job(session, "job-1", force=True, now=clock())
        with pytest.raises(NotFoundError):
            service.get_job(session, "job-1")
    assert [change.status for change in changes if isinstance(change, ExecutionChange)][-2:] == [
        ExecutionStatus.CANCELED,
        ExecutionStatus.CANCELED,
    ]
    assert run_pass(fleet, clock).deleted == ["job-1"]
    create(fleet, clock)  # the id is free again
    assert latest(fleet) == {"t1": "QUEUED", "t2": "QUEUED"}


def test_listings_filter_and_page(fleet: sessionmaker[Session], clock: FakeClock) -> None:
    create(fleet, clock, "a", targets=["t1"])
    clock.advance(seconds=1)
    create(fleet, clock, "b", targets=["t1", "t2"], namespaceId="aws-gg-deployment")
    clock.advance(seconds=1)
    create(fleet, clock, "c", targets=["t3"])
    with fleet() as session:
        service.cancel_job(session, "c", now=clock())
        assert [job.job_id for job in service.list_jobs(session).items] == ["c", "b", "a"]
        assert [job.job_id for job in service.list_jobs(session, status=JobStatus.CANCELED).items] == ["c"]
        only = service.list_jobs(session, namespace_id="aws-gg-deployment")
        assert [job.job_id for job in only.items] == ["b"]
        page = service.list_jobs(session, limit=1, offset=1)
        assert ([job.job_id for job in page.items], page.total) == (["b"], 3)
        executions = service.list_job_executions(session, "b")
        assert [(e.thing_name, e.status) for e in executions.items] == [
            ("t1", ExecutionStatus.QUEUED),
            ("t2", ExecutionStatus.QUEUED),
        ]
        of_t1 = service.list_thing_executions(session, "t1")
        assert [job.job_id for _, job in of_t1.items] == ["b", "a"]
        queued = service.list_thing_executions(
            session, "t1", status=ExecutionStatus.QUEUED, namespace_id="aws-gg-deployment"
        )
        assert [job.job_id for _, job in queued.items] == ["b"]
        with pytest.raises(InvalidRequestError, match="'limit' is invalid"):
            service.list_jobs(session, limit=0)
        with pytest.raises(InvalidRequestError, match="'thingName' is invalid"):
            service.list_thing_executions(session, "no/slash")


def test_continuous_jobs_are_stored_as_such(fleet: sessionmaker[Session], clock: FakeClock) -> None:
    job = create(fleet, clock, targets=["fleet"], targetSelection="CONTINUOUS")
    assert job.target_selection is TargetSelection.CONTINUOUS


def test_listeners_hear_committed_changes_in_order_and_never_rolled_back_ones(
    fleet: sessionmaker[Session], clock: FakeClock, changes: list[JobChange]
) -> None:
    create(fleet, clock, targets=["t1"])
    start_next(fleet, clock, "t1")
    with fleet() as session:
        service.cancel_job(session, "job-1", force=True, now=clock())
    with fleet() as session:
        record(session, JobStatusChange("ghost", None, JobStatus.IN_PROGRESS, JobStatus.CANCELED))
        session.rollback()
    with fleet() as session:
        record(session, JobStatusChange("ghost", None, JobStatus.IN_PROGRESS, JobStatus.CANCELED))
    with fleet() as session:
        session.commit()
    described = [
        (change.old_status, change.status) if isinstance(change, ExecutionChange) else ("job", change.status)
        for change in changes
    ]
    assert described == [
        (None, ExecutionStatus.QUEUED),
        (ExecutionStatus.QUEUED, ExecutionStatus.IN_PROGRESS),
        ("job", JobStatus.CANCELED),
        (ExecutionStatus.IN_PROGRESS, ExecutionStatus.CANCELED),
    ]

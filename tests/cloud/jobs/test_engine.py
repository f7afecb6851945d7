"""The jobs engine with a clock the test moves, on SQLite and PostgreSQL: rollout rates, abort criteria,
in-progress and step timeouts, retries, continuous membership, completion."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.jobs import JobEngine, rollout, service
from edgewise.cloud.jobs import engine as engine_module
from edgewise.cloud.jobs.events import JobChange, JobStatusChange
from edgewise.cloud.jobs.models import JobStatus
from edgewise.cloud.jobs.schemas import RolloutConfig
from edgewise.cloud.registry import service as registry
from tests.cloud.jobs.conftest import THINGS, FakeClock, create, latest, report, run_pass, start_next
from tests.support.waiting import eventually


def queued_count(sessions: sessionmaker[Session], job_id: str = "job-1") -> int:
    return len(latest(sessions, job_id))


def abort_on(failure_type: str, percentage: float, minimum: int) -> dict[str, object]:
    criterion = {
        "failureType": failure_type,
        "action": "CANCEL",
        "thresholdPercentage": percentage,
        "minNumberOfExecutedThings": minimum,
    }
    return {"criteriaList": [criterion]}


def test_a_constant_rate_creates_at_most_that_many_executions_a_minute(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    create(fleet, clock, targets=THINGS[:5], jobExecutionsRolloutConfig={"maximumPerMinute": 2})
    assert queued_count(fleet) == 2
    clock.advance(seconds=59)
    assert run_pass(fleet, clock).queued == 0
    clock.advance(seconds=1)
    assert run_pass(fleet, clock).queued == 2
    assert run_pass(fleet, clock).queued == 0
    clock.advance(minutes=1)
    run_pass(fleet, clock)
    assert list(latest(fleet)) == THINGS[:5]


def test_an_exponential_rate_grows_with_notified_things(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    config = {
        "exponentialRate": {
            "baseRatePerMinute": 1,
            "incrementFactor": 2,
            "rateIncreaseCriteria": {"numberOfNotifiedThings": 2},
        }
    }
    with fleet() as session:
        for number in range(7, 13):
            registry.create_thing(session, f"t{number}")
    everything = THINGS + [f"t{number}" for number in range(7, 13)]
    create(fleet, clock, targets=everything, jobExecutionsRolloutConfig=config)
    totals = [queued_count(fleet)]
    for _ in range(4):
        clock.advance(minutes=1)
        run_pass(fleet, clock)
        totals.append(queued_count(fleet))
    # rates 1, 1 (1 notified), 2 (2 notified), 4 (4 notified), 8 (8 notified; 4 things left)
    assert totals == [1, 2, 4, 8, 12]


def test_an_exponential_rate_on_succeeded_things_waits_for_successes(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    config = {
        "maximumPerMinute": 3,
        "exponentialRate": {
            "baseRatePerMinute": 1,
            "incrementFactor": 5,
            "rateIncreaseCriteria": {"numberOfSucceededThings": 1},
        },
    }
    create(fleet, clock, targets=THINGS, jobExecutionsRolloutConfig=config)
    clock.advance(minutes=1)
    run_pass(fleet, clock)
    assert queued_count(fleet) == 2
    report(fleet, clock, "t1", "SUCCEEDED")
    clock.advance(minutes=1)
    run_pass(fleet, clock)
    assert queued_count(fleet) == 5  # 1 * 5 capped at maximumPerMinute 3


@pytest.mark.parametrize(
    ("notified", "succeeded", "expected"),
    [(0, 0, 10), (9, 0, 10), (10, 0, 11), (20, 0, 12), (30, 0, 13), (10_000, 0, 50)],
)
def test_rate_steps_are_exact_decimal_multiples_capped_at_the_maximum(
    notified: int, succeeded: int, expected: int
) -> None:
    config = RolloutConfig.model_validate(
        {
            "maximumPerMinute": 50,
            "exponentialRate": {
                "baseRatePerMinute": 10,
                "incrementFactor": 1.1,
                "rateIncreaseCriteria": {"numberOfNotifiedThings": 10},
            },
        }
    )
    assert rollout.rate_per_minute(config, notified=notified, succeeded=succeeded) == expected
    assert rollout.rate_per_minute(None, notified=notified, succeeded=succeeded) == 1000


def test_abort_when_the_failure_percentage_of_notified_things_reaches_the_threshold(
    fleet: sessionmaker[Session], clock: FakeClock, changes: list[JobChange]
) -> None:
    create(fleet, clock, targets=THINGS[:4], abortConfig=abort_on("FAILED", 50, 2))
    start_next(fleet, clock, "t4")
    report(fleet, clock, "t1", "FAILED")
    assert run_pass(fleet, clock).aborted == []  # 1 of 4
    report(fleet, clock, "t2", "REJECTED")
    assert run_pass(fleet, clock).aborted == []  # REJECTED is not FAILED
    report(fleet, clock, "t3", "FAILED")
    assert run_pass(fleet, clock).aborted == ["job-1"]  # 2 of 4
    with fleet() as session:
        job = service.get_job(session, "job-1")
        assert (job.status, job.reason_code) == (JobStatus.CANCELED, "ABORTED")
        assert "2 of 4 notified things ended FAILED" in (job.comment or "")
    assert latest(fleet) == {"t1": "FAILED", "t2": "REJECTED", "t3": "FAILED", "t4": "IN_PROGRESS"}
    assert [c.status for c in changes if isinstance(c, JobStatusChange)] == [JobStatus.CANCELED]


def test_abort_waits_for_the_minimum_number_of_notified_things_and_stops_the_rollout(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    create(
        fleet,
        clock,
        targets=THINGS,
        abortConfig=abort_on("ALL", 100, 2),
        jobExecutionsRolloutConfig={"maximumPerMinute": 1},
    )
    report(fleet, clock, "t1", "FAILED")
    assert run_pass(fleet, clock).aborted == []  # only 1 notified
    clock.advance(minutes=1)
    run_pass(fleet, clock)  # t2 notified: 1 of 2 failed
    report(fleet, clock, "t2", "REJECTED")
    assert run_pass(fleet, clock).aborted == ["job-1"]
    clock.advance(minutes=5)
    run_pass(fleet, clock)
    assert latest(fleet) == {"t1": "FAILED", "t2": "REJECTED"}


def test_in_progress_timeout_times_out_a_started_execution(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    create(fleet, clock, timeoutConfig={"inProgressTimeoutInMinutes": 10})
    clock.advance(minutes=30)
    assert run_pass(fleet, clock).timed_out == 0  # QUEUED executions have no timer
    start_next(fleet, clock, "t1")
    clock.advance(minutes=9, seconds=59)
    report(fleet, clock, "t1", "IN_PROGRESS", statusDetails={"step": "download"})
    assert run_pass(fleet, clock).timed_out == 0
    clock.advance(seconds=1)
    assert run_pass(fleet, clock).timed_out == 1
    assert latest(fleet) == {"t1": "TIMED_OUT", "t2": "QUEUED"}


def test_step_timers_are_set_reset_and_stopped_by_the_device(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    create(fleet, clock)
    start_next(fleet, clock, "t1", stepTimeoutInMinutes=1)
    start_next(fleet, clock, "t2", stepTimeoutInMinutes=1)
    clock.advance(seconds=50)
    report(fleet, clock, "t1", "IN_PROGRESS", stepTimeoutInMinutes=2)
    report(fleet, clock, "t2", "IN_PROGRESS", stepTimeoutInMinutes=-1)
    clock.advance(seconds=20)
    assert run_pass(fleet, clock).timed_out == 0
    clock.advance(seconds=100)
    assert run_pass(fleet, clock).timed_out == 1
    assert latest(fleet) == {"t1": "TIMED_OUT", "t2": "IN_PROGRESS"}


def test_failed_executions_are_retried_with_new_execution_numbers_until_the_retries_run_out(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    create(
        fleet,
        clock,
        targets=["t1"],
        jobExecutionsRetryConfig={"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 2}]},
    )
    report(fleet, clock, "t1", "FAILED")
    assert latest(fleet) == {"t1": "QUEUED#2"}
    assert start_next(fleet, clock, "t1")["execution"]["executionNumber"] == 2
    report(fleet, clock, "t1", "FAILED")
    report(fleet, clock, "t1", "FAILED")
    assert latest(fleet) == {"t1": "FAILED#3"}
    assert run_pass(fleet, clock).completed == ["job-1"]
    with fleet() as session:
        attempts = service.list_job_executions(session, "job-1").items
        assert [(e.execution_number, e.retry_attempt, e.status.value) for e in attempts] == [
            (1, 0, "FAILED"),
            (2, 1, "FAILED"),
            (3, 2, "FAILED"),
        ]


def test_timed_out_executions_are_retried_under_all_and_rejected_ones_never(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    create(
        fleet,
        clock,
        timeoutConfig={"inProgressTimeoutInMinutes": 1},
        jobExecutionsRetryConfig={"criteriaList": [{"failureType": "ALL", "numberOfRetries": 1}]},
    )
    start_next(fleet, clock, "t1")
    report(fleet, clock, "t2", "REJECTED")
    clock.advance(minutes=1)
    run_pass(fleet, clock)
    assert latest(fleet) == {"t1": "QUEUED#2", "t2": "REJECTED"}


def test_no_retry_once_the_job_is_cancelled(fleet: sessionmaker[Session], clock: FakeClock) -> None:
    create(
        fleet,
        clock,
        targets=["t1"],
        jobExecutionsRetryConfig={"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 3}]},
    )
    start_next(fleet, clock, "t1")
    with fleet() as session:
        service.cancel_job(session, "job-1", now=clock())
    report(fleet, clock, "t1", "FAILED")
    assert latest(fleet) == {"t1": "FAILED"}


def test_continuous_jobs_follow_group_membership(fleet: sessionmaker[Session], clock: FakeClock) -> None:
    create(
        fleet,
        clock,
        targets=["fleet"],
        targetSelection="CONTINUOUS",
        jobExecutionsRolloutConfig={"maximumPerMinute": 1},
    )
    assert latest(fleet) == {"t1": "QUEUED"}
    with fleet() as session:
        registry.add_thing_to_group(session, "fleet", "t4")
        registry.remove_thing_from_group(session, "fleet", "t1")
    report_ = run_pass(fleet, clock)
    # t4 joined after creation: queued at once, outside the rate; t2 and t3 still wait for theirs.
    assert (report_.queued, report_.removed) == (1, 1)
    assert latest(fleet) == {"t1": "REMOVED", "t4": "QUEUED"}
    with fleet() as session:
        registry.add_thing_to_group(session, "fleet", "t1")
        registry.remove_thing_from_group(session, "fleet", "t3")
    clock.advance(minutes=1)
    run_pass(fleet, clock)
    clock.advance(minutes=1)
    run_pass(fleet, clock)
    assert latest(fleet) == {"t1": "QUEUED#2", "t2": "QUEUED", "t4": "QUEUED"}
    for name in ("t1", "t2", "t4"):
        report(fleet, clock, name, "SUCCEEDED")
    assert run_pass(fleet, clock).completed == []  # continuous jobs never complete


def test_continuous_jobs_follow_dynamic_groups(fleet: sessionmaker[Session], clock: FakeClock) -> None:
    with fleet() as session:
        registry.create_group(session, "hot", query_string="attributes.temperature:hot")
    create(fleet, clock, targets=["hot"], targetSelection="CONTINUOUS")
    assert latest(fleet) == {}
    with fleet() as session:
        registry.update_thing(session, "t5", attributes={"temperature": "hot"})
    run_pass(fleet, clock)
    assert latest(fleet) == {"t5": "QUEUED"}
    start_next(fleet, clock, "t5")
    with fleet() as session:
        registry.update_thing(session, "t5", attributes={"temperature": "cold"})
    run_pass(fleet, clock)
    assert latest(fleet) == {"t5": "REMOVED"}


def test_snapshot_jobs_complete_when_every_execution_is_terminal(
    fleet: sessionmaker[Session], clock: FakeClock, changes: list[JobChange]
) -> None:
    create(fleet, clock, targets=["fleet"])
    with fleet() as session:
        registry.add_thing_to_group(session, "fleet", "t4")  # a snapshot does not follow membership
    report(fleet, clock, "t1", "SUCCEEDED")
    report(fleet, clock, "t2", "FAILED")
    assert run_pass(fleet, clock).completed == []
    report(fleet, clock, "t3", "REJECTED")
    clock.advance(minutes=3)
    assert run_pass(fleet, clock).completed == ["job-1"]
    with fleet() as session:
        job = service.get_job(session, "job-1")
        assert (job.status, job.completed_at) == (JobStatus.COMPLETED, clock())
    assert set(latest(fleet)) == {"t1", "t2", "t3"}
    assert [c.status for c in changes if isinstance(c, JobStatusChange)] == [JobStatus.COMPLETED]


def test_a_snapshot_job_without_things_completes_at_the_first_pass(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    with fleet() as session:
        registry.create_group(session, "empty")
    create(fleet, clock, targets=["empty"])
    assert run_pass(fleet, clock).completed == ["job-1"]


def test_things_deleted_before_their_turn_are_skipped(fleet: sessionmaker[Session], clock: FakeClock) -> None:
    create(fleet, clock, targets=THINGS[:3], jobExecutionsRolloutConfig={"maximumPerMinute": 1})
    with fleet() as session:
        registry.delete_thing(session, "t2")
    clock.advance(minutes=1)
    run_pass(fleet, clock)
    assert latest(fleet) == {"t1": "QUEUED", "t3": "QUEUED"}


async def test_the_engine_passes_at_start_and_when_woken(
    fleet: sessionmaker[Session], clock: FakeClock
) -> None:
    await asyncio.to_thread(
        create, fleet, clock, targets=["t1", "t2"], timeoutConfig={"inProgressTimeoutInMinutes": 1}
    )
    await asyncio.to_thread(start_next, fleet, clock, "t1")
    clock.advance(minutes=1)
    engine = JobEngine(fleet, clock=clock, interval=3600)
    await engine.start()
    try:
        await eventually(lambda: latest(fleet).get("t1") == "TIMED_OUT", what="the first pass")
        await asyncio.to_thread(start_next, fleet, clock, "t2")
        clock.advance(minutes=1)
        engine.wake()
        await eventually(lambda: latest(fleet).get("t2") == "TIMED_OUT", what="the pass after wake")
    finally:
        await engine.close()
    assert latest(fleet) == {"t1": "TIMED_OUT", "t2": "TIMED_OUT"}


async def test_membership_is_followed_after_a_wake_not_on_every_pass(
    fleet: sessionmaker[Session], clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    followed: list[bool] = []
    real_pass = engine_module.run_pass

    def counted(sessions: sessionmaker[Session], **options: Any) -> engine_module.PassReport:
        # Counted once done: a pass still running when t4 joins the group would rightly see it.
        passed = real_pass(sessions, **options)
        followed.append(options["follow_membership"])
        return passed

    await asyncio.to_thread(create, fleet, clock, targets=["fleet"], targetSelection="CONTINUOUS")
    monkeypatch.setattr(engine_module, "run_pass", counted)
    engine = JobEngine(fleet, clock=clock, interval=0.05, membership_interval=3600, spacing=0)
    await engine.start()
    try:
        await eventually(lambda: len(followed) >= 1, what="the first pass")
        with fleet() as session:
            registry.add_thing_to_group(session, "fleet", "t4")
        # A thing that ends an execution wakes the engine, and the timer passes too: neither follows membership.
        await asyncio.to_thread(report, fleet, clock, "t1", "SUCCEEDED")
        seen = len(followed)
        await eventually(lambda: len(followed) >= seen + 3, what="three more passes")
        assert followed[0] is True
        assert not any(followed[1:])
        assert "t4" not in latest(fleet)
        engine.wake()
        await eventually(lambda: latest(fleet).get("t4") == "QUEUED", what="the pass after wake")
    finally:
        await engine.close()

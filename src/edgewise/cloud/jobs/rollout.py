"""A job's rollout: executions created at the configured rate, and continuous jobs following membership.

The rate is counted in one-minute windows: a window starts when the job is created and a new one at the first
pass a minute or more later; each window creates at most the current rate of executions. The rate is
``maximumPerMinute`` (1000 when not given), or with ``exponentialRate`` ``baseRatePerMinute`` multiplied by
``incrementFactor`` once for every ``numberOfNotifiedThings`` things notified (or ``numberOfSucceededThings``
succeeded) so far, never above ``maximumPerMinute``.

The things rolled out at the rate are those the targets stood for when the job was created. A continuous job
also follows its targets afterwards: a thing that joins gets an execution at the next pass, outside the rate
(as AWS IoT does for newly added devices); a thing that leaves has its pending execution REMOVED; a thing that
comes back after being removed gets a new execution.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edgewise.cloud.jobs import rules, targets, transitions
from edgewise.cloud.jobs.models import ExecutionStatus, Job, JobExecution, TargetSelection
from edgewise.cloud.jobs.schemas import RolloutConfig
from edgewise.cloud.registry import Thing

WINDOW = datetime.timedelta(minutes=1)
_CHUNK = 500
_SUCCEEDED = frozenset({ExecutionStatus.SUCCEEDED})


def rate_per_minute(config: RolloutConfig | None, *, notified: int, succeeded: int) -> int:
    """How many executions a one-minute window may create, given how far the rollout has come."""
    if config is None:
        return rules.MAX_PER_MINUTE
    maximum = config.maximum_per_minute or rules.MAX_PER_MINUTE
    exponential = config.exponential_rate
    if exponential is None:
        return maximum
    criteria = exponential.rate_increase_criteria
    if criteria.number_of_notified_things is not None:
        steps = notified // criteria.number_of_notified_things
    else:
        assert criteria.number_of_succeeded_things is not None
        steps = succeeded // criteria.number_of_succeeded_things
    # Decimal: 1.1 is not exact in binary, and 10 * 1.1 must be 11, not 11.000000000000002 or 10.99...
    rate = decimal.Decimal(exponential.base_rate_per_minute)
    factor = decimal.Decimal(str(exponential.increment_factor))
    for _ in range(steps):
        rate *= factor
        if rate >= maximum:
            return maximum
    return max(1, int(rate))


def _registered(session: Session, names: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(names), _CHUNK):
        chunk = names[start : start + _CHUNK]
        found.update(session.scalars(sa.select(Thing.name).where(Thing.name.in_(chunk))))
    return found


def _things_with_executions(session: Session, job: Job) -> set[str]:
    query = sa.select(JobExecution.thing_name).where(JobExecution.job_pk == job.id).distinct()
    return set(session.scalars(query))


def advance(session: Session, job: Job, *, now: datetime.datetime) -> int:
    """Queue as many of the job's planned things as its current window allows; how many were queued."""
    if not job.status.is_active or job.rollout_position >= len(job.planned_things):
        return 0
    if now - job.window_started_at >= WINDOW:
        job.window_started_at = now
        job.window_count = 0
    config = RolloutConfig.model_validate(job.rollout_config) if job.rollout_config is not None else None
    session.flush()
    rate = rate_per_minute(
        config,
        notified=transitions.count_things(session, job),
        succeeded=transitions.count_things(session, job, _SUCCEEDED),
    )
    allowance = rate - job.window_count
    if allowance <= 0:
        return 0
    members = (
        set(targets.things_of(session, _targets(job)))
        if job.target_selection is TargetSelection.CONTINUOUS
        else None
    )
    started = _things_with_executions(session, job)
    queued = 0
    position = job.rollout_position
    planned = job.planned_things
    while queued < allowance and position < len(planned):
        chunk = planned[position : position + max(allowance - queued, _CHUNK)]
        registered = _registered(session, chunk)
        for name in chunk:
            if queued >= allowance:
                break
            position += 1
            if name not in registered or name in started or (members is not None and name not in members):
                continue
            transitions.queue(session, job, name, now=now)
            started.add(name)
            queued += 1
    job.rollout_position = position
    job.window_count += queued
    if queued:
        job.last_updated_at = now
    return queued


def _targets(job: Job) -> list[targets.Target]:
    return [targets.Target.from_json(target) for target in job.targets]


def follow_membership(session: Session, job: Job, *, now: datetime.datetime) -> tuple[int, int]:
    """For an active continuous job: queue executions for things that joined its targets and remove those of
    things that left. Returns how many were queued and how many removed."""
    if not job.status.is_active or job.target_selection is not TargetSelection.CONTINUOUS:
        return 0, 0
    members = set(targets.things_of(session, _targets(job)))
    not_yet_rolled_out = set(job.planned_things[job.rollout_position :])
    latest = {execution.thing_name: execution for execution in transitions.latest_executions(session, job)}
    queued = removed = 0
    for name in sorted(members):
        current = latest.get(name)
        if current is None and name not in not_yet_rolled_out:
            transitions.queue(session, job, name, now=now)
            queued += 1
        elif current is not None and current.status is ExecutionStatus.REMOVED:
            transitions.queue(session, job, name, now=now, execution_number=current.execution_number + 1)
            queued += 1
    for name, current in latest.items():
        if name not in members and current.status.is_pending:
            transitions.change_status(session, job, current, ExecutionStatus.REMOVED, now=now)
            removed += 1
    if queued or removed:
        job.last_updated_at = now
    return queued, removed

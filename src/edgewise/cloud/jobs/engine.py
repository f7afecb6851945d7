"""The jobs engine: an asyncio task in the cloud process that moves every job along, one pass at a time.

A pass (:func:`run_pass`, blocking, run in a thread) does, with the time of an injected clock:

1. executions whose step timer or in-progress timer ran out → TIMED_OUT (and retried if the job allows);
2. for each IN_PROGRESS job, in its own transaction: the abort criteria (met → the job is CANCELED with
   reason code ``ABORTED`` and its QUEUED executions are CANCELED; IN_PROGRESS ones carry on), the rollout
   (:func:`edgewise.cloud.jobs.rollout.advance`), continuous membership
   (:func:`edgewise.cloud.jobs.rollout.follow_membership`), and completion (a snapshot job whose things were
   all notified and whose executions are all terminal → COMPLETED);
3. jobs marked DELETION_IN_PROGRESS are removed with their executions.

Abort criteria count things: at least ``minNumberOfExecutedThings`` things were notified (have an execution)
and at least ``thresholdPercentage`` % of them had an execution end with the failure type (``ALL``: FAILED,
REJECTED or TIMED_OUT), at least one.

:class:`JobEngine` runs a pass every ``interval`` seconds and whenever :meth:`JobEngine.wake` is called (after
an API write or a thing's registration, so a change of group membership reaches continuous jobs at once), and
when an execution reaches a terminal status, in this process or, through the
:class:`~edgewise.cloud.jobs.relay.JobEventRelay`, in another one (so a job completes and a rollout advances at
once); passes are at least ``spacing`` seconds apart, however many executions end. Following membership reads
every target thing and every execution of a continuous job, so a pass does it only after :meth:`JobEngine.wake`
or once every ``membership_interval`` seconds, not on every timer or execution. Tests call :func:`run_pass` with
their own ``now`` instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import decimal
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.db import utcnow
from edgewise.cloud.jobs import rollout, transitions
from edgewise.cloud.jobs.events import ExecutionChange, JobChange, JobEvents
from edgewise.cloud.jobs.models import ExecutionStatus, Job, JobExecution, JobStatus, TargetSelection
from edgewise.cloud.jobs.schemas import AbortConfig

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]
ABORTED = "ABORTED"
ABORT_TYPES: dict[str, frozenset[ExecutionStatus]] = {
    "FAILED": frozenset({ExecutionStatus.FAILED}),
    "REJECTED": frozenset({ExecutionStatus.REJECTED}),
    "TIMED_OUT": frozenset({ExecutionStatus.TIMED_OUT}),
    "ALL": frozenset({ExecutionStatus.FAILED, ExecutionStatus.REJECTED, ExecutionStatus.TIMED_OUT}),
}


@dataclass
class PassReport:
    """What one pass did."""

    timed_out: int = 0
    queued: int = 0
    removed: int = 0
    aborted: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def time_out(session: Session, *, now: datetime.datetime) -> int:
    """Move IN_PROGRESS executions whose timers ran out to TIMED_OUT; how many. Commits."""
    due = session.execute(
        sa.select(JobExecution, Job)
        .join(Job, Job.id == JobExecution.job_pk)
        .where(
            JobExecution.status == ExecutionStatus.IN_PROGRESS,
            sa.or_(JobExecution.step_timeout_at <= now, JobExecution.in_progress_timeout_at <= now),
        )
        .order_by(JobExecution.id)
        .with_for_update(of=JobExecution)
    ).all()
    count = 0
    for execution, job in list(due):
        transitions.change_status(session, job, execution, ExecutionStatus.TIMED_OUT, now=now)
        count += 1
    session.commit()
    return count


def abort_reason(session: Session, job: Job) -> str | None:
    """Why ``job``'s abort criteria say it must be aborted now, or None."""
    if job.abort_config is None:
        return None
    notified = transitions.count_things(session, job)
    for criterion in AbortConfig.model_validate(job.abort_config).criteria_list:
        failed = transitions.count_things(session, job, ABORT_TYPES[criterion.failure_type])
        threshold = decimal.Decimal(str(criterion.threshold_percentage))
        if (
            failed
            and notified >= criterion.min_number_of_executed_things
            and failed * 100 >= threshold * notified
        ):
            return (
                f"Aborted: {failed} of {notified} notified things ended {criterion.failure_type}"
                f" (threshold {threshold}% after at least {criterion.min_number_of_executed_things} things)"
            )
    return None


def _finished(session: Session, job: Job) -> bool:
    if job.target_selection is TargetSelection.CONTINUOUS or job.rollout_position < len(job.planned_things):
        return False
    pending = session.scalar(
        sa.select(JobExecution.id)
        .where(
            JobExecution.job_pk == job.id,
            JobExecution.status.in_([ExecutionStatus.QUEUED, ExecutionStatus.IN_PROGRESS]),
        )
        .limit(1)
    )
    return pending is None


def advance_job(
    session: Session,
    job_pk: int,
    *,
    now: datetime.datetime,
    report: PassReport,
    follow_membership: bool = True,
) -> None:
    """Abort, roll out, follow membership (when asked) and complete one job. Commits."""
    job = session.scalar(sa.select(Job).where(Job.id == job_pk).with_for_update())
    if job is None or not job.status.is_active:
        return
    reason = abort_reason(session, job)
    if reason is not None:
        transitions.change_job_status(
            session, job, JobStatus.CANCELED, now=now, reason_code=ABORTED, comment=reason
        )
        transitions.cancel_pending(session, job, now=now, include_in_progress=False)
        report.aborted.append(job.job_id)
        logger.info("job-aborted", extra={"job": job.job_id, "reason": reason})
    else:
        report.queued += rollout.advance(session, job, now=now)
        if follow_membership:
            joined, left = rollout.follow_membership(session, job, now=now)
            report.queued += joined
            report.removed += left
        session.flush()
        if _finished(session, job):
            transitions.change_job_status(session, job, JobStatus.COMPLETED, now=now)
            report.completed.append(job.job_id)
            logger.info("job-completed", extra={"job": job.job_id})
    session.commit()


def purge_deleted(session: Session) -> list[str]:
    """Remove the jobs being deleted, with their executions; their ids. Commits."""
    doomed = session.execute(
        sa.select(Job.id, Job.job_id).where(Job.status == JobStatus.DELETION_IN_PROGRESS)
    ).all()
    removed: list[str] = []
    for pk, job_id in list(doomed):
        session.execute(sa.delete(JobExecution).where(JobExecution.job_pk == pk))
        session.execute(sa.delete(Job).where(Job.id == pk))
        removed.append(job_id)
    session.commit()
    return removed


def run_pass(
    sessions: sessionmaker[Session], *, now: datetime.datetime, follow_membership: bool = True
) -> PassReport:
    """One pass over every job (see the module docstring); continuous jobs follow their targets' membership
    only when ``follow_membership``. Blocks."""
    report = PassReport()
    with sessions() as session:
        report.timed_out = time_out(session, now=now)
    with sessions() as session:
        active = list(
            session.scalars(sa.select(Job.id).where(Job.status == JobStatus.IN_PROGRESS).order_by(Job.id))
        )
    for pk in active:
        with sessions() as session:
            try:
                advance_job(session, pk, now=now, report=report, follow_membership=follow_membership)
            except Exception:
                session.rollback()
                logger.exception("job-pass-failed job_pk=%d", pk)
    with sessions() as session:
        report.deleted = purge_deleted(session)
    return report


class JobEngine:
    """Runs :func:`run_pass` every ``interval`` seconds and on :meth:`wake`, until closed."""

    #: What the cloud's logs call this worker.
    name = "jobs-engine"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Clock = utcnow,
        interval: float = 1.0,
        membership_interval: float = 30.0,
        spacing: float = 0.25,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._interval = interval
        self._membership_interval = membership_interval
        self._spacing = spacing
        #: Set by :meth:`wake`: the next pass follows membership (an API write may have changed it).
        self._membership_due = True
        self._woken = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> None:
        """Start passing, the first pass at once."""
        self._loop = asyncio.get_running_loop()
        self._unsubscribe = JobEvents.for_sessions(self._sessions).subscribe(
            self._on_changes, loop=self._loop, remote=True
        )
        self._task = asyncio.create_task(self._run(), name="jobs-engine")
        logger.info("jobs-engine-started interval_s=%.1f", self._interval)

    async def close(self) -> None:
        """Stop once the pass under way, if any, has finished (a pass is never cut off half done)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is None:
            return
        self._stopping = True
        self._woken.set()
        await self._task
        self._task = None

    def wake(self) -> None:
        """Ask for a pass soon that follows group membership too (a thing, group or attribute may have changed);
        safe to call from any thread."""
        if self._loop is None or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._wake_for_membership)

    def _wake_for_membership(self) -> None:
        self._membership_due = True
        self._woken.set()

    def _on_changes(self, changes: Sequence[JobChange]) -> None:
        if any(isinstance(change, ExecutionChange) and change.status.is_terminal for change in changes):
            self._woken.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        followed_at = -self._membership_interval
        while not self._stopping:
            self._woken.clear()
            started = loop.time()
            follow = self._membership_due or started - followed_at >= self._membership_interval
            if follow:
                self._membership_due, followed_at = False, started
            try:
                report = await asyncio.to_thread(
                    run_pass, self._sessions, now=self._clock(), follow_membership=follow
                )
            except Exception:
                logger.exception("jobs-engine-pass-failed")
            else:
                if report.timed_out or report.aborted or report.completed or report.deleted:
                    logger.info("jobs-engine-pass %s", report)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self._interval)
            # A fleet reporting at once wakes the engine with every execution it ends: one pass per spacing.
            await asyncio.sleep(max(0.0, started + self._spacing - loop.time()))

"""Fixtures of the jobs tests: a session factory on both engines, a clock the test moves, the job changes told
to listeners, and a small registry (things ``t1``..``t6``, static group ``fleet`` with ``t1``..``t3``)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.db import create_database_engine, create_session_factory
from edgewise.cloud.jobs import engine, executions, service, transitions
from edgewise.cloud.jobs.events import JobChange, JobEvents
from edgewise.cloud.jobs.models import Job
from edgewise.cloud.jobs.schemas import JobCreate
from edgewise.cloud.jobs.secrets import SecretSealer
from edgewise.cloud.registry import service as registry
from edgewise.protocol import jobs

START = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)
THINGS = [f"t{number}" for number in range(1, 7)]
#: A fixed key: what a test seals, the worker it starts opens.
SEALER = SecretSealer(bytes(range(32)))


class FakeClock:
    """A clock that only moves when told."""

    def __init__(self, start: datetime.datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, **delta: float) -> datetime.datetime:
        self.now += datetime.timedelta(**delta)
        return self.now


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on an empty, migrated database (SQLite and PostgreSQL)."""
    engine = create_database_engine(database_url)
    try:
        yield create_session_factory(engine)
    finally:
        engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def changes(sessions: sessionmaker[Session]) -> Iterator[list[JobChange]]:
    """Every job change committed through ``sessions``, in order."""
    seen: list[JobChange] = []
    unsubscribe = JobEvents.for_sessions(sessions).subscribe(seen.extend)
    yield seen
    unsubscribe()


@pytest.fixture
def fleet(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """``sessions`` with things t1..t6 and the static group ``fleet`` holding t1, t2 and t3."""
    with sessions() as session:
        for name in THINGS:
            registry.create_thing(session, name)
        registry.create_group(session, "fleet")
        for name in THINGS[:3]:
            registry.add_thing_to_group(session, "fleet", name)
    return sessions


def create(sessions: sessionmaker[Session], clock: FakeClock, job_id: str = "job-1", **fields: Any) -> Job:
    """Create a job (document ``{"op": "test"}``, targets t1 and t2 unless given) at the clock's time."""
    spec = JobCreate.model_validate(
        {"jobId": job_id, "targets": ["t1", "t2"], "document": {"op": "test"}, **fields}
    )
    with sessions() as session:
        return service.create_job(session, spec, sealer=SEALER, now=clock())


def latest(sessions: sessionmaker[Session], job_id: str = "job-1") -> dict[str, str]:
    """Each thing's latest execution of the job as ``STATUS`` or ``STATUS#number`` for a retry."""
    with sessions() as session:
        job = service.get_job(session, job_id)
        return {
            execution.thing_name: execution.status.value
            + ("" if execution.execution_number == 1 else f"#{execution.execution_number}")
            for execution in transitions.latest_executions(session, job)
        }


def report(
    sessions: sessionmaker[Session],
    clock: FakeClock,
    thing: str,
    status: str,
    job_id: str = "job-1",
    **fields: Any,
) -> dict[str, Any]:
    """The device ``thing`` updates its execution of the job, as over MQTT; the accepted body."""
    payload = json.dumps({"status": status, **fields}).encode()
    with sessions() as session:
        body = executions.update(
            session, thing, None, job_id, jobs.parse_request("update", payload), now=clock()
        )
        session.commit()
    return body


def start_next(
    sessions: sessionmaker[Session], clock: FakeClock, thing: str, **fields: Any
) -> dict[str, Any]:
    """The device ``thing`` starts its next pending execution, as over MQTT; the accepted body."""
    request = jobs.parse_request("start_next", json.dumps(fields).encode())
    with sessions() as session:
        body = executions.start_next(session, thing, None, request, now=clock())
        session.commit()
    return body


def run_pass(sessions: sessionmaker[Session], clock: FakeClock) -> engine.PassReport:
    """One engine pass at the clock's time."""
    return engine.run_pass(sessions, now=clock())

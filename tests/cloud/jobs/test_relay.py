"""Job events between cloud processes over PostgreSQL LISTEN/NOTIFY (a real PostgreSQL): two session factories
stand for two processes, each with its own relay."""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import AsyncIterator, Sequence

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.db import create_database_engine, create_session_factory
from edgewise.cloud.jobs.engine import JobEngine
from edgewise.cloud.jobs.events import ExecutionChange, JobChange, JobEvents, JobStatusChange, record
from edgewise.cloud.jobs.models import ExecutionStatus, JobStatus
from edgewise.cloud.jobs.relay import PAYLOAD_LIMIT_BYTES, JobEventRelay, decode_batch, encode_batches
from tests.support.waiting import eventually

QUEUED_AT = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)


def execution(job_id: str, *, details: dict[str, str] | None = None) -> ExecutionChange:
    return ExecutionChange(
        job_id=job_id,
        namespace_id=None,
        thing_name="sensor-1",
        execution_number=1,
        old_status=ExecutionStatus.IN_PROGRESS,
        status=ExecutionStatus.SUCCEEDED,
        status_details=details or {},
        queued_at=QUEUED_AT,
    )


class Process:
    """One 'process': a session factory, its relay, and what its local and remote listeners heard."""

    def __init__(self, url: str) -> None:
        self.engine = create_database_engine(url)
        self.sessions: sessionmaker[Session] = create_session_factory(self.engine)
        self.relay = JobEventRelay(self.sessions, url)
        self.local: list[JobChange] = []
        self.remote: list[JobChange] = []
        loop = asyncio.get_running_loop()
        events = JobEvents.for_sessions(self.sessions)
        events.subscribe(self.local.extend, loop=loop)
        events.subscribe(self.remote.extend, loop=loop, remote=True)

    def commit(self, *changes: JobChange, rollback: bool = False) -> None:
        with self.sessions() as session:
            session.execute(sa.text("SELECT 1"))
            for change in changes:
                record(session, change)
            if rollback:
                session.rollback()
            else:
                session.commit()


@pytest.fixture
async def processes(postgres_url: str) -> AsyncIterator[tuple[Process, Process]]:
    first, second = Process(postgres_url), Process(postgres_url)
    await first.relay.start()
    await second.relay.start()
    try:
        yield first, second
    finally:
        for process in (first, second):
            await process.relay.close()
            process.engine.dispose()


async def test_a_commit_reaches_the_other_process_remote_listener_only(
    processes: tuple[Process, Process],
) -> None:
    first, second = processes
    change = execution("fw-1", details={"step": "done"})
    await asyncio.to_thread(first.commit, change)
    await eventually(lambda: second.remote, what="the change in the other process")
    assert second.remote == [change]
    assert first.local == [change]
    assert second.local == []
    assert first.remote == [change]  # its own commit, told locally, not twice


async def test_a_rolled_back_change_reaches_nobody(processes: tuple[Process, Process]) -> None:
    first, second = processes
    await asyncio.to_thread(first.commit, execution("rolled-back"), rollback=True)
    marker = JobStatusChange("marker", None, JobStatus.IN_PROGRESS, JobStatus.COMPLETED, comment="done")
    await asyncio.to_thread(first.commit, marker)
    # Notifications arrive in commit order: once the marker is here, a rolled-back change would have been too.
    await eventually(lambda: second.remote, what="the marker in the other process")
    assert second.remote == [marker]
    assert first.local == [marker]


async def test_a_batch_over_the_payload_limit_arrives_whole_and_in_order(
    processes: tuple[Process, Process],
) -> None:
    first, second = processes
    changes = [execution(f"job-{number}", details={"progress": "x" * 200}) for number in range(100)]
    assert len(encode_batches(first.relay.origin, changes)) > 1
    await asyncio.to_thread(first.commit, *changes)
    await eventually(lambda: len(second.remote) == len(changes), what="every change in the other process")
    assert second.remote == changes


async def test_the_jobs_engine_passes_when_another_process_ends_an_execution(
    processes: tuple[Process, Process],
) -> None:
    first, second = processes
    passes: list[datetime.datetime] = []

    def clock() -> datetime.datetime:
        passes.append(QUEUED_AT)
        return QUEUED_AT

    # An hour between passes: only the relayed change can bring the second one.
    engine = JobEngine(first.sessions, clock=clock, interval=3600)
    await engine.start()
    try:
        await eventually(lambda: len(passes) == 1, what="the engine's first pass")
        await asyncio.to_thread(second.commit, execution("ended-elsewhere"))
        await eventually(lambda: len(passes) == 2, what="a pass after the other process's change")
    finally:
        await engine.close()


def test_payloads_stay_under_the_limit_and_an_oversized_change_loses_its_details() -> None:
    huge = execution("huge", details={f"key-{number}": "v" * 1000 for number in range(10)})
    changes: list[JobChange] = [execution("small"), huge, execution("after")]
    payloads = encode_batches("origin", changes)
    assert all(len(payload.encode()) < PAYLOAD_LIMIT_BYTES for payload in payloads)
    decoded = [change for payload in payloads for change in decode_batch(payload).changes]
    assert decoded == [changes[0], execution("huge"), changes[2]]
    assert {decode_batch(payload).origin for payload in payloads} == {"origin"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ("[]", "not a JSON object"),
        ('{"changes": []}', "'origin'"),
        ('{"origin": "o", "changes": [{"kind": "other"}]}', "'kind'"),
        ('{"origin": "o", "changes": [{"kind": "job", "jobId": 3}]}', "'jobId'"),
    ],
)
def test_a_payload_that_is_not_a_batch_is_refused_naming_the_field(payload: str, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        decode_batch(payload)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(),
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
            ),
            max_leaves=12,
        ).map(lambda value: json.dumps({"origin": "o", "changes": [value]})),
    )
)
def test_any_payload_decodes_or_raises_value_error(payload: str) -> None:
    try:
        batch = decode_batch(payload)
    except ValueError:
        return
    assert isinstance(batch.changes, tuple)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.builds(
            ExecutionChange,
            job_id=st.text(min_size=1, max_size=64),
            namespace_id=st.none() | st.text(max_size=64),
            thing_name=st.text(min_size=1, max_size=128),
            execution_number=st.integers(min_value=0, max_value=2**40),
            old_status=st.none() | st.sampled_from(ExecutionStatus),
            status=st.sampled_from(ExecutionStatus),
            status_details=st.dictionaries(st.text(max_size=20), st.text(max_size=200), max_size=5),
            queued_at=st.just(QUEUED_AT),
        ),
        max_size=60,
    )
)
def test_encoded_changes_decode_to_themselves(changes: Sequence[ExecutionChange]) -> None:
    payloads = encode_batches("o", changes)
    assert all(len(payload.encode()) < PAYLOAD_LIMIT_BYTES for payload in payloads)
    assert [change for payload in payloads for change in decode_batch(payload).changes] == list(changes)


async def test_a_relay_that_only_sends_reaches_the_others_and_hears_nothing(
    processes: tuple[Process, Process], postgres_url: str
) -> None:
    first, second = processes
    sender = Process(postgres_url)
    sender.relay = JobEventRelay(sender.sessions, postgres_url, listen=False)
    await sender.relay.start()
    try:
        sent = execution("from-a-worker-process")
        await asyncio.to_thread(sender.commit, sent)
        await eventually(lambda: second.remote, what="the sender's change in another process")
        heard = execution("from-process-0")
        await asyncio.to_thread(first.commit, heard)
        await eventually(lambda: len(second.remote) == 2, what="process 0's change in the other process")
        assert second.remote == [sent, heard]
        assert sender.remote == [sent]  # its own, told locally; process 0's never reaches it
    finally:
        await sender.relay.close()
        sender.engine.dispose()

"""Being told when job executions and jobs change: a callback registry fed by committed transactions.

Every service function that changes an execution's or a job's status records a change on its session
(:func:`record`). When that session's transaction commits, the :class:`JobEvents` attached to the session
factory hands the changes, in order, to every listener; a rolled-back transaction's changes are dropped. So a
listener only ever hears about what is in the store.

The jobs MQTT worker listens to send ``J/notify`` and ``J/notify-next``; the fleet deployments layer listens to
follow its jobs. Usage::

    events = JobEvents.for_sessions(sessions)          # one per session factory, attached on first use
    unsubscribe = events.subscribe(on_changes, loop=asyncio.get_running_loop())

    def on_changes(changes: Sequence[JobChange]) -> None:
        for change in changes:
            if isinstance(change, ExecutionChange) and change.status is ExecutionStatus.FAILED: ...

A listener without ``loop`` runs in the committing thread (an API worker thread, the engine's or the MQTT
worker's), so it must be quick and thread-safe; with ``loop`` it runs on that event loop. An exception in a
listener is logged and does not reach the committer. Only changes committed through sessions of the same
factory in this process are seen, unless a :class:`~edgewise.cloud.jobs.relay.JobEventRelay` runs: with several
cloud processes on PostgreSQL, it sends each committed batch to the others (:meth:`JobEvents.forward_commits`,
inside the committing transaction) and hands theirs to the listeners subscribed with ``remote=True``
(:meth:`JobEvents.publish_remote`). Other listeners hear only their own process's changes: the jobs worker's
notifications must go out once, from the process that made the change.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from edgewise.cloud.jobs.models import ExecutionStatus, JobStatus

logger = logging.getLogger(__name__)

_CHANGES_KEY = "edgewise.jobs.changes"


@dataclass(frozen=True)
class ExecutionChange:
    """An execution was created (``old_status`` None) or changed; ``status`` may equal ``old_status`` when only
    its details changed."""

    job_id: str
    namespace_id: str | None
    thing_name: str
    execution_number: int
    old_status: ExecutionStatus | None
    status: ExecutionStatus
    status_details: Mapping[str, str]
    queued_at: datetime.datetime


@dataclass(frozen=True)
class JobStatusChange:
    """A job changed status: completed, cancelled (by an operator or its abort criteria), or being deleted."""

    job_id: str
    namespace_id: str | None
    old_status: JobStatus
    status: JobStatus
    reason_code: str | None = None
    comment: str | None = None


JobChange = ExecutionChange | JobStatusChange
JobListener = Callable[[Sequence[JobChange]], None]
#: Called in ``before_commit`` with the session and the changes its transaction recorded (none are dropped yet).
CommitForwarder = Callable[[Session, Sequence[JobChange]], None]


def record(session: Session, change: JobChange) -> None:
    """Remember ``change`` until ``session``'s transaction ends: told to listeners on commit, else dropped."""
    session.info.setdefault(_CHANGES_KEY, []).append(change)


_REGISTRIES: weakref.WeakKeyDictionary[sessionmaker[Session], JobEvents] = weakref.WeakKeyDictionary()
_REGISTRIES_LOCK = threading.Lock()


class JobEvents:
    """The listeners of one session factory's job changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[tuple[JobListener, asyncio.AbstractEventLoop | None, bool]] = []
        self._forwarder: CommitForwarder | None = None

    @classmethod
    def for_sessions(cls, sessions: sessionmaker[Session]) -> JobEvents:
        """The registry of ``sessions``, created and attached to it on first use."""
        with _REGISTRIES_LOCK:
            events = _REGISTRIES.get(sessions)
            if events is None:
                events = _REGISTRIES[sessions] = cls()
                sa.event.listen(sessions, "before_commit", events._committing)
                sa.event.listen(sessions, "after_commit", events._committed)
                sa.event.listen(sessions, "after_transaction_end", _forget_uncommitted)
            return events

    def subscribe(
        self, listener: JobListener, *, loop: asyncio.AbstractEventLoop | None = None, remote: bool = False
    ) -> Callable[[], None]:
        """Call ``listener`` with each committed batch of changes (on ``loop`` if given), those other processes
        committed too when ``remote``; returns the function that unsubscribes it."""
        entry = (listener, loop, remote)
        with self._lock:
            self._listeners.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._listeners:
                    self._listeners.remove(entry)

        return unsubscribe

    def publish(self, changes: Sequence[JobChange]) -> None:
        """Hand ``changes`` (committed in this process) to every listener."""
        self._hand_over(changes, remote_only=False)

    def publish_remote(self, changes: Sequence[JobChange]) -> None:
        """Hand ``changes`` another process committed to the listeners subscribed with ``remote=True``."""
        self._hand_over(changes, remote_only=True)

    def forward_commits(self, forwarder: CommitForwarder | None) -> None:
        """Have ``forwarder`` (None: nobody) called in every committing transaction that recorded changes."""
        self._forwarder = forwarder

    def _hand_over(self, changes: Sequence[JobChange], *, remote_only: bool) -> None:
        if not changes:
            return
        with self._lock:
            listeners = [
                (listener, loop) for listener, loop, remote in self._listeners if remote or not remote_only
            ]
        for listener, loop in listeners:
            if loop is None:
                _call(listener, changes)
                continue
            try:
                loop.call_soon_threadsafe(_call, listener, changes)
            except RuntimeError:
                logger.debug("job-listener-loop-closed")

    def _committing(self, session: Session) -> None:
        forwarder = self._forwarder
        changes: list[JobChange] = session.info.get(_CHANGES_KEY, [])
        if forwarder is not None and changes:
            forwarder(session, changes)

    def _committed(self, session: Session) -> None:
        changes: list[JobChange] = session.info.pop(_CHANGES_KEY, [])
        self.publish(changes)


def _forget_uncommitted(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_CHANGES_KEY, None)


def _call(listener: JobListener, changes: Sequence[Any]) -> None:
    try:
        listener(changes)
    except Exception:
        logger.exception("job-listener-failed listener=%r", listener)

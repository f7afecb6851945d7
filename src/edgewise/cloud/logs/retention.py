"""Retention of device logs: lines older than ``logs_max_age_seconds`` (by when the cloud received them) are
deleted by :class:`LogsRetentionWorker`, every ``interval`` seconds.

:func:`prune` deletes at most ``chunk`` rows per transaction, so a large backlog never holds a long write lock
(SQLite) or a long transaction (PostgreSQL) against ingest.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import threading
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.db import utcnow
from edgewise.cloud.logs.models import DeviceLog

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]
Stopping = Callable[[], bool]
DEFAULT_CHUNK = 1000
#: Thirty days.
DEFAULT_MAX_AGE_SECONDS = 30 * 86_400


def _never() -> bool:
    return False


def prune(
    sessions: sessionmaker[Session],
    *,
    now: datetime.datetime,
    max_age_seconds: int,
    chunk: int = DEFAULT_CHUNK,
    stopping: Stopping = _never,
) -> int:
    """Delete the lines received more than ``max_age_seconds`` before ``now``; how many. Blocks.

    Once ``stopping()`` is true, it ends after the chunk under way.
    """
    cutoff = now - datetime.timedelta(seconds=max_age_seconds)
    deleted = 0
    while not stopping():
        with sessions() as session, session.begin():
            ids = session.scalars(
                sa.select(DeviceLog.id).where(DeviceLog.received_at < cutoff).limit(chunk)
            ).all()
            if ids:
                session.execute(sa.delete(DeviceLog).where(DeviceLog.id.in_(ids)))
        deleted += len(ids)
        if len(ids) < chunk:
            break
    return deleted


class LogsRetentionWorker:
    """Runs :func:`prune` every ``interval`` seconds, the first pass at once, until closed."""

    #: What the cloud's logs call this worker.
    name = "logs-retention"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS,
        interval: float = 300.0,
        clock: Clock = utcnow,
        chunk: int = DEFAULT_CHUNK,
    ) -> None:
        self._sessions = sessions
        self._max_age = max_age_seconds
        self._interval = interval
        self._clock = clock
        self._chunk = chunk
        self._stop = asyncio.Event()
        # Read by the pass in its thread, between chunks.
        self._stopping = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        self.deleted = 0

    async def start(self) -> None:
        """Start pruning, the first pass at once."""
        self._stop.clear()
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def close(self) -> None:
        """Stop once the chunk under way, if any, is deleted."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        self._stop.set()
        await task

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                deleted = await asyncio.to_thread(
                    prune,
                    self._sessions,
                    now=self._clock(),
                    max_age_seconds=self._max_age,
                    chunk=self._chunk,
                    stopping=self._stopping.is_set,
                )
            except Exception:
                logger.exception("logs-retention-pass-failed")
            else:
                self.deleted += deleted
                if deleted:
                    logger.info("logs-retention-pass deleted=%d", deleted)
            self.passes += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval)

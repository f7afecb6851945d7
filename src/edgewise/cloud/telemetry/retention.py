"""Retention of telemetry: how much of each stream the cloud keeps, and the worker that enforces it.

A stream's retention (``telemetry_retention``) limits its messages by age (``max_age_seconds``, on the
timestamp the device gave them) and by size (``max_bytes``, the sum of the payloads). A stream without an age
limit of its own gets the cloud-wide default, if the settings give one; there is no default size.

:func:`enforce` deletes, per stream, the messages older than the age limit, then the oldest (by timestamp,
then id) until the stream fits its size. It deletes at most ``chunk`` rows per transaction, so a large backlog
never holds a long write lock (SQLite) or a long transaction (PostgreSQL) against ingest. :class:`RetentionWorker`
runs it every ``interval`` seconds with the time of an injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.db import utcnow
from edgewise.cloud.errors import InvalidRequestError, NotFoundError
from edgewise.cloud.telemetry.models import TelemetryMessage, TelemetryRetention
from edgewise.cloud.telemetry.query import to_milliseconds
from edgewise.cloud.telemetry.records import STREAM_MAX_LENGTH

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]
DEFAULT_CHUNK = 1000


def check_stream(stream: str, field: str = "stream") -> str:
    """``stream`` if it is a valid stream name: 1-256 characters, none of them a control character.

    Raises:
        InvalidRequestError: it is not; the error names ``field``.
    """
    if not 0 < len(stream) <= STREAM_MAX_LENGTH:
        raise InvalidRequestError(field, f"must be 1 to {STREAM_MAX_LENGTH} characters, not {len(stream)}")
    if any(ord(character) < 0x20 or ord(character) == 0x7F for character in stream):
        raise InvalidRequestError(field, f"{stream!r} contains a control character")
    return stream


def set_retention(
    session: Session,
    stream: str,
    *,
    max_age_seconds: int | None,
    max_bytes: int | None,
    now: datetime.datetime,
) -> TelemetryRetention:
    """Create or replace ``stream``'s retention. Commits."""
    check_stream(stream)
    retention = session.get(TelemetryRetention, stream, with_for_update=True)
    if retention is None:
        retention = TelemetryRetention(stream=stream)
        session.add(retention)
    retention.max_age_seconds = max_age_seconds
    retention.max_bytes = max_bytes
    retention.updated_at = now
    session.commit()
    logger.info(
        "telemetry-retention-set",
        extra={"stream": stream, "max_age_s": max_age_seconds, "max_bytes": max_bytes},
    )
    return retention


def delete_retention(session: Session, stream: str) -> None:
    """Remove ``stream``'s retention (the default age applies again). Commits.

    Raises:
        NotFoundError: the stream has no retention of its own.
    """
    retention = session.get(TelemetryRetention, stream)
    if retention is None:
        raise NotFoundError("Retention of stream", stream)
    session.delete(retention)
    session.commit()
    logger.info("telemetry-retention-deleted", extra={"stream": stream})


def list_retention(session: Session) -> Sequence[TelemetryRetention]:
    """Every stream's retention, by stream."""
    return session.scalars(sa.select(TelemetryRetention).order_by(TelemetryRetention.stream)).all()


@dataclass(frozen=True)
class RetentionReport:
    """What one :func:`enforce` pass deleted."""

    deleted_by_age: int = 0
    deleted_by_size: int = 0


Stopping = Callable[[], bool]


def _never() -> bool:
    return False


def _delete_older(
    sessions: sessionmaker[Session], stream: str, cutoff_ms: int, chunk: int, stopping: Stopping
) -> int:
    deleted = 0
    while not stopping():
        with sessions() as session, session.begin():
            ids = session.scalars(
                sa.select(TelemetryMessage.id)
                .where(TelemetryMessage.stream == stream, TelemetryMessage.timestamp_ms < cutoff_ms)
                .limit(chunk)
            ).all()
            if ids:
                session.execute(sa.delete(TelemetryMessage).where(TelemetryMessage.id.in_(ids)))
        deleted += len(ids)
        if len(ids) < chunk:
            return deleted
    return deleted


def _delete_oldest_beyond(
    sessions: sessionmaker[Session], stream: str, max_bytes: int, chunk: int, stopping: Stopping
) -> int:
    with sessions() as session:
        total = session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(sa.func.length(TelemetryMessage.payload)), 0)).where(
                TelemetryMessage.stream == stream
            )
        )
    excess = int(total or 0) - max_bytes
    deleted = 0
    while excess > 0 and not stopping():
        with sessions() as session, session.begin():
            oldest = session.execute(
                sa.select(TelemetryMessage.id, sa.func.length(TelemetryMessage.payload))
                .where(TelemetryMessage.stream == stream)
                .order_by(TelemetryMessage.timestamp_ms, TelemetryMessage.id)
                .limit(chunk)
            ).all()
            doomed: list[int] = []
            for message_id, size in oldest:
                if excess <= 0:
                    break
                doomed.append(message_id)
                excess -= int(size)
            if doomed:
                session.execute(sa.delete(TelemetryMessage).where(TelemetryMessage.id.in_(doomed)))
        deleted += len(doomed)
        if len(oldest) < chunk:
            return deleted
    return deleted


def enforce(
    sessions: sessionmaker[Session],
    *,
    now: datetime.datetime,
    default_max_age_seconds: int | None = None,
    chunk: int = DEFAULT_CHUNK,
    stopping: Stopping = _never,
) -> RetentionReport:
    """Delete what every stream's retention (or the default age) no longer keeps. Blocks.

    Each chunk of at most ``chunk`` messages is deleted in its own transaction; once ``stopping()`` is true, the
    pass ends after the chunk under way.
    """
    with sessions() as session:
        rules = {rule.stream: rule for rule in list_retention(session)}
        streams = set(rules)
        if default_max_age_seconds is not None:
            streams.update(session.scalars(sa.select(TelemetryMessage.stream).distinct()))
    now_ms = to_milliseconds(now)
    by_age = by_size = 0
    for stream in sorted(streams):
        rule = rules.get(stream)
        max_age = rule.max_age_seconds if rule is not None and rule.max_age_seconds is not None else None
        max_age = max_age if max_age is not None else default_max_age_seconds
        if max_age is not None:
            by_age += _delete_older(sessions, stream, now_ms - max_age * 1000, chunk, stopping)
        if rule is not None and rule.max_bytes is not None:
            by_size += _delete_oldest_beyond(sessions, stream, rule.max_bytes, chunk, stopping)
    return RetentionReport(deleted_by_age=by_age, deleted_by_size=by_size)


@dataclass(frozen=True)
class RetentionStatistics:
    """What a :class:`RetentionWorker` has done since it started."""

    passes: int
    deleted: int
    failed_passes: int


class RetentionWorker:
    """Runs :func:`enforce` every ``interval`` seconds, the first pass at once, until closed."""

    #: What the cloud's logs call this worker.
    name = "telemetry-retention"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        interval: float = 60.0,
        default_max_age_seconds: int | None = None,
        clock: Clock = utcnow,
        chunk: int = DEFAULT_CHUNK,
    ) -> None:
        self._sessions = sessions
        self._interval = interval
        self._default_max_age = default_max_age_seconds
        self._clock = clock
        self._chunk = chunk
        self._stop = asyncio.Event()
        # Read by the pass in its thread, between chunks.
        self._stopping = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._passes = self._deleted = self._failed = 0

    async def start(self) -> None:
        """Start enforcing, the first pass at once."""
        self._stop.clear()
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=self.name)
        logger.info(
            "telemetry-retention-started interval_s=%.0f default_max_age_s=%s",
            self._interval,
            self._default_max_age,
        )

    async def close(self) -> None:
        """Stop once the chunk under way, if any, is deleted (a transaction is never cut off)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        self._stop.set()
        await task

    def statistics(self) -> RetentionStatistics:
        """The passes so far, the messages they deleted, and the passes that failed."""
        return RetentionStatistics(passes=self._passes, deleted=self._deleted, failed_passes=self._failed)

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                report = await asyncio.to_thread(
                    enforce,
                    self._sessions,
                    now=self._clock(),
                    default_max_age_seconds=self._default_max_age,
                    chunk=self._chunk,
                    stopping=self._stopping.is_set,
                )
            except Exception:
                self._failed += 1
                logger.exception("telemetry-retention-pass-failed")
            else:
                self._deleted += report.deleted_by_age + report.deleted_by_size
                if report.deleted_by_age or report.deleted_by_size:
                    logger.info(
                        "telemetry-retention-pass deleted_by_age=%d deleted_by_size=%d",
                        report.deleted_by_age,
                        report.deleted_by_size,
                    )
            self._passes += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval)

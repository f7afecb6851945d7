"""Ingests device logs from the broker: log batches, stored once each and answered.

A device publishes a batch on ``$aws/things/<thing>/edgewise/logs/batch``; the thing is the one in the topic,
which the broker's ACL (the default device policy) lets a device publish under its own name only. Batches are
buffered and written in groups, in one transaction in a thread, one group at a time: what arrives during a write
goes into the next group, so batching comes from load, not from waiting. A batch is answered only after the
transaction that holds it commits: ``accepted`` with what was new and what was already stored, so a device that
resends after a lost answer is told ``duplicates`` and nothing is stored twice. When a group's transaction
fails, each of its batches is written again alone, so one bad row costs only its own batch (``InternalError``).

The work waiting is bounded by its bytes (:data:`MAX_PENDING_BYTES`): beyond it, batches are answered
``Throttled`` until the store catches up.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker import BrokerConnection
from edgewise.cloud.logs.service import LogLine, StoreResult, store_line_groups, store_lines
from edgewise.cloud.partition import Partition
from edgewise.cloud.workerlink import PacketTooLargeError, WorkerLink
from edgewise.names import THING_NAME
from edgewise.protocol import logs
from edgewise.protocol.logs import BatchAccepted, BatchRejection, LogBatch, LogsPayloadError

logger = logging.getLogger(__name__)

_CLIENT_ID = "edgewise-logs"
MAX_PENDING_BYTES: Final = 16 * 1024 * 1024
_CLOSE_TIMEOUT = 10.0


@dataclass(frozen=True)
class LogsStatistics:
    """What a :class:`LogsWorker` has done since it started."""

    stored: int  #: lines written
    duplicates: int  #: lines that were stored already
    accepted_batches: int
    rejected_batches: int  #: malformed, throttled, or not stored
    pending_batches: int  #: batches waiting to be written


@dataclass(frozen=True)
class _Pending:
    thing: str
    batch: LogBatch
    lines: tuple[LogLine, ...]
    size: int


class LogsWorker:
    """Stores the log lines devices send until closed."""

    #: What the cloud's logs call this worker.
    name = "logs"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        connection: BrokerConnection,
        *,
        partition: Partition | None = None,
    ) -> None:
        self._sessions = sessions
        self._pending: list[_Pending] = []
        self._pending_bytes = 0
        self._waiting = asyncio.Event()
        self._closing = False
        self._counts = dict.fromkeys(("stored", "duplicates", "accepted_batches", "rejected_batches"), 0)
        self._writer: asyncio.Task[None] | None = None
        self._link = WorkerLink(
            connection,
            client_id=_CLIENT_ID,
            filters=(logs.LOGS_BATCH_FILTER,),
            on_message=self._receive,
            partition=partition,
        )

    async def start(self) -> None:
        """Start writing, connect and subscribe.

        Raises:
            OSError: the broker cannot be reached.
            ConnectionError: the broker refused or did not answer.
        """
        self._writer = asyncio.create_task(self._write_continuously(), name="logs-writer")
        await self._link.start()

    async def close(self) -> None:
        """Write what waits (answering its batches), then disconnect."""
        self._closing = True
        writer, self._writer = self._writer, None
        if writer is not None:
            self._waiting.set()
            try:
                await asyncio.wait_for(writer, _CLOSE_TIMEOUT)
            except TimeoutError:
                logger.warning("logs-close-slow timeout_s=%.0f: unwritten batches dropped", _CLOSE_TIMEOUT)
        await self._link.close()

    def statistics(self) -> LogsStatistics:
        """What the worker has done so far. Must be called from the event loop thread."""
        return LogsStatistics(**self._counts, pending_batches=len(self._pending))

    # -- receiving (on the loop) ------------------------------------------------------------------------

    async def _receive(self, topic: str, payload: bytes) -> None:
        thing = logs.thing_of_batch(topic)
        if self._closing or thing is None or THING_NAME.fullmatch(thing) is None:
            return
        try:
            batch = logs.parse_batch(payload)
        except LogsPayloadError as exc:
            logger.warning("logs-batch-rejected thing=%s: %s", thing, exc)
            self._reject(thing, logs.client_token_of(payload), exc.code, str(exc))
            return
        if self._pending_bytes + len(payload) > MAX_PENDING_BYTES:
            logger.warning("logs-throttled thing=%s pending_bytes=%d", thing, self._pending_bytes)
            self._reject(thing, batch.client_token, logs.THROTTLED, "The cloud is busy; send again later")
            return
        lines = tuple(
            LogLine(
                thing_name=thing,
                component=entry.component,
                file=entry.file,
                file_id=entry.file_id,
                offset=entry.offset,
                timestamp_ms=entry.timestamp_ms,
                level=entry.level,
                message=entry.message,
            )
            for entry in batch.entries
        )
        self._pending.append(_Pending(thing, batch, lines, len(payload)))
        self._pending_bytes += len(payload)
        self._waiting.set()

    def _reject(self, thing: str, token: str | None, code: logs.RejectionCode, message: str) -> None:
        self._counts["rejected_batches"] += 1
        reply = BatchRejection(client_token=token, code=code, message=message[:1024])
        self._publish(logs.reply_topic(thing, logs.REJECTED), logs.build_rejection(reply))

    def _publish(self, topic: str, payload: bytes) -> None:
        try:
            self._link.publish(topic, payload)
        except PacketTooLargeError as exc:
            logger.error("logs-reply-dropped: %s", exc)

    # -- writing ----------------------------------------------------------------------------------------

    async def _write_continuously(self) -> None:
        while True:
            await self._waiting.wait()
            group, self._pending = self._pending, []
            self._pending_bytes = 0
            if not self._closing:
                self._waiting.clear()
            try:
                await self._write(group)
            except Exception:
                logger.exception("logs-write-failed batches=%d", len(group))
            if self._closing and not self._pending:
                return

    async def _write(self, group: list[_Pending]) -> None:
        if not group:
            return
        outcomes = await asyncio.to_thread(self._store, group)
        for pending, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, StoreResult):
                self._counts["stored"] += outcome.stored
                self._counts["duplicates"] += outcome.duplicates
                self._counts["accepted_batches"] += 1
                accepted = BatchAccepted(
                    client_token=pending.batch.client_token,
                    stored=outcome.stored,
                    duplicates=outcome.duplicates,
                )
                self._publish(logs.reply_topic(pending.thing, logs.ACCEPTED), logs.build_accepted(accepted))
            else:
                self._reject(pending.thing, pending.batch.client_token, logs.INTERNAL_ERROR, outcome)

    def _store(self, group: list[_Pending]) -> list[StoreResult | str]:
        """Write ``group`` in one transaction, or each of its batches alone when that fails. Blocks."""
        try:
            with self._sessions.begin() as session:
                return [*store_line_groups(session, [pending.lines for pending in group])]
        except SQLAlchemyError as exc:
            if len(group) == 1:
                return [self._failed(group[0], exc)]
            logger.warning("logs-group-failed batches=%d: %s; writing them one by one", len(group), exc)
        outcomes: list[StoreResult | str] = []
        for pending in group:
            try:
                with self._sessions.begin() as session:
                    outcomes.append(store_lines(session, pending.lines))
            except SQLAlchemyError as exc:
                outcomes.append(self._failed(pending, exc))
        return outcomes

    def _failed(self, pending: _Pending, exc: Exception) -> str:
        logger.error("logs-not-stored thing=%s: %s", pending.thing, exc)
        return f"The log batch was not stored: {str(exc)[:500]}"

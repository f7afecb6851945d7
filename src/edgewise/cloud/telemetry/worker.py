"""Ingests telemetry from the broker: stream export batches (answered) and messages on device topics (stored).

Messages are buffered and written in groups, in one transaction in a thread (one INSERT statement for all of a
group's records), one group at a time: a group is
written once ``flush_messages`` messages wait, the oldest has waited ``flush_interval_ms``, or an export batch
waits (a device waits for its answer, with one batch in flight: what arrives during a write goes into the next
group, so batching comes from load, not from waiting). An export batch is
answered only after the transaction that holds it commits: ``accepted`` with what was new and what was already
stored, so a device that resends after a lost answer is told ``duplicates`` and nothing is stored twice. When a
group's transaction fails, each of its batches and messages is written again in a transaction of its own, so one
bad row costs only its own batch (answered ``InternalError``) or message (logged and dropped).

Which thing a message is from: an export batch's thing is the one in its topic, and a device-topic message's is
the second level of ``dt/<thing>/...``; the broker's ACL (the default device policy) lets a device publish only
under its own name there. A message on any other configured filter is stored with thing ``""``: the broker does
not say who published it, and guessing from the topic would attribute data to a device nobody checked.

Device-topic messages are stored at most once: the broker has handed them over when they wait here, so a cloud
that stops before writing them loses them. Exports are stored exactly once, because a device resends every batch
that is not answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker import BrokerConnection
from edgewise.cloud.errors import CloudError
from edgewise.cloud.telemetry.records import (
    STREAM_MAX_LENGTH,
    StoreResult,
    TelemetryRecord,
    store_record_groups,
    store_records,
)
from edgewise.cloud.workerlink import PacketTooLargeError, WorkerLink
from edgewise.names import THING_NAME
from edgewise.protocol import telemetry
from edgewise.protocol.telemetry import (
    BatchAccepted,
    BatchRejection,
    ExportBatch,
    TelemetryPayloadError,
)
from edgewise.topics import filter_matches

logger = logging.getLogger(__name__)

_CLIENT_ID = "edgewise-telemetry"
#: Messages waiting to be written are bounded by their bytes: beyond this, batches are answered ``Throttled``
#: and device-topic messages dropped until the store catches up.
MAX_PENDING_BYTES: Final = 64 * 1024 * 1024
_CLOSE_TIMEOUT = 10.0

Clock = Callable[[], int]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class TelemetryStatistics:
    """What a :class:`TelemetryWorker` has done since it started."""

    stored: int  #: records written
    duplicates: int  #: exported records that were stored already
    accepted_batches: int
    rejected_batches: int  #: malformed, throttled, or not stored
    dropped_messages: int  #: device-topic messages not stored
    pending_records: int  #: records waiting to be written


@dataclass(frozen=True)
class _Pending:
    """Records waiting to be written: one export batch (``batch`` set, to answer) or one device-topic message."""

    thing: str
    records: tuple[TelemetryRecord, ...]
    size: int
    batch: ExportBatch | None = None


class TelemetryWorker:
    """Stores the telemetry devices send until closed."""

    #: What the cloud's logs call this worker.
    name = "telemetry"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        connection: BrokerConnection,
        *,
        topic_filters: Sequence[str] = (telemetry.DEVICE_TOPIC_FILTER,),
        flush_messages: int = 500,
        flush_interval_ms: int = 200,
        clock: Clock = _now_ms,
    ) -> None:
        if flush_messages < 1 or flush_interval_ms < 1:
            raise ValueError("flush_messages and flush_interval_ms must be at least 1")
        self._sessions = sessions
        self._topic_filters = tuple(topic_filters)
        self._flush_messages = flush_messages
        self._flush_interval = flush_interval_ms / 1000
        self._clock = clock
        self._pending: list[_Pending] = []
        self._pending_records = 0
        self._pending_bytes = 0
        #: Set while something waits to be written; ``_full`` once enough waits to write it at once.
        self._waiting = asyncio.Event()
        self._full = asyncio.Event()
        self._closing = False
        self._counts = dict.fromkeys(
            ("stored", "duplicates", "accepted_batches", "rejected_batches", "dropped_messages"), 0
        )
        self._writer: asyncio.Task[None] | None = None
        self._link = WorkerLink(
            connection,
            client_id=_CLIENT_ID,
            filters=(telemetry.BATCH_FILTER, *self._topic_filters),
            on_message=self._receive,
        )

    async def start(self) -> None:
        """Start writing, connect and subscribe.

        Raises:
            OSError: the broker cannot be reached.
            ConnectionError: the broker refused or did not answer.
        """
        self._writer = asyncio.create_task(self._write_continuously(), name="telemetry-writer")
        await self._link.start()

    async def close(self) -> None:
        """Write what waits (answering its batches), then disconnect."""
        self._closing = True
        writer, self._writer = self._writer, None
        if writer is not None:
            self._waiting.set()
            self._full.set()
            try:
                await asyncio.wait_for(writer, _CLOSE_TIMEOUT)
            except TimeoutError:
                logger.warning(
                    "telemetry-close-slow timeout_s=%.0f: unwritten messages dropped", _CLOSE_TIMEOUT
                )
        await self._link.close()

    def statistics(self) -> TelemetryStatistics:
        """What the worker has done so far. Must be called from the event loop thread."""
        return TelemetryStatistics(**self._counts, pending_records=self._pending_records)

    # -- receiving (on the loop) ------------------------------------------------------------------------

    async def _receive(self, topic: str, payload: bytes) -> None:
        if self._closing:
            return
        if (thing := telemetry.thing_of_batch(topic)) is not None:
            self._receive_batch(thing, payload)
        elif any(filter_matches(topic_filter, topic) for topic_filter in self._topic_filters):
            self._receive_message(topic, payload)

    def _receive_batch(self, thing: str, payload: bytes) -> None:
        try:
            batch = telemetry.parse_batch(payload)
        except TelemetryPayloadError as exc:
            logger.warning("telemetry-batch-rejected thing=%s: %s", thing, exc)
            self._reject(thing, telemetry.client_token_of(payload), exc.code, str(exc))
            return
        if self._pending_bytes + len(payload) > MAX_PENDING_BYTES:
            logger.warning("telemetry-throttled thing=%s pending_bytes=%d", thing, self._pending_bytes)
            self._reject(
                thing, batch.client_token, telemetry.THROTTLED, "The cloud is busy; send again later"
            )
            return
        records = tuple(
            TelemetryRecord(
                thing_name=thing,
                stream=batch.stream,
                timestamp_ms=record.timestamp_ms,
                payload=record.payload,
                sequence_number=record.sequence_number,
                source=batch.source,
            )
            for record in batch.records
        )
        self._enqueue(_Pending(thing, records, len(payload), batch))

    def _receive_message(self, topic: str, payload: bytes) -> None:
        if len(topic) > STREAM_MAX_LENGTH:
            self._drop(topic, f"topics over {STREAM_MAX_LENGTH} characters are not stored")
            return
        if self._pending_bytes + len(payload) > MAX_PENDING_BYTES:
            self._drop(topic, f"{self._pending_bytes} bytes wait to be written already")
            return
        thing = telemetry.thing_of_device_topic(topic)
        record = TelemetryRecord(
            thing_name=thing if thing is not None and THING_NAME.fullmatch(thing) else "",
            stream=topic,
            timestamp_ms=self._clock(),
            payload=payload,
            topic=topic,
        )
        self._enqueue(_Pending(record.thing_name, (record,), len(payload)))

    def _drop(self, topic: str, reason: str) -> None:
        self._counts["dropped_messages"] += 1
        logger.warning("telemetry-message-dropped topic=%.300s: %s", topic, reason)

    def _enqueue(self, pending: _Pending) -> None:
        self._pending.append(pending)
        self._pending_records += len(pending.records)
        self._pending_bytes += pending.size
        self._waiting.set()
        if pending.batch is not None or self._pending_records >= self._flush_messages:
            self._full.set()

    def _reject(self, thing: str, token: str | None, code: telemetry.RejectionCode, message: str) -> None:
        self._counts["rejected_batches"] += 1
        reply = BatchRejection(client_token=token, code=code, message=message[:1024])
        self._publish(telemetry.reply_topic(thing, telemetry.REJECTED), telemetry.build_rejection(reply))

    def _publish(self, topic: str, payload: bytes) -> None:
        try:
            self._link.publish(topic, payload)
        except PacketTooLargeError as exc:
            logger.error("telemetry-reply-dropped: %s", exc)

    # -- writing ----------------------------------------------------------------------------------------

    async def _write_continuously(self) -> None:
        while True:
            await self._waiting.wait()
            if not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._flush_interval)
            group, self._pending = self._pending, []
            self._pending_records = self._pending_bytes = 0
            self._full.clear()
            if not self._closing:
                self._waiting.clear()
            try:
                await self._write(group)
            except Exception:
                logger.exception("telemetry-write-failed messages=%d", len(group))
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
            if pending.batch is None:
                if not isinstance(outcome, StoreResult):
                    self._counts["dropped_messages"] += 1
                continue
            batch = pending.batch
            if isinstance(outcome, StoreResult):
                self._counts["accepted_batches"] += 1
                accepted = BatchAccepted(
                    client_token=batch.client_token,
                    stored=outcome.stored,
                    duplicates=outcome.duplicates,
                    last_sequence_number=batch.records[-1].sequence_number,
                )
                topic = telemetry.reply_topic(pending.thing, telemetry.ACCEPTED)
                self._publish(topic, telemetry.build_accepted(accepted))
            else:
                self._reject(pending.thing, batch.client_token, telemetry.INTERNAL_ERROR, outcome)
        logger.debug("telemetry-written entries=%d", len(group))

    def _store(self, group: list[_Pending]) -> list[StoreResult | str]:
        """Write ``group`` in one transaction, or each of its entries alone when that fails. Blocks."""
        try:
            with self._sessions.begin() as session:
                results = store_record_groups(session, [pending.records for pending in group])
            return [*results]
        except (SQLAlchemyError, CloudError) as exc:
            if len(group) == 1:
                return [self._failed(group[0], exc)]
            logger.warning("telemetry-group-failed entries=%d: %s; writing them one by one", len(group), exc)
        outcomes: list[StoreResult | str] = []
        for pending in group:
            try:
                with self._sessions.begin() as session:
                    outcomes.append(store_records(session, pending.records))
            except (SQLAlchemyError, CloudError) as exc:
                outcomes.append(self._failed(pending, exc))
        return outcomes

    def _failed(self, pending: _Pending, exc: Exception) -> str:
        where = (
            f"export batch to stream {pending.batch.stream!r}" if pending.batch else "device-topic message"
        )
        logger.error("telemetry-not-stored thing=%s %s: %s", pending.thing, where, exc)
        return f"The {where} was not stored: {str(exc)[:500]}"

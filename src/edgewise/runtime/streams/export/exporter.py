"""One export of one stream: read from the checkpoint, batch, send, and advance only on the cloud's acknowledgement.

An :class:`StreamExporter` runs as one task per enabled export. It reads from the message after its checkpoint (the
first time: the config's ``startSequenceNumber``) with a blocking read, takes up to ``batchSize`` messages — with
``batchIntervalMillis`` it waits for the batch to fill until the oldest message has waited that long — turns
them into records (:mod:`.mapping`), and sends each batch through its channel when the scheduler gives it a turn.
A batch that is refused, unanswered or cannot leave (offline) is sent again after an exponential back-off, for
ever; the checkpoint moves past a message only once every batch holding it was acknowledged, so no message is
skipped for a delivery failure, and the cloud's idempotent ingest absorbs what is sent twice. A message the
stream itself no longer holds (time to live, ``OverwriteOldestData``) cannot be exported; the exporter logs the
gap and goes on from the oldest message kept, as the SDK's read does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from edgewise.protocol import telemetry
from edgewise.runtime.streams.definition import ExportStatus, StoredMessage
from edgewise.runtime.streams.errors import NotEnoughMessagesError, StreamResponseTooLargeError
from edgewise.runtime.streams.export.channel import ExportDeliveryError, TelemetryChannel
from edgewise.runtime.streams.export.checkpoints import Checkpoint, CheckpointFile
from edgewise.runtime.streams.export.definitions import ExportConfig
from edgewise.runtime.streams.export.mapping import convert, pack
from edgewise.runtime.streams.export.scheduling import ExportClock, ExportScheduler
from edgewise.runtime.streams.store import StreamStore

logger = logging.getLogger(__name__)

#: How long one blocking read waits before it is asked again (it is cancelled when the export stops).
_READ_WAIT_MILLIS: Final = 3_600_000


@dataclass(frozen=True)
class RetrySettings:
    """The back-off between attempts to send a batch: ``first`` seconds, doubled up to ``most``, with jitter."""

    first: float = 1.0
    most: float = 60.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.most, self.first * 2.0 ** min(attempt, 32))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class ExportProgress:
    """What every kind of export keeps: its config, its checkpoint (saved in ``checkpoints``), its last attempt
    and its last error, shown by :meth:`status` as ``describe`` shows them."""

    def __init__(self, config: ExportConfig, checkpoints: CheckpointFile) -> None:
        self._config = config
        self._checkpoints = checkpoints
        self._checkpoint = Checkpoint(last_sequence_number=config.start_sequence_number - 1)
        self._last_attempt = 0
        self._error: str | None = None

    @property
    def config(self) -> ExportConfig:
        return self._config

    def status(self) -> ExportStatus:
        """How far the export got, as ``describe`` shows it."""
        checkpoint = self._checkpoint
        return ExportStatus(
            export_config_identifier=self._config.identifier,
            last_exported_sequence_number=checkpoint.last_sequence_number,
            last_export_time=max(self._last_attempt, checkpoint.last_export_time),
            error_message=self._error,
            exported_bytes_from_stream=checkpoint.exported_bytes,
            exported_messages_count=checkpoint.exported_messages,
        )

    def fail(self, error: str) -> None:
        """Show ``error`` in the status (an export that cannot run)."""
        self._error = error

    async def load(self) -> None:
        """Take up the saved checkpoint, if any."""
        saved = await self._checkpoints.load()
        if saved is not None:
            self._checkpoint = saved


class StreamExporter(ExportProgress):
    """Exports stream ``source`` of ``store`` as ``config`` says. :meth:`run` until cancelled."""

    def __init__(
        self,
        store: StreamStore,
        source: str,
        config: ExportConfig,
        *,
        channel: TelemetryChannel,
        scheduler: ExportScheduler,
        checkpoints: CheckpointFile,
        clock: ExportClock | None = None,
        retry: RetrySettings | None = None,
    ) -> None:
        super().__init__(config, checkpoints)
        self._store = store
        self._source = source
        self._channel = channel
        self._scheduler = scheduler
        self._clock = clock or ExportClock()
        self._retry = retry or RetrySettings()

    async def run(self) -> None:
        """Export for ever (until cancelled, or until the stream is deleted or the store closed), from the
        checkpoint :meth:`load` took up."""
        if self._config.disabled:
            return
        while True:
            messages = await self._next_messages(self._checkpoint.last_sequence_number + 1)
            await self._export(messages)

    async def _next_messages(self, start: int) -> list[StoredMessage]:
        config = self._config
        while True:
            try:
                messages = await self._read(start, minimum=1, timeout=_READ_WAIT_MILLIS)
                break
            except NotEnoughMessagesError:
                continue
        if messages[0].sequence_number > start:
            logger.warning(
                "Stream %r export %r: messages %d to %d are no longer in the stream and cannot be exported",
                self._source,
                config.identifier,
                start,
                messages[0].sequence_number - 1,
            )
        if config.batch_interval_millis is None or len(messages) >= config.batch_size:
            return messages
        waited = self._clock.wall_millis() - messages[0].ingest_time
        remaining = (config.batch_interval_millis - waited) / 1000
        first = messages[0].sequence_number
        if remaining > 0:
            await self._wait_for_batch(first, remaining)
        return await self._read(first, minimum=1, timeout=0)

    async def _wait_for_batch(self, first: int, seconds: float) -> None:
        """Return once ``batchSize`` messages from ``first`` are there, or after ``seconds``."""
        fill = asyncio.ensure_future(
            self._read(first, minimum=self._config.batch_size, timeout=_READ_WAIT_MILLIS)
        )
        timer = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            await asyncio.wait((fill, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (fill, timer):
                task.cancel()
            results = await asyncio.gather(fill, timer, return_exceptions=True)
        error = results[0]
        # A read that found too few messages or too many bytes only ends the wait; the batch goes as it is.
        if isinstance(error, BaseException) and not isinstance(
            error, NotEnoughMessagesError | StreamResponseTooLargeError | asyncio.CancelledError
        ):
            raise error

    async def _read(self, start: int, *, minimum: int, timeout: int) -> list[StoredMessage]:
        return await self._store.read(
            self._source,
            desired_start_sequence_number=start,
            min_message_count=minimum,
            max_message_count=self._config.batch_size,
            read_timeout_millis=timeout,
        )

    async def _export(self, messages: Sequence[StoredMessage]) -> None:
        config = self._config
        conversion = convert(config, self._source, messages)
        refused: list[str] = []
        for stream, records in conversion.records.items():
            for batch in pack(config, self._source, stream, records):
                refused += await self._deliver(batch)
        previous = self._checkpoint
        checkpoint = Checkpoint(
            last_sequence_number=messages[-1].sequence_number,
            exported_messages=previous.exported_messages + len(messages),
            exported_bytes=previous.exported_bytes + sum(len(message.payload) for message in messages),
            last_export_time=self._clock.wall_millis(),
        )
        await self._checkpoints.save(checkpoint)
        self._checkpoint = checkpoint
        self._error = None
        skipped = [*conversion.skipped, *refused]
        if skipped:
            self._error = "; ".join(skipped)[:2000]
            for reason in skipped:
                logger.warning("Stream %r export %r skipped %s", self._source, config.identifier, reason)

    async def _deliver(self, batch: telemetry.ExportBatch) -> list[str]:
        """Send ``batch`` until it is acknowledged; return why records were refused for good, if any.

        A batch the cloud refuses as invalid is never accepted as it is: it is sent again in halves, so only
        the records the cloud refuses one by one are skipped (with the reason in the export status), as the
        SDK skips what an export can never deliver, and the export goes on behind them.
        """
        config = self._config
        size = telemetry.EMPTY_BATCH_BYTES + sum(map(telemetry.encoded_record_size, batch.records))
        attempt = 0
        while True:
            try:
                async with self._scheduler.turn(priority=config.priority, size=size):
                    self._last_attempt = self._clock.wall_millis()
                    answer = await self._channel.send(batch)
            except ExportDeliveryError as error:
                problem = str(error)
            else:
                if isinstance(answer, telemetry.BatchAccepted):
                    return []
                if answer.code == telemetry.INVALID_PAYLOAD:
                    return await self._deliver_refused(batch, answer.message)
                problem = (
                    f"The cloud refused export batch {batch.client_token}: {answer.code}: {answer.message}"
                )
            self._error = problem
            delay = self._retry.delay(attempt)
            attempt += 1
            logger.warning(
                "Stream %r export %r: %s; sending records %d to %d again in %.1f s",
                self._source,
                config.identifier,
                problem,
                batch.records[0].sequence_number,
                batch.records[-1].sequence_number,
                delay,
            )
            await self._clock.sleep(delay)

    async def _deliver_refused(self, batch: telemetry.ExportBatch, message: str) -> list[str]:
        records = batch.records
        if len(records) == 1:
            return [f"record {records[0].sequence_number}, which the cloud refused: {message}"]
        middle = len(records) // 2
        refused: list[str] = []
        for part in (records[:middle], records[middle:]):
            token = uuid.uuid4().hex
            refused += await self._deliver(dataclasses.replace(batch, client_token=token, records=part))
        return refused

"""``S3ExportTaskExecutorConfig`` exports: each message is a task naming a file, uploaded to the cloud's store.

A component appends the SDK's ``S3ExportTaskDefinition`` as JSON (``inputUrl``, ``bucket``, ``key``,
``userMetadata``) to a stream exported with an ``s3TaskExecutor`` config; :class:`S3TaskExporter` takes the
tasks one at a time, in order, and :class:`~.uploader.ObjectUploader` sends the file with the device's certificate over
mutual TLS to the cloud's HTTPS listener (``PUT /streams/s3/<bucket>/<key>``, with its length and SHA-256), where
it is kept in the cloud's object store under the thing's name. The checkpoint moves past a task once it
succeeded or failed for good, so after a restart export resumes with the next task.

Which files may be exported: an absolute ``file://`` URL (no host, or ``localhost``) naming a regular file the
runtime can read, outside the runtime's root directory (which holds the device's private key, the
configuration and every component's secrets) and not the private key itself. Anything else fails the task.
A key may not use the SDK's ``!{timestamp:...}`` templates, which Edgewise does not expand.

Statuses go to the config's status stream as the SDK's ``StatusMessage`` JSON (``eventType`` S3Task, ``status``,
``statusLevel``, ``statusContext`` with the task, export identifier, stream name and sequence number, ``message``,
``timestampEpochMs``): InProgress (INFO) when the upload starts, Success (INFO) or Failure (ERROR) at the end.
A status is written only when its level is at most the config's ``statusLevel``. An upload that cannot reach the
cloud, or that the cloud answers with 408, 429 or 5xx, is tried again after a back-off, for ever; any other
refusal (the policy, a bad name, the file changed while it was sent) fails the task.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
from collections.abc import Mapping
from enum import IntEnum
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from edgewise.protocol import object_uploads
from edgewise.runtime.streams.definition import StoredMessage
from edgewise.runtime.streams.errors import NotEnoughMessagesError, StreamError, StreamNotFoundError
from edgewise.runtime.streams.export.channel import ExportDeliveryError
from edgewise.runtime.streams.export.checkpoints import Checkpoint, CheckpointFile
from edgewise.runtime.streams.export.definitions import ExportConfig
from edgewise.runtime.streams.export.exporter import ExportProgress, RetrySettings
from edgewise.runtime.streams.export.scheduling import ExportClock, ExportScheduler
from edgewise.runtime.streams.export.uploader import ObjectSender, S3Task, TaskFailedError
from edgewise.runtime.streams.store import StreamStore

logger = logging.getLogger(__name__)

#: Largest task message read (the SDK's definition is small: a URL, two names and a little metadata).
MAX_TASK_BYTES: Final = 64 * 1024
_READ_WAIT_MILLIS: Final = 3_600_000


class StatusLevel(IntEnum):
    """The SDK's ``StatusLevel``: a status is written when its level is at most the config's."""

    ERROR = 0
    WARN = 1
    INFO = 2
    DEBUG = 3
    TRACE = 4


class TaskStatus(IntEnum):
    """The SDK's ``Status`` of an S3 task, with the level each is written at."""

    Success = 0
    Failure = 1
    InProgress = 2
    Warning = 3
    Canceled = 4

    @property
    def level(self) -> StatusLevel:
        return _LEVELS[self]


_LEVELS: Final = {
    TaskStatus.Success: StatusLevel.INFO,
    TaskStatus.Failure: StatusLevel.ERROR,
    TaskStatus.InProgress: StatusLevel.INFO,
    TaskStatus.Warning: StatusLevel.WARN,
    TaskStatus.Canceled: StatusLevel.WARN,
}
_S3_TASK_EVENT: Final = 0


def parse_task(payload: bytes, *, refused: tuple[Path, ...] = ()) -> S3Task:
    """The task a message holds. Blocks (checks the file).

    Raises:
        TaskFailedError: the message is not a valid task, or names a file that may not be exported; the
            message names the field and the problem.
    """
    if len(payload) > MAX_TASK_BYTES:
        raise TaskFailedError(f"the task is {len(payload)} bytes long; at most {MAX_TASK_BYTES}")
    try:
        document = json.loads(payload)
    except ValueError as error:
        raise TaskFailedError(f"the message is not an S3ExportTaskDefinition in JSON: {error}") from None
    if not isinstance(document, dict):
        raise TaskFailedError("the message is not an S3ExportTaskDefinition: not a JSON object")
    unknown = sorted(set(document) - {"inputUrl", "bucket", "key", "userMetadata"})
    if unknown:
        raise TaskFailedError(f"{unknown[0]}: not a field of an S3ExportTaskDefinition")
    bucket = _bucket(document.get("bucket"))
    key = _key(document.get("key"))
    return S3Task(
        _file(document.get("inputUrl"), refused), bucket, key, _metadata(document.get("userMetadata"))
    )


def _bucket(value: object) -> str:
    if not isinstance(value, str):
        raise TaskFailedError(f"bucket: required, a bucket name, not {value!r}")
    problem = object_uploads.bucket_problem(value)
    if problem is not None:
        raise TaskFailedError(f"bucket: {problem}")
    return value


def _key(value: object) -> str:
    if not isinstance(value, str):
        raise TaskFailedError(f"key: required, an object key, not {value!r}")
    problem = object_uploads.key_problem(value)
    if problem is not None:
        raise TaskFailedError(f"key: {problem}")
    return value


def _metadata(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TaskFailedError("userMetadata: must be a map of names to text")
    metadata: dict[str, str] = {}
    for name, text in value.items():
        if (
            not isinstance(name, str)
            or not name
            or not all(char.isascii() and (char.isalnum() or char in "-_") for char in name)
        ):
            raise TaskFailedError(
                f"userMetadata: {str(name)[:60]!r} is not a metadata name (letters, digits, - and _)"
            )
        if not isinstance(text, str) or not text.isprintable() or not text.isascii():
            raise TaskFailedError(f"userMetadata.{name}: must be printable ASCII text")
        metadata[name.lower()] = text
    if sum(len(name) + len(text) for name, text in metadata.items()) > object_uploads.MAX_METADATA_BYTES:
        raise TaskFailedError(f"userMetadata: more than {object_uploads.MAX_METADATA_BYTES} bytes together")
    return metadata


def _file(value: object, refused: tuple[Path, ...]) -> Path:
    if not isinstance(value, str):
        raise TaskFailedError(f"inputUrl: required, a file:// URL, not {value!r}")
    parts = urlsplit(value)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise TaskFailedError(f"inputUrl: {value[:200]!r} is not a file:// URL of a local file")
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise TaskFailedError(f"inputUrl: {value[:200]!r} does not name an absolute path")
    try:
        resolved = path.resolve(strict=True)
        mode = resolved.stat().st_mode
    except OSError as error:
        raise TaskFailedError(f"inputUrl: cannot read {path}: {error.strerror}") from None
    if not stat.S_ISREG(mode):
        raise TaskFailedError(f"inputUrl: {path} is not a regular file")
    for directory in refused:
        if resolved == directory or resolved.is_relative_to(directory):
            raise TaskFailedError(
                f"inputUrl: {path} is in {directory}, which the stream manager does not export"
            )
    if not os.access(resolved, os.R_OK):
        raise TaskFailedError(f"inputUrl: {path} is not readable by the runtime")
    return resolved


class S3TaskExporter(ExportProgress):
    """Runs the tasks of stream ``source`` of ``store`` as ``config`` says. :meth:`run` until cancelled."""

    def __init__(
        self,
        store: StreamStore,
        source: str,
        config: ExportConfig,
        *,
        sender: ObjectSender,
        scheduler: ExportScheduler,
        checkpoints: CheckpointFile,
        refused: tuple[Path, ...] = (),
        clock: ExportClock | None = None,
        retry: RetrySettings | None = None,
    ) -> None:
        super().__init__(config, checkpoints)
        self._store = store
        self._source = source
        self._sender = sender
        self._scheduler = scheduler
        self._refused = refused
        self._clock = clock or ExportClock()
        self._retry = retry or RetrySettings()
        self._status_stream_missing = False

    async def run(self) -> None:
        """Run tasks for ever (until cancelled, or the stream is deleted or the store closed)."""
        if self._config.disabled:
            return
        while True:
            message = await self._next_task(self._checkpoint.last_sequence_number + 1)
            exported = await self._execute(message)
            previous = self._checkpoint
            checkpoint = Checkpoint(
                last_sequence_number=message.sequence_number,
                exported_messages=previous.exported_messages + 1,
                exported_bytes=previous.exported_bytes + exported,
                last_export_time=self._clock.wall_millis(),
            )
            await self._checkpoints.save(checkpoint)
            self._checkpoint = checkpoint

    async def _next_task(self, start: int) -> StoredMessage:
        while True:
            try:
                messages = await self._store.read(
                    self._source,
                    desired_start_sequence_number=start,
                    min_message_count=1,
                    max_message_count=1,
                    read_timeout_millis=_READ_WAIT_MILLIS,
                )
            except NotEnoughMessagesError:
                continue
            message = messages[0]
            if message.sequence_number > start:
                logger.warning(
                    "Stream %r export %r: tasks %d to %d are no longer in the stream and are not run",
                    self._source,
                    self._config.identifier,
                    start,
                    message.sequence_number - 1,
                )
            return message

    async def _execute(self, message: StoredMessage) -> int:
        """Run the task in ``message``; the bytes uploaded (0 when it failed)."""
        label = f"Stream {self._source!r} export {self._config.identifier!r} task {message.sequence_number}"
        definition = _definition(message.payload)
        try:
            task = await asyncio.to_thread(parse_task, message.payload, refused=self._refused)
        except TaskFailedError as error:
            return await self._failed(message, definition, label, str(error))
        await self._report(message, definition, TaskStatus.InProgress, f"Uploading {task.path}")
        attempt = 0
        while True:
            try:
                size = (await asyncio.to_thread(task.path.stat)).st_size
                async with self._scheduler.turn(priority=self._config.priority, size=size):
                    self._last_attempt = self._clock.wall_millis()
                    logger.info(
                        "%s: uploading %s (%d bytes) to %s/%s", label, task.path, size, task.bucket, task.key
                    )
                    sent = await self._sender.upload(task, label=label)
            except (TaskFailedError, OSError) as error:
                return await self._failed(message, definition, label, str(error))
            except ExportDeliveryError as error:
                self._error = str(error)
                delay = self._retry.delay(attempt)
                attempt += 1
                logger.warning("%s: %s; trying again in %.1f s", label, error, delay)
                await self._clock.sleep(delay)
                continue
            self._error = None
            logger.info("%s: uploaded %s (%d bytes)", label, task.path, sent)
            await self._report(
                message, definition, TaskStatus.Success, f"Uploaded {task.path} to {task.bucket}/{task.key}"
            )
            return sent

    async def _failed(
        self, message: StoredMessage, definition: dict[str, Any], label: str, problem: str
    ) -> int:
        self._error = f"task {message.sequence_number} failed: {problem}"[:2000]
        logger.warning("%s failed: %s", label, problem)
        await self._report(message, definition, TaskStatus.Failure, problem[:2000])
        return 0

    async def _report(
        self, message: StoredMessage, definition: dict[str, Any], status: TaskStatus, text: str
    ) -> None:
        """Append the status to the config's status stream, if it names one and its level lets it through."""
        stream = self._config.status_stream
        # A status written to the task stream itself would be read back as a task, fail, and write another.
        if stream is None or stream == self._source or status.level > self._config.status_level:
            return
        context: dict[str, Any] = {
            "exportIdentifier": self._config.identifier,
            "streamName": self._source,
            "sequenceNumber": message.sequence_number,
        }
        if definition:
            context = {"s3ExportTaskDefinition": definition, **context}
        body = {
            "eventType": _S3_TASK_EVENT,
            "statusLevel": int(status.level),
            "status": int(status),
            "statusContext": context,
            "message": text,
            "timestampEpochMs": self._clock.wall_millis(),
        }
        try:
            await self._store.append(stream, json.dumps(body).encode())
        except StreamNotFoundError:
            if not self._status_stream_missing:
                logger.warning(
                    "Stream %r export %r: status stream %r does not exist; statuses are not written",
                    self._source,
                    self._config.identifier,
                    stream,
                )
            self._status_stream_missing = True
        except StreamError as error:
            logger.warning(
                "Stream %r export %r: status not written to %r: %s",
                self._source,
                self._config.identifier,
                stream,
                error,
            )
        else:
            self._status_stream_missing = False


def _definition(payload: bytes) -> dict[str, Any]:
    """The task as the status context repeats it: the fields of the definition that have the SDK's types."""
    try:
        document = json.loads(payload) if len(payload) <= MAX_TASK_BYTES else None
    except ValueError:
        return {}
    if not isinstance(document, dict):
        return {}
    kept: dict[str, Any] = {
        name: document[name] for name in ("inputUrl", "bucket", "key") if isinstance(document.get(name), str)
    }
    metadata = document.get("userMetadata")
    if isinstance(metadata, dict):
        kept["userMetadata"] = metadata
    return kept

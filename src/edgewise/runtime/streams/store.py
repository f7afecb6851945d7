"""Every message stream of the stream manager, under one directory: the operations the SDK's client calls.

Each ``File`` stream lives in ``ROOT/<sha256 of its name>/`` (names may be ``..`` or longer than a file name
allows, so they are not used as paths; the name is inside ``definition.cbor``). ``Memory`` streams never touch
the disk and are gone after a restart, definition included, as Greengrass's "never writes to the disk" says.
A deleted stream's directory is renamed to ``ROOT/.trash-…`` before it is removed, and a directory whose
definition cannot be read is moved to ``ROOT/.damaged-…`` and logged, so its data stays for inspection and
its name can be created again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import time
import uuid
from pathlib import Path

from edgewise.runtime.streams.definition import (
    Persistence,
    StoredMessage,
    StreamDefinition,
    StreamInfo,
    validate_stream_name,
)
from edgewise.runtime.streams.directory import DEFINITION_FILE
from edgewise.runtime.streams.errors import (
    InvalidStreamRequestError,
    StreamClosedError,
    StreamError,
    StreamNotFoundError,
)
from edgewise.runtime.streams.log import Clock, StreamLog
from edgewise.runtime.streams.records import MAX_PAYLOAD_BYTES

logger = logging.getLogger(__name__)

#: The most bytes of records one read answers with (at least one message of the largest size fits).
MAX_READ_BYTES = 4 * MAX_PAYLOAD_BYTES
MAX_SEQUENCE_NUMBER = 2**63 - 1
MAX_MESSAGE_COUNT = 2**31 - 1
MAX_READ_TIMEOUT_MILLIS = 9_223_372_036_854

_TRASH_PREFIX = ".trash-"
_DAMAGED_PREFIX = ".damaged-"


def wall_clock_millis() -> int:
    """Milliseconds since the epoch, the SDK's ``ingest_time``."""
    return time.time_ns() // 1_000_000


def stream_directory_name(name: str) -> str:
    """The directory of a ``File`` stream: a digest, so that no stream name is ever taken as a path."""
    return hashlib.sha256(name.encode()).hexdigest()


def _check_range(value: object, field_name: str, minimum: int, maximum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        msg = f"{field_name} must be an integer, not {value!r}"
        raise InvalidStreamRequestError(msg, field=field_name)
    if not minimum <= value <= maximum:
        msg = f"{field_name} must be between {minimum} and {maximum}, not {value}"
        raise InvalidStreamRequestError(msg, field=field_name)
    return value


class StreamStore:
    """The streams under ``root``; open with :meth:`open`, finish with :meth:`close`."""

    def __init__(self, root: Path, logs: dict[str, StreamLog], clock: Clock) -> None:
        self._root = root
        self._logs = logs
        self._clock = clock
        self._lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(cls, root: Path, *, clock: Clock = wall_clock_millis) -> StreamStore:
        """Load every stream stored under ``root`` (created if missing), cutting torn records away."""
        directories = await asyncio.to_thread(_prepare_root, root)
        logs: dict[str, StreamLog] = {}
        for directory in directories:
            try:
                log = await StreamLog.load(directory, clock=clock)
            except (StreamError, OSError) as error:
                logger.error("Moving aside stream directory %s that cannot be loaded: %s", directory, error)
                await asyncio.to_thread(_move_aside, directory)
                continue
            if stream_directory_name(log.name) != directory.name:
                logger.error(
                    "Moving aside %s: it holds stream %r, whose directory is another", directory, log.name
                )
                await log.close()
                await asyncio.to_thread(_move_aside, directory)
                continue
            logs[log.name] = log
        return cls(root, logs, clock)

    @property
    def root(self) -> Path:
        return self._root

    def names(self) -> list[str]:
        """The names of every stream, sorted."""
        return sorted(self._logs)

    def describe(self, name: str) -> StreamInfo:
        """The stream's definition and storage status; StreamNotFoundError if there is none of that name."""
        return self._log(name).info()

    async def create(self, definition: StreamDefinition) -> None:
        """Create a stream; InvalidStreamRequestError if one of that name exists (as Greengrass answers)."""
        async with self._lock:
            self._check_open()
            if definition.name in self._logs:
                msg = f"Message stream {definition.name!r} already exists"
                raise InvalidStreamRequestError(msg, field="name")
            directory = None
            if definition.persistence is Persistence.File:
                directory = self._root / stream_directory_name(definition.name)
            self._logs[definition.name] = await StreamLog.create(definition, directory, clock=self._clock)

    async def update(self, definition: StreamDefinition) -> None:
        """Change a stream's definition; StreamUpdateNotAllowedError for a change Greengrass refuses."""
        await self._log(definition.name).update(definition)

    async def delete(self, name: str) -> None:
        """Delete a stream and its data; readers waiting on it get StreamClosedError."""
        async with self._lock:
            log = self._log(name)
            del self._logs[name]
            await log.delete(self._root / f"{_TRASH_PREFIX}{uuid.uuid4().hex}")

    async def append(self, name: str, payload: bytes) -> int:
        """Append one message; its sequence number once it is stored (fsynced with ``flush_on_write``)."""
        if not (isinstance(name, str) and name in self._logs):
            # A stored stream's name was validated when it was created; only other names need the check.
            validate_stream_name(name)
        if not isinstance(payload, bytes | bytearray | memoryview):
            msg = f"payload must be bytes, not {type(payload).__name__}"
            raise InvalidStreamRequestError(msg, field="payload")
        return await self._log(name).append(bytes(payload))

    async def read(
        self,
        name: str,
        *,
        desired_start_sequence_number: int = 0,
        min_message_count: int = 1,
        max_message_count: int | None = None,
        read_timeout_millis: int = 0,
    ) -> list[StoredMessage]:
        """Messages from ``desired_start_sequence_number`` (or the oldest kept, if that one is gone).

        Waits up to ``read_timeout_millis`` for ``min_message_count`` messages, then raises
        NotEnoughMessagesError; answers at most ``max_message_count`` (``None``: ``min_message_count``, the
        SDK's default of one message) and at most :data:`MAX_READ_BYTES` bytes of records.
        """
        validate_stream_name(name, field_name="stream_name")
        start = _check_range(
            desired_start_sequence_number, "desired_start_sequence_number", 0, MAX_SEQUENCE_NUMBER
        )
        minimum = _check_range(min_message_count, "min_message_count", 1, MAX_MESSAGE_COUNT)
        maximum = minimum
        if max_message_count is not None:
            maximum = _check_range(max_message_count, "max_message_count", 1, MAX_MESSAGE_COUNT)
            if maximum < minimum:
                msg = f"max_message_count {maximum} must be at least min_message_count {minimum}"
                raise InvalidStreamRequestError(msg, field="max_message_count")
        timeout = _check_range(read_timeout_millis, "read_timeout_millis", 0, MAX_READ_TIMEOUT_MILLIS)
        return await self._log(name).read(
            start=start,
            min_count=minimum,
            max_count=maximum,
            timeout_millis=timeout,
            max_bytes=MAX_READ_BYTES,
        )

    async def remove_expired(self) -> None:
        """Drop every stream's segments past their TTL (appends and reads also do it for their stream)."""
        for log in list(self._logs.values()):
            await log.remove_expired()

    async def close(self) -> None:
        """Close every stream; requests still waiting get StreamClosedError."""
        async with self._lock:
            self._closed = True
            for log in self._logs.values():
                await log.close()

    def _log(self, name: str) -> StreamLog:
        self._check_open()
        log = self._logs.get(name)
        if log is None:
            raise StreamNotFoundError(name)
        return log

    def _check_open(self) -> None:
        if self._closed:
            raise StreamClosedError("The stream store is closed")


def _prepare_root(root: Path) -> list[Path]:
    """Create ``root`` if needed, finish deletions a crash interrupted, and list the stream directories."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    directories = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(_TRASH_PREFIX):
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.is_dir() and not entry.name.startswith("."):
            if (entry / DEFINITION_FILE).exists():
                directories.append(entry)
            else:
                # Creation writes the definition last: without it the stream was never created.
                shutil.rmtree(entry, ignore_errors=True)
    return directories


def _move_aside(directory: Path) -> None:
    directory.rename(directory.with_name(f"{_DAMAGED_PREFIX}{directory.name}-{uuid.uuid4().hex[:8]}"))

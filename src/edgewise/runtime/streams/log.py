"""One message stream's log: its segments, limits and TTL, serialised appends and reads that can wait.

A stream is a list of segments (``segments``) of records (``records``); a ``File`` stream keeps them in its
directory (``directory``), a ``Memory`` stream in memory, writing nothing to disk. There is always at least one
segment, the active one that appends go to; when every message is removed (by ``max_size`` or by TTL) a new
empty active segment named after the next sequence number is created, and made durable, *before* the old ones
are deleted, so sequence numbers never go back after a restart.

Data is removed in whole segments, as Greengrass does: ``OverwriteOldestData`` drops the oldest segments until
the new message fits in ``max_size``, ``RejectNewData`` refuses the append, and a segment whose newest message is
older than ``time_to_live_millis`` is dropped. Blocking file work (opening, ``fdatasync``, rolls, removals,
reads) runs in ``asyncio.to_thread``; only a small append without ``flush_on_write`` to an open segment is
written on the event loop, as it only copies into the page cache. The in-memory index changes only on the
event loop, after the write it describes has returned, so readers never see a record that is not written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgewise.runtime.streams.definition import (
    StorageStatus,
    StoredMessage,
    StrategyOnFull,
    StreamDefinition,
    StreamInfo,
)
from edgewise.runtime.streams.directory import (
    create_directory,
    load_directory,
    remove_directory,
    write_definition,
)
from edgewise.runtime.streams.errors import (
    InvalidStreamRequestError,
    NotEnoughMessagesError,
    StreamClosedError,
    StreamFullError,
    StreamPayloadTooLargeError,
    StreamReadError,
    StreamResponseTooLargeError,
    StreamUpdateNotAllowedError,
    StreamWriteError,
)
from edgewise.runtime.streams.records import HEADER_BYTES, MAX_PAYLOAD_BYTES, decode_records, encode_record
from edgewise.runtime.streams.segments import (
    FileSegment,
    MemorySegment,
    Segment,
    create_segment_file,
    segment_path,
    unlink_segments,
)

logger = logging.getLogger(__name__)

#: Clock returning milliseconds since the epoch (ingest times and TTL).
Clock = Callable[[], int]

#: The largest record an append without ``flush_on_write`` writes on the event loop; larger ones, every
#: ``fdatasync`` and the first write to a segment (which opens its file) go through a thread.
INLINE_WRITE_MAX_BYTES = 8 * 1024

#: How often a read retries after a segment it planned to read was removed under it.
_READ_ATTEMPTS = 3


@dataclass(frozen=True)
class _ReadPart:
    """The bytes ``start``..``end`` of one segment, holding whole records."""

    segment: Segment
    start: int
    end: int


class StreamLog:
    """One stream: its definition and segments, with appends serialised and reads that can wait.

    Build it with :meth:`create` or :meth:`load`; ``directory`` is ``None`` for a ``Memory`` stream.
    """

    def __init__(
        self, definition: StreamDefinition, directory: Path | None, segments: list[Segment], clock: Clock
    ) -> None:
        self._definition = definition
        self._directory = directory
        self._segments = segments
        self._clock = clock
        self._lock = asyncio.Lock()
        # Made by the first reader that waits, so that appends nobody waits for allocate nothing.
        self._appended: asyncio.Event | None = None
        self._closed = False

    @classmethod
    async def create(cls, definition: StreamDefinition, directory: Path | None, *, clock: Clock) -> StreamLog:
        """A new, empty stream; a ``File`` stream's directory must not exist yet."""
        if directory is None:
            return cls(definition, None, [MemorySegment(0)], clock)
        try:
            await asyncio.to_thread(create_directory, directory, definition)
        except OSError as error:
            msg = f"Message stream {definition.name!r} could not be created in {directory}: {error}"
            raise StreamWriteError(msg) from error
        return cls(definition, directory, [FileSegment(0, segment_path(directory, 0))], clock)

    @classmethod
    async def load(cls, directory: Path, *, clock: Clock) -> StreamLog:
        """The ``File`` stream stored in ``directory``, with torn tails cut away."""
        definition, segments = await asyncio.to_thread(load_directory, directory)
        return cls(definition, directory, list(segments), clock)

    @property
    def definition(self) -> StreamDefinition:
        return self._definition

    @property
    def name(self) -> str:
        return self._definition.name

    @property
    def next_sequence_number(self) -> int:
        return self._segments[-1].next_sequence_number

    def storage_status(self) -> StorageStatus:
        oldest = next((s.first_sequence_number for s in self._segments if s.count), self.next_sequence_number)
        return StorageStatus(
            oldest_sequence_number=oldest,
            newest_sequence_number=self.next_sequence_number - 1,
            total_bytes=sum(segment.size for segment in self._segments),
        )

    def info(self) -> StreamInfo:
        return StreamInfo(definition=self._definition, storage_status=self.storage_status())

    async def append(self, payload: bytes) -> int:
        """Store one message and return its sequence number (after fsync when ``flush_on_write``)."""
        definition = self._definition
        if not payload:
            raise InvalidStreamRequestError("payload must not be empty", field="payload")
        record_size = HEADER_BYTES + len(payload)
        limit = min(MAX_PAYLOAD_BYTES, definition.max_size - HEADER_BYTES)
        if len(payload) > limit:
            raise StreamPayloadTooLargeError(self.name, len(payload), limit)
        async with self._lock:
            self._check_open()
            now = self._clock()
            if definition.time_to_live_millis is not None:
                await self._remove_expired_locked(now)
            if self._total_bytes() + record_size > definition.max_size:
                if definition.strategy_on_full is StrategyOnFull.RejectNewData:
                    raise StreamFullError(self.name, definition.max_size)
                await self._drop_oldest_locked(definition.max_size - record_size)
            active = self._segments[-1]
            if active.count and active.size + record_size > definition.stream_segment_size:
                active = await self._roll_locked()
            sequence_number = active.next_sequence_number
            record = encode_record(sequence_number, now, payload)
            if isinstance(active, MemorySegment):
                active.data += record
            else:
                assert isinstance(active, FileSegment)
                await self._write_file_locked(active, record)
            active.record_added(record_size, now)
            self._wake_readers()
            return sequence_number

    async def read(
        self, *, start: int, min_count: int, max_count: int, timeout_millis: int, max_bytes: int
    ) -> list[StoredMessage]:
        """Up to ``max_count`` messages from ``start`` (or the oldest kept), waiting for ``min_count`` of them.

        Raises NotEnoughMessagesError when fewer than ``min_count`` are there after ``timeout_millis``, and
        StreamResponseTooLargeError when ``min_count`` of them exceed ``max_bytes``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_millis / 1000
        if self._definition.time_to_live_millis is not None:
            async with self._lock:
                self._check_open()
                await self._remove_expired_locked(self._clock())
        while True:
            self._check_open()
            first = max(start, self.storage_status().oldest_sequence_number)
            available = self.next_sequence_number - first
            if available >= min_count:
                return await self._read_available(first, min_count, max_count, max_bytes)
            remaining = deadline - loop.time()
            if remaining <= 0:
                msg = (
                    f"Message stream {self.name!r} has {max(available, 0)} messages from sequence number "
                    f"{first}, fewer than min_message_count {min_count}"
                )
                raise NotEnoughMessagesError(msg)
            if self._appended is None:
                self._appended = asyncio.Event()
            appended = self._appended
            try:
                async with asyncio.timeout(remaining):
                    await appended.wait()
            except TimeoutError:
                continue

    async def update(self, definition: StreamDefinition) -> None:
        """Apply a new definition under Greengrass's update rules; StreamUpdateNotAllowedError otherwise."""
        async with self._lock:
            self._check_open()
            current = self._definition
            if definition.name != current.name:
                msg = f"name cannot change from {current.name!r} to {definition.name!r}"
                raise StreamUpdateNotAllowedError(msg, field="name")
            if definition.persistence is not current.persistence:
                msg = (
                    f"persistence of message stream {self.name!r} cannot change from {current.persistence} "
                    f"to {definition.persistence}; delete the stream and create it again"
                )
                raise StreamUpdateNotAllowedError(msg, field="persistence")
            total = self._total_bytes()
            if definition.max_size < total:
                msg = (
                    f"max_size {definition.max_size} is below the {total} bytes message stream {self.name!r} "
                    "holds now"
                )
                raise StreamUpdateNotAllowedError(msg, field="max_size")
            if definition.max_size < definition.stream_segment_size:
                msg = (
                    f"max_size {definition.max_size} must be at least stream_segment_size "
                    f"{definition.stream_segment_size}"
                )
                raise StreamUpdateNotAllowedError(msg, field="max_size")
            if self._directory is not None:
                await asyncio.to_thread(write_definition, self._directory, definition)
            self._definition = definition
            await self._remove_expired_locked(self._clock())

    async def remove_expired(self) -> None:
        """Drop the segments whose messages are all older than the TTL (what a periodic sweep calls)."""
        if self._definition.time_to_live_millis is None:
            return
        async with self._lock:
            if not self._closed:
                await self._remove_expired_locked(self._clock())

    async def close(self) -> None:
        """Close the files; waiting and later requests get StreamClosedError."""
        async with self._lock:
            self._close_locked()

    async def delete(self, trash: Path) -> None:
        """Close the stream and remove its data; the directory is first renamed to ``trash`` (atomic)."""
        async with self._lock:
            self._close_locked()
            if self._directory is not None:
                await asyncio.to_thread(remove_directory, self._directory, trash)

    def _close_locked(self) -> None:
        self._closed = True
        for segment in self._segments:
            if isinstance(segment, FileSegment):
                segment.close()
        self._wake_readers()

    def _check_open(self) -> None:
        if self._closed:
            msg = f"Message stream {self.name!r} was closed or deleted"
            raise StreamClosedError(msg)

    def _wake_readers(self) -> None:
        if self._appended is not None:
            self._appended.set()
            self._appended = None

    def _total_bytes(self) -> int:
        return sum(segment.size for segment in self._segments)

    async def _write_file_locked(self, segment: FileSegment, record: bytes) -> None:
        flush = self._definition.flush_on_write
        try:
            if flush or segment.fd is None or len(record) > INLINE_WRITE_MAX_BYTES:
                await asyncio.to_thread(segment.write, record, flush=flush)
            else:
                # A few kilobytes appended to an open file only copy into the page cache: cheaper than the
                # thread hop, and within docs/design.md's conventions for small appends.
                segment.write(record, flush=False)
        except OSError as error:
            msg = f"Message stream {self.name!r} could not store the message: {error}"
            raise StreamWriteError(msg) from error

    async def _roll_locked(self) -> Segment:
        """Seal the active segment and start an empty one at the next sequence number."""
        first = self.next_sequence_number
        segment: Segment
        if self._directory is None:
            segment = MemorySegment(first)
        else:
            path = segment_path(self._directory, first)
            try:
                await asyncio.to_thread(create_segment_file, path)
            except OSError as error:
                msg = f"Message stream {self.name!r} could not start segment {path.name}: {error}"
                raise StreamWriteError(msg) from error
            previous = self._segments[-1]
            assert isinstance(previous, FileSegment)
            previous.close()
            segment = FileSegment(first, path)
        self._segments.append(segment)
        return segment

    async def _drop_oldest_locked(self, keep_at_most: int) -> None:
        """Remove the oldest segments until the stream holds at most ``keep_at_most`` bytes."""
        dropped: list[Segment] = []
        while self._total_bytes() > keep_at_most:
            if len(self._segments) == 1:
                await self._roll_locked()
            dropped.append(self._segments.pop(0))
        await self._remove_segments(dropped)

    async def _remove_expired_locked(self, now: int) -> None:
        ttl = self._definition.time_to_live_millis
        if ttl is None:
            return
        expired: list[Segment] = []
        while self._segments[0].count and self._segments[0].newest_ingest_time + ttl <= now:
            if len(self._segments) == 1:
                await self._roll_locked()
            expired.append(self._segments.pop(0))
        await self._remove_segments(expired)

    async def _remove_segments(self, segments: list[Segment]) -> None:
        files = [segment for segment in segments if isinstance(segment, FileSegment)]
        if files:
            logger.info(
                "Removing %d segments of message stream %r (sequence numbers %d to %d)",
                len(files),
                self.name,
                files[0].first_sequence_number,
                files[-1].next_sequence_number - 1,
            )
            await asyncio.to_thread(unlink_segments, files)

    async def _read_available(
        self, first: int, min_count: int, max_count: int, max_bytes: int
    ) -> list[StoredMessage]:
        for _ in range(_READ_ATTEMPTS):
            parts = self._plan_read(first, min_count, max_count, max_bytes)
            try:
                messages = await self._read_parts(parts)
            except FileNotFoundError:
                # A segment was dropped (size or TTL) between planning and reading: plan again from the
                # stream's new oldest message, which is what a read from a removed sequence number gets.
                first = max(first, self.storage_status().oldest_sequence_number)
                continue
            if len(messages) < min_count:
                msg = (
                    f"Message stream {self.name!r} has {len(messages)} messages from sequence number {first}, "
                    f"fewer than min_message_count {min_count}"
                )
                raise NotEnoughMessagesError(msg)
            return messages
        msg = f"Message stream {self.name!r} kept removing segments while they were read"
        raise StreamReadError(msg)

    def _plan_read(self, first: int, min_count: int, max_count: int, max_bytes: int) -> list[_ReadPart]:
        parts: list[_ReadPart] = []
        count = 0
        size = 0
        for segment in self._segments:
            if segment.next_sequence_number <= first or not segment.count:
                continue
            start_index = max(first - segment.first_sequence_number, 0)
            index = start_index
            while index < segment.count and count < max_count:
                record_size = segment.end_of(index) - segment.offsets[index]
                if size + record_size > max_bytes:
                    if count < min_count:
                        msg = (
                            f"min_message_count {min_count} messages of stream {self.name!r} from sequence "
                            f"number {first} do not fit in one answer of {max_bytes} bytes"
                        )
                        raise StreamResponseTooLargeError(msg)
                    break
                size += record_size
                count += 1
                index += 1
            if index > start_index:
                parts.append(_ReadPart(segment, segment.offsets[start_index], segment.end_of(index - 1)))
            if count >= max_count or index < segment.count:
                break
        return parts

    async def _read_parts(self, parts: list[_ReadPart]) -> list[StoredMessage]:
        if self._directory is None:
            chunks = [_read_memory_part(part) for part in parts]
        else:
            chunks = await asyncio.to_thread(_read_file_parts, parts)
        messages: list[StoredMessage] = []
        for chunk in chunks:
            messages.extend(decode_records(chunk, self.name))
        return messages


def _read_memory_part(part: _ReadPart) -> bytes:
    assert isinstance(part.segment, MemorySegment)
    return bytes(part.segment.data[part.start : part.end])


def _read_file_parts(parts: list[_ReadPart]) -> list[bytes]:
    chunks = []
    for part in parts:
        assert isinstance(part.segment, FileSegment)
        chunks.append(part.segment.read(part.start, part.end))
    return chunks

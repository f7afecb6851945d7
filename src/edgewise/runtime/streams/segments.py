"""Segments: the runs of consecutive records a stream's log is made of, in memory or one file each.

A segment file is named by the sequence number of its first record (``00000000000000000042.seg``) and holds
nothing but records (``records``). Each segment keeps an index of where its records start, so a read finds its
bytes without scanning. When a stream is opened, :func:`scan_segment` rebuilds a file segment's index and cuts
the file at the first torn or damaged record, dropping everything after it in that segment.

The functions and file methods here block; the log calls them through ``asyncio.to_thread``, except
:meth:`FileSegment.write` of a small record without ``fdatasync`` to an already open file (a page-cache copy).
"""

from __future__ import annotations

import logging
import os
from array import array
from pathlib import Path

from edgewise.runtime.streams.records import HEADER_BYTES, MAX_PAYLOAD_BYTES, decode_header

logger = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".seg"


class Segment:
    """A run of consecutive records; ``offsets[i]`` is where the record of ``first + i`` starts."""

    def __init__(self, first_sequence_number: int) -> None:
        self.first_sequence_number = first_sequence_number
        self.offsets = array("Q")
        self.size = 0
        self.newest_ingest_time = 0

    @property
    def count(self) -> int:
        return len(self.offsets)

    @property
    def next_sequence_number(self) -> int:
        return self.first_sequence_number + len(self.offsets)

    def record_added(self, record_size: int, ingest_time: int) -> None:
        self.offsets.append(self.size)
        self.size += record_size
        self.newest_ingest_time = max(self.newest_ingest_time, ingest_time)

    def end_of(self, index: int) -> int:
        """Where the record at ``index`` ends."""
        return self.offsets[index + 1] if index + 1 < len(self.offsets) else self.size


class MemorySegment(Segment):
    """A segment of a ``Memory`` stream: its records live in ``data``."""

    def __init__(self, first_sequence_number: int) -> None:
        super().__init__(first_sequence_number)
        self.data = bytearray()


class FileSegment(Segment):
    """A segment of a ``File`` stream: its records live in the file at ``path``, opened for appends lazily."""

    def __init__(self, first_sequence_number: int, path: Path) -> None:
        super().__init__(first_sequence_number)
        self.path = path
        self.fd: int | None = None

    def write(self, record: bytes, *, flush: bool) -> None:
        """Append ``record``; on failure cut the file back so no partial record stays (blocking)."""
        if self.fd is None:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            view = memoryview(record)
            while view:
                view = view[os.write(self.fd, view) :]
            if flush:
                os.fdatasync(self.fd)
        except OSError:
            os.ftruncate(self.fd, self.size)
            raise

    def read(self, start: int, end: int) -> bytes:
        with self.path.open("rb") as file:
            file.seek(start)
            return file.read(end - start)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def segment_path(directory: Path, first_sequence_number: int) -> Path:
    return directory / f"{first_sequence_number:020d}{SEGMENT_SUFFIX}"


def scan_segment(segment: FileSegment) -> None:
    """Index the records of ``segment``'s file; cut it at the first record that is torn or damaged (blocking)."""
    expected = segment.first_sequence_number
    with segment.path.open("r+b") as file:
        file_size = os.fstat(file.fileno()).st_size
        offset = 0
        while offset < file_size:
            data = file.read(HEADER_BYTES)
            if len(data) < HEADER_BYTES:
                break
            header = decode_header(data)
            if header.length > MAX_PAYLOAD_BYTES or header.sequence_number != expected:
                break
            if not header.matches(file.read(header.length)):
                break
            segment.record_added(HEADER_BYTES + header.length, header.ingest_time)
            offset += HEADER_BYTES + header.length
            expected += 1
        if offset < file_size:
            logger.warning(
                "Cutting %d bytes of torn or damaged records from %s after sequence number %d",
                file_size - offset,
                segment.path,
                expected - 1,
            )
            file.truncate(offset)
            os.fsync(file.fileno())


def fsync_directory(directory: Path) -> None:
    """Make the names in ``directory`` durable (blocking)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_segment_file(path: Path) -> None:
    """Create an empty segment file and make its name durable (blocking)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    os.close(fd)
    fsync_directory(path.parent)


def unlink_segments(segments: list[FileSegment]) -> None:
    """Close and delete the files of ``segments`` (blocking)."""
    for segment in segments:
        segment.close()
        segment.path.unlink(missing_ok=True)

"""The record codec: one stored message as a length- and CRC-framed record, the unit segments hold.

A record is::

    payload length u32 | CRC-32 u32 | sequence number u64 | ingest time i64 (ms) | payload

all big-endian; the CRC covers the other three header fields and the payload, so a record torn by kill -9 or a
power cut is found when its segment is scanned or read back. Nothing here does I/O.
"""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

from edgewise.runtime.streams.definition import StoredMessage
from edgewise.runtime.streams.errors import StreamReadError

#: The largest payload one message may have. The SDK allows frames up to 1 GiB; a message is held in memory
#: while it is appended and read, so we keep it to a size a small gateway can afford.
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024

_HEADER = struct.Struct(">IIQq")
_CHECKED = struct.Struct(">IQq")
HEADER_BYTES = _HEADER.size


class RecordHeader(NamedTuple):
    """The fixed-size fields in front of a record's payload."""

    length: int
    crc: int
    sequence_number: int
    ingest_time: int

    def matches(self, payload: bytes) -> bool:
        """Whether ``payload`` is whole and its CRC, with the other header fields, is the one recorded."""
        return len(payload) == self.length and self.crc == _checksum(
            self.length, self.sequence_number, self.ingest_time, payload
        )


def _checksum(length: int, sequence_number: int, ingest_time: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(_CHECKED.pack(length, sequence_number, ingest_time)))


def encode_record(sequence_number: int, ingest_time: int, payload: bytes) -> bytes:
    """One record: header (length, CRC, sequence number, ingest time) then the payload."""
    crc = _checksum(len(payload), sequence_number, ingest_time, payload)
    return _HEADER.pack(len(payload), crc, sequence_number, ingest_time) + payload


def decode_header(data: bytes, offset: int = 0) -> RecordHeader:
    """The header starting at ``offset``; ``data`` must hold at least :data:`HEADER_BYTES` from there."""
    return RecordHeader(*_HEADER.unpack_from(data, offset))


def decode_records(data: bytes, stream_name: str) -> list[StoredMessage]:
    """Every record in ``data``, which holds whole records; StreamReadError for one that does not check out."""
    messages: list[StoredMessage] = []
    offset = 0
    view = memoryview(data)
    while offset < len(data):
        if len(data) - offset < HEADER_BYTES:
            msg = f"Message stream {stream_name!r} has a truncated record header at offset {offset}"
            raise StreamReadError(msg)
        header = decode_header(data, offset)
        payload = bytes(view[offset + HEADER_BYTES : offset + HEADER_BYTES + header.length])
        if not header.matches(payload):
            msg = f"Message stream {stream_name!r} has a damaged record (sequence number {header.sequence_number})"
            raise StreamReadError(msg)
        messages.append(StoredMessage(stream_name, header.sequence_number, header.ingest_time, payload))
        offset += HEADER_BYTES + header.length
    return messages

"""The stream manager protocol's framing: versions, operations, statuses and frames, as the SDK speaks them.

A connection opens with one *connect version* byte from the client (answered with the server's), then frames
flow both ways. A frame is a 4-byte big-endian signed length (the operation byte plus the payload), one
operation byte (:class:`Operation`) and a payload. This module encodes and decodes frames and checks their
sizes; it does no I/O and does not look into payloads, except :func:`request_id_prefix`, which finds the request
id of one too large to read.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from edgewise.errors import EdgewiseError

#: The connect version byte the SDK sends first and expects back.
CONNECT_VERSION: Final = 1
#: The protocol version this server speaks natively (the SDK's ``VersionInfo.PROTOCOL_VERSION``).
PROTOCOL_VERSION: Final = "1.1.0"
#: Every protocol version this server accepts, newest first.
SUPPORTED_PROTOCOL_VERSIONS: Final = ("1.1.0", "1.0.0")
#: The stream manager version reported to clients (the release that introduced protocol 1.1.0).
SERVER_VERSION: Final = "1.1.0"
#: The largest length a frame header may announce: the SDK refuses to send anything longer.
MAX_FRAME_LENGTH: Final = 1 << 30
#: Size of the frame header: the length and the operation byte.
HEADER_SIZE: Final = 5

# Request ids are echoed back verbatim; the SDK sends UUIDs, so anything longer is not a real client.
MAX_REQUEST_ID_LENGTH: Final = 256


class Operation(enum.IntEnum):
    """The operation byte of a frame (the SDK's ``Operation``)."""

    UNKNOWN = 0
    CONNECT = 1
    CREATE_MESSAGE_STREAM = 2
    DELETE_MESSAGE_STREAM = 3
    APPEND_MESSAGE = 4
    READ_MESSAGES = 5
    CONNECT_RESPONSE = 6
    CREATE_MESSAGE_STREAM_RESPONSE = 7
    DELETE_MESSAGE_STREAM_RESPONSE = 8
    APPEND_MESSAGE_RESPONSE = 9
    READ_MESSAGES_RESPONSE = 10
    LIST_STREAMS = 11
    LIST_STREAMS_RESPONSE = 12
    DESCRIBE_MESSAGE_STREAM = 13
    DESCRIBE_MESSAGE_STREAM_RESPONSE = 14
    UPDATE_MESSAGE_STREAM = 15
    UPDATE_MESSAGE_STREAM_RESPONSE = 16
    UNKNOWN_OPERATION_ERROR = 17

    @property
    def response(self) -> Operation:
        """The operation that answers this request after the handshake; ``UNKNOWN_OPERATION_ERROR`` otherwise."""
        return _RESPONSES.get(self, Operation.UNKNOWN_OPERATION_ERROR)


_RESPONSES: Final = {
    Operation.CREATE_MESSAGE_STREAM: Operation.CREATE_MESSAGE_STREAM_RESPONSE,
    Operation.DELETE_MESSAGE_STREAM: Operation.DELETE_MESSAGE_STREAM_RESPONSE,
    Operation.APPEND_MESSAGE: Operation.APPEND_MESSAGE_RESPONSE,
    Operation.READ_MESSAGES: Operation.READ_MESSAGES_RESPONSE,
    Operation.LIST_STREAMS: Operation.LIST_STREAMS_RESPONSE,
    Operation.DESCRIBE_MESSAGE_STREAM: Operation.DESCRIBE_MESSAGE_STREAM_RESPONSE,
    Operation.UPDATE_MESSAGE_STREAM: Operation.UPDATE_MESSAGE_STREAM_RESPONSE,
}


class ResponseStatus(enum.IntEnum):
    """The ``status`` of a response (the SDK's ``ResponseStatusCode``; member names match it exactly)."""

    Success = 0
    UnknownFailure = 1
    Unauthorized = 2
    InvalidRequest = 3
    RequestPayloadTooLarge = 4
    ResourceNotFound = 5
    ServerTimeout = 6
    ResponsePayloadTooLarge = 7
    UnsupportedConnectVersion = 8
    UnexpectedOperation = 9
    UnsupportedProtocolVersion = 10
    InvalidProtocolVersion = 11
    FailedToConnect = 12
    NotEnoughMessages = 13
    MessageStoreReadError = 14
    OutOfMemoryError = 15
    UpdateFailed = 16
    UpdateNotAllowed = 17
    UnknownOperation = 18


class WireFormatError(EdgewiseError):
    """Bytes that are not a valid stream manager frame or request.

    Attributes:
        field: The wire path of the offending field (``definition.maxSize``), or None for the frame itself.
        request_id: The request's id when the payload carried one, so that the request can be answered.
        status: How to answer it: ``InvalidRequest``, or ``RequestPayloadTooLarge`` for an oversized frame.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        request_id: str | None = None,
        status: ResponseStatus = ResponseStatus.InvalidRequest,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.request_id = request_id
        self.status = status


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: its operation byte (kept as an int so unknown operations survive) and raw payload."""

    operation: int
    payload: bytes


def encode_frame(frame: Frame) -> bytes:
    """The bytes of ``frame``: length, operation byte, payload.

    Raises:
        WireFormatError: The payload is longer than the protocol allows, or the operation is not a byte.
    """
    if not 0 <= frame.operation <= 0x7F:
        raise WireFormatError(f"Operation {frame.operation} does not fit the signed operation byte")
    length = len(frame.payload) + 1
    if length > MAX_FRAME_LENGTH:
        raise WireFormatError(
            f"Frame of {length} bytes is longer than the protocol's {MAX_FRAME_LENGTH}",
            status=ResponseStatus.ResponsePayloadTooLarge,
        )
    return length.to_bytes(4, "big") + bytes([frame.operation]) + frame.payload


def frame_payload_size(header: bytes, *, max_payload_size: int) -> int:
    """The payload size a 5-byte frame header announces.

    Raises:
        WireFormatError: The length is not positive, or the payload would exceed ``max_payload_size``
            (status ``RequestPayloadTooLarge``).
    """
    if len(header) != HEADER_SIZE:
        raise WireFormatError(f"Frame header must be {HEADER_SIZE} bytes, got {len(header)}")
    length = int.from_bytes(header[:4], "big", signed=True)
    if length < 1:
        raise WireFormatError(f"Frame length must be at least 1 (the operation byte), got {length}")
    if length - 1 > max_payload_size:
        raise WireFormatError(
            f"Frame payload of {length - 1} bytes exceeds the limit of {max_payload_size} bytes",
            status=ResponseStatus.RequestPayloadTooLarge,
        )
    return length - 1


def decode_frame(data: bytes, *, max_payload_size: int = MAX_FRAME_LENGTH - 1) -> Frame:
    """Exactly one frame from ``data``.

    Raises:
        WireFormatError: The header is invalid or the data is shorter or longer than the frame it announces.
    """
    size = frame_payload_size(data[:HEADER_SIZE], max_payload_size=max_payload_size)
    payload = data[HEADER_SIZE:]
    if len(payload) != size:
        raise WireFormatError(f"Frame announces a payload of {size} bytes but carries {len(payload)}")
    return Frame(operation=data[4], payload=bytes(payload))


def request_id_prefix(prefix: bytes) -> str | None:
    """The ``requestId`` of a payload of which only ``prefix`` is known, if it is the map's first entry.

    The SDK writes ``requestId`` first, so an oversized request can still be answered without reading
    (or buffering) the rest of it.
    """
    position = 0

    def head() -> tuple[int, int] | None:
        nonlocal position
        if position >= len(prefix):
            return None
        major, info = prefix[position] >> 5, prefix[position] & 0x1F
        position += 1
        if info < 24:
            return major, info
        width = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
        if width is None or position + width > len(prefix):
            return None
        value = int.from_bytes(prefix[position : position + width], "big")
        position += width
        return major, value

    def text() -> str | None:
        nonlocal position
        item = head()
        if item is None or item[0] != 3 or position + item[1] > len(prefix):
            return None
        raw = prefix[position : position + item[1]]
        position += item[1]
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return None

    first = head()
    if first is None or first[0] != 5 or first[1] == 0 or text() != "requestId":
        return None
    request_id = text()
    if request_id is None or len(request_id) > MAX_REQUEST_ID_LENGTH:
        return None
    return request_id

"""The eventstream codec: framing and typed headers, plus the RPC vocabulary of Greengrass IPC.

A message on the wire is a 12-byte prelude (total length, headers length, prelude CRC), the encoded
headers, the opaque payload and a CRC-32 of everything before it. Header values keep their wire type
through a decode/encode round trip: ``int`` is int32, and the other integer widths have their own ``int``
subclasses (:class:`Byte`, :class:`Int16`, :class:`Int64`, :class:`Timestamp`).

The format is that of AWS's C library, https://github.com/awslabs/aws-c-event-stream, which the IPC clients
of the AWS IoT Device SDKs use.
"""

from __future__ import annotations

import enum
import struct
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

from edgewise.runtime.ipc.errors import FrameError

PRELUDE_LENGTH = 12
#: Prelude plus message CRC: the size of a message with no headers and no payload.
MESSAGE_OVERHEAD = 16
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
DEFAULT_MAX_HEADERS = 1024
MAX_HEADER_NAME_BYTES = 255
#: The C library's limit for string and byte-buffer header values (its length field is signed).
MAX_HEADER_VALUE_BYTES = 32767

# RPC layer: the header names and values eventstream-RPC reserves.
MESSAGE_TYPE = ":message-type"
MESSAGE_FLAGS = ":message-flags"
STREAM_ID = ":stream-id"
OPERATION = "operation"
VERSION = ":version"
CONTENT_TYPE = ":content-type"
SERVICE_MODEL_TYPE = "service-model-type"
PROTOCOL_VERSION = "0.1.0"
CONTENT_TYPE_JSON = "application/json"
CONTENT_TYPE_TEXT = "text/plain"


class MessageType(enum.IntEnum):
    """Values of the ``:message-type`` header."""

    APPLICATION_MESSAGE = 0
    APPLICATION_ERROR = 1
    PING = 2
    PING_RESPONSE = 3
    CONNECT = 4
    CONNECT_ACK = 5
    PROTOCOL_ERROR = 6
    INTERNAL_ERROR = 7


class MessageFlag(enum.IntFlag):
    """Bits of the ``:message-flags`` header."""

    NONE = 0
    CONNECTION_ACCEPTED = 1  #: only on CONNECT_ACK
    TERMINATE_STREAM = 2


class HeaderType(enum.IntEnum):
    """Wire type ids of header values."""

    BOOL_TRUE = 0
    BOOL_FALSE = 1
    BYTE = 2
    INT16 = 3
    INT32 = 4
    INT64 = 5
    BYTES = 6
    STRING = 7
    TIMESTAMP = 8
    UUID = 9


class Byte(int):
    """A header value sent as a signed 8-bit integer."""

    def __repr__(self) -> str:
        return f"Byte({int(self)})"


class Int16(int):
    """A header value sent as a signed 16-bit integer."""

    def __repr__(self) -> str:
        return f"Int16({int(self)})"


class Int64(int):
    """A header value sent as a signed 64-bit integer."""

    def __repr__(self) -> str:
        return f"Int64({int(self)})"


class Timestamp(int):
    """A header value sent as a timestamp: milliseconds since the Unix epoch (signed 64-bit)."""

    def __repr__(self) -> str:
        return f"Timestamp({int(self)})"


#: A header value; a plain ``int`` (or int enum) is sent as int32.
HeaderValue: TypeAlias = bool | Byte | Int16 | int | Int64 | Timestamp | bytes | str | uuid.UUID


@dataclass(frozen=True, slots=True)
class Message:
    """One eventstream message: headers by name, and the payload bytes."""

    headers: Mapping[str, HeaderValue]
    payload: bytes = b""


_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_PRELUDE = struct.Struct(">II")
_PRELUDE_WITH_CRC = struct.Struct(">III")
_TYPE_AND_LENGTH = struct.Struct(">BH")
# Integer header value classes: their wire type id, a struct packing (type id, value), and the width's name.
_INTEGER_ENCODERS: dict[type[int], tuple[int, struct.Struct, str]] = {
    int: (HeaderType.INT32, struct.Struct(">Bi"), "int32"),
    Byte: (HeaderType.BYTE, struct.Struct(">Bb"), "int8"),
    Int16: (HeaderType.INT16, struct.Struct(">Bh"), "int16"),
    Int64: (HeaderType.INT64, struct.Struct(">Bq"), "int64"),
    Timestamp: (HeaderType.TIMESTAMP, struct.Struct(">Bq"), "int64"),
}
_FIXED_DECODERS: dict[int, tuple[struct.Struct, type[int]]] = {
    HeaderType.BYTE: (struct.Struct(">b"), Byte),
    HeaderType.INT16: (struct.Struct(">h"), Int16),
    HeaderType.INT32: (struct.Struct(">i"), int),
    HeaderType.INT64: (struct.Struct(">q"), Int64),
    HeaderType.TIMESTAMP: (struct.Struct(">q"), Timestamp),
}
_INT32_WITH_TYPE = _INTEGER_ENCODERS[int][1]
# Plain ints: comparing with IntEnum members costs an attribute lookup on every header.
_INT32 = int(HeaderType.INT32)
_STRING = int(HeaderType.STRING)
_BYTES = int(HeaderType.BYTES)
_I32 = struct.Struct(">i")
_STREAM_ID_ENTRY = bytes((len(STREAM_ID),)) + STREAM_ID.encode() + bytes((HeaderType.INT32,))
_TRUE = bytes((HeaderType.BOOL_TRUE,))
_FALSE = bytes((HeaderType.BOOL_FALSE,))
# Encoded names are reused on every message (a handful of reserved names dominate), so keep them.
_encoded_names: dict[str, bytes] = {}
_ENCODED_NAMES_LIMIT = 512
# A decoder keeps the decoded header blocks of the last few kinds of message it saw (a client's calls of one
# operation differ only in their stream id), small ones only, so that what it keeps stays a few KB.
_HEADER_CACHE_ENTRIES = 16
_HEADER_CACHE_MAX_BYTES = 512


def encode_message(message: Message) -> bytes:
    """The wire bytes of ``message``; raises ValueError/TypeError for headers eventstream cannot carry."""
    return encode_frame(encode_headers(message.headers), message.payload)


def encode_headers(headers: Mapping[str, HeaderValue]) -> bytes:
    """The encoded header block; reuse it with :func:`encode_frame` when only payloads change."""
    parts: list[bytes] = []
    for name, value in headers.items():
        parts.append(_encode_name(name))
        parts.append(_encode_value(name, value))
    return b"".join(parts)


def encode_frame(headers_block: bytes, payload: bytes) -> bytes:
    """A whole message from an already encoded header block and a payload."""
    prelude = _PRELUDE.pack(MESSAGE_OVERHEAD + len(headers_block) + len(payload), len(headers_block))
    prelude += _U32.pack(zlib.crc32(prelude))
    crc = zlib.crc32(payload, zlib.crc32(headers_block, zlib.crc32(prelude)))
    return b"".join((prelude, headers_block, payload, _U32.pack(crc)))


def _encode_name(name: str) -> bytes:
    encoded = _encoded_names.get(name)
    if encoded is None:
        raw = name.encode()
        if not 0 < len(raw) <= MAX_HEADER_NAME_BYTES:
            msg = f"Header name {name!r} is {len(raw)} bytes long; it must be 1 to {MAX_HEADER_NAME_BYTES}"
            raise ValueError(msg)
        encoded = bytes((len(raw),)) + raw
        if len(_encoded_names) < _ENCODED_NAMES_LIMIT:
            _encoded_names[name] = encoded
    return encoded


def _encode_value(name: str, value: HeaderValue) -> bytes:
    if type(value) is int:
        try:
            return _INT32_WITH_TYPE.pack(_INT32, value)
        except struct.error:
            pass  # reported below, with the other integer widths
    if isinstance(value, str):
        return _encode_variable(name, HeaderType.STRING, value.encode())
    if isinstance(value, bool):
        return _TRUE if value else _FALSE
    if isinstance(value, int):
        encoder = _INTEGER_ENCODERS.get(type(value))
        if encoder is None:
            # A subclass such as an IntEnum: use the width of the class it derives from.
            kind = next(k for k in (Byte, Int16, Int64, Timestamp, int) if isinstance(value, k))
            encoder = _INTEGER_ENCODERS[kind]
        type_id, packer, width = encoder
        try:
            return packer.pack(type_id, value)
        except struct.error:
            msg = f"Header {name!r} value {int(value)} does not fit in {width}"
            raise ValueError(msg) from None
    if isinstance(value, bytes | bytearray):
        return _encode_variable(name, HeaderType.BYTES, bytes(value))
    if isinstance(value, uuid.UUID):
        return bytes((HeaderType.UUID,)) + value.bytes
    msg = f"Header {name!r} has a value of type {type(value).__name__}, which eventstream cannot carry"
    raise TypeError(msg)


def _encode_variable(name: str, kind: HeaderType, raw: bytes) -> bytes:
    if len(raw) > MAX_HEADER_VALUE_BYTES:
        msg = f"Header {name!r} value is {len(raw)} bytes long; the limit is {MAX_HEADER_VALUE_BYTES}"
        raise ValueError(msg)
    return _TYPE_AND_LENGTH.pack(kind, len(raw)) + raw


class FrameTooLargeError(FrameError):
    """A prelude announces a message longer than the decoder accepts; raised before any of it is buffered."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"Message length {length} exceeds the limit of {limit} bytes")
        self.length = length
        self.limit = limit


class MessageDecoder:
    """Turns a byte stream into messages, whatever the chunking.

    After a :class:`FrameError` the stream cannot be resynchronised: every later call raises too.
    """

    def __init__(
        self, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, max_headers: int = DEFAULT_MAX_HEADERS
    ) -> None:
        self._max_message_size = MESSAGE_OVERHEAD
        self.max_message_size = max_message_size
        self._max_headers = max_headers
        self._buffer = bytearray()
        self._failure: FrameError | None = None
        # Header blocks with their int32 stream id value cut out, and what they decode to.
        self._header_cache: dict[bytes, dict[str, HeaderValue]] = {}
        self._stream_id_entry = (
            -1
        )  # where _decode_headers found the int32 stream id entry, from the block start

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a whole message."""
        return len(self._buffer)

    @property
    def max_message_size(self) -> int:
        """The largest message accepted; checked against each prelude before the message is buffered."""
        return self._max_message_size

    @max_message_size.setter
    def max_message_size(self, value: int) -> None:
        if value < MESSAGE_OVERHEAD:
            msg = f"max_message_size must be at least {MESSAGE_OVERHEAD} bytes, got {value}"
            raise ValueError(msg)
        self._max_message_size = value

    def feed(self, data: bytes, *, max_messages: int | None = None) -> list[Message]:
        """The messages completed by ``data``, in order; raises FrameError on invalid bytes.

        With ``max_messages``, decoding stops after that many messages and the rest stays buffered, unchecked,
        until the next call (``feed(b"")`` continues): the caller may change :attr:`max_message_size` in
        between, as a server does once the first message has authenticated the client.
        """
        if self._failure is not None:
            msg = f"The stream is unusable after an earlier error: {self._failure}"
            raise FrameError(msg)
        try:
            if self._buffer:
                self._buffer += data
                messages, used = self._decode(self._buffer, max_messages)
                del self._buffer[:used]
            else:
                # Fast path: whole messages are decoded straight from the received chunk.
                messages, used = self._decode(data, max_messages)
                if used < len(data):
                    self._buffer += memoryview(data)[used:]
        except FrameError as exc:
            self._failure = exc
            self._buffer = bytearray()
            raise
        return messages

    def _decode(self, data: bytes | bytearray, max_messages: int | None) -> tuple[list[Message], int]:
        messages: list[Message] = []
        end = len(data)
        offset = 0
        with memoryview(data) as view:
            while end - offset >= PRELUDE_LENGTH and len(messages) != max_messages:
                total, headers_length, prelude_crc = _PRELUDE_WITH_CRC.unpack_from(view, offset)
                computed = zlib.crc32(view[offset : offset + 8])
                if computed != prelude_crc:
                    msg = f"Prelude CRC is {prelude_crc:#010x} but the prelude hashes to {computed:#010x}"
                    raise FrameError(msg)
                self._check_lengths(total, headers_length)
                if end - offset < total:
                    break
                body_end = offset + total - 4
                (message_crc,) = _U32.unpack_from(view, body_end)
                computed = zlib.crc32(view[offset + 8 : body_end], prelude_crc)
                if computed != message_crc:
                    msg = f"Message CRC is {message_crc:#010x} but the message hashes to {computed:#010x}"
                    raise FrameError(msg)
                headers_end = offset + PRELUDE_LENGTH + headers_length
                headers = self._headers(view, offset + PRELUDE_LENGTH, headers_end)
                messages.append(Message(headers, bytes(view[headers_end:body_end])))
                offset += total
        return messages, offset

    def _check_lengths(self, total: int, headers_length: int) -> None:
        if total < MESSAGE_OVERHEAD:
            msg = f"Message length {total} is below the {MESSAGE_OVERHEAD}-byte minimum"
            raise FrameError(msg)
        if total > self._max_message_size:
            raise FrameTooLargeError(total, self._max_message_size)
        if headers_length > total - MESSAGE_OVERHEAD:
            msg = f"Headers length {headers_length} does not fit in a message of {total} bytes"
            raise FrameError(msg)

    def _headers(self, view: memoryview, pos: int, end: int) -> dict[str, HeaderValue]:
        """The decoded header block ``view[pos:end]``, from the cache when only the stream id is new.

        The block minus the four bytes of its stream id value is the key. A block is cached only when its
        first occurrence of the encoded ``:stream-id`` name and int32 type is where decoding found that
        header: then any block with the same key has the same bytes up to there, so the same headers before
        it, the header there, and the same bytes after it, and decodes to the same headers but the stream id.
        """
        if end - pos > _HEADER_CACHE_MAX_BYTES:
            return self._decode_headers(view, pos, end)
        block = bytes(view[pos:end])
        entry = block.find(_STREAM_ID_ENTRY)
        value_at = entry + len(_STREAM_ID_ENTRY)
        if entry < 0 or value_at + 4 > len(block):
            return self._decode_headers(view, pos, end)
        key = block[:value_at] + block[value_at + 4 :]
        cached = self._header_cache.get(key)
        if cached is not None:
            headers = cached.copy()
            headers[STREAM_ID] = _I32.unpack_from(block, value_at)[0]
            return headers
        self._stream_id_entry = -1
        headers = self._decode_headers(view, pos, end)
        if self._stream_id_entry == entry:
            if len(self._header_cache) >= _HEADER_CACHE_ENTRIES:
                self._header_cache.clear()
            self._header_cache[key] = headers.copy()
        return headers

    def _decode_headers(self, view: memoryview, pos: int, end: int) -> dict[str, HeaderValue]:
        headers: dict[str, HeaderValue] = {}
        start = pos
        while pos < end:
            entry = pos
            if len(headers) == self._max_headers:
                msg = f"Message has more than {self._max_headers} headers"
                raise FrameError(msg)
            name_length = view[pos]
            pos += 1
            if name_length == 0:
                msg = f"Header {len(headers) + 1} has an empty name"
                raise FrameError(msg)
            if pos + name_length >= end:
                msg = f"Header name of {name_length} bytes runs past the end of the headers"
                raise FrameError(msg)
            try:
                name = str(view[pos : pos + name_length], "utf-8")
            except UnicodeDecodeError as exc:
                msg = f"Header name is not valid UTF-8: {exc.reason} at byte {exc.start}"
                raise FrameError(msg) from None
            pos += name_length
            # Inline fast path for the two types RPC headers use; everything else (and every error) below.
            kind = view[pos]
            if kind == _INT32 and pos + 5 <= end:
                (value,) = _I32.unpack_from(view, pos + 1)
                pos += 5
                if name == STREAM_ID:
                    self._stream_id_entry = entry - start
            elif kind == _STRING and pos + 3 <= end:
                (length,) = _U16.unpack_from(view, pos + 1)
                if length > MAX_HEADER_VALUE_BYTES or pos + 3 + length > end:
                    value, pos = _decode_value(name, view, pos, end)
                else:
                    value = _utf8(view[pos + 3 : pos + 3 + length], name)
                    pos += 3 + length
            else:
                value, pos = _decode_value(name, view, pos, end)
            if name in headers:
                msg = f"Header {name!r} appears more than once"
                raise FrameError(msg)
            headers[name] = value
        return headers


def _decode_value(name: str, view: memoryview, pos: int, end: int) -> tuple[HeaderValue, int]:
    kind = view[pos]
    pos += 1
    if kind in (_STRING, _BYTES):
        if pos + 2 > end:
            msg = f"Header {name!r} value length runs past the end of the headers"
            raise FrameError(msg)
        (length,) = _U16.unpack_from(view, pos)
        pos += 2
        if length > MAX_HEADER_VALUE_BYTES:
            msg = f"Header {name!r} value is {length} bytes long; the limit is {MAX_HEADER_VALUE_BYTES}"
            raise FrameError(msg)
        if pos + length > end:
            msg = f"Header {name!r} value of {length} bytes runs past the end of the headers"
            raise FrameError(msg)
        raw = view[pos : pos + length]
        value: HeaderValue = _utf8(raw, name) if kind == _STRING else bytes(raw)
        return value, pos + length
    if kind == HeaderType.BOOL_TRUE:
        return True, pos
    if kind == HeaderType.BOOL_FALSE:
        return False, pos
    if kind == HeaderType.UUID:
        if pos + 16 > end:
            msg = f"Header {name!r} UUID value runs past the end of the headers"
            raise FrameError(msg)
        return uuid.UUID(bytes=bytes(view[pos : pos + 16])), pos + 16
    fixed = _FIXED_DECODERS.get(kind)
    if fixed is None:
        msg = f"Header {name!r} has unknown value type {kind}"
        raise FrameError(msg)
    unpacker, cls = fixed
    if pos + unpacker.size > end:
        msg = f"Header {name!r} {HeaderType(kind).name.lower()} value runs past the end of the headers"
        raise FrameError(msg)
    (number,) = unpacker.unpack_from(view, pos)
    return (number if cls is int else cls(number)), pos + unpacker.size


def _utf8(raw: memoryview, name: str) -> str:
    """Header ``name``'s string value."""
    try:
        return str(raw, "utf-8")
    except UnicodeDecodeError as exc:
        msg = f"Header {name!r} value is not valid UTF-8: {exc.reason} at byte {exc.start}"
        raise FrameError(msg) from None

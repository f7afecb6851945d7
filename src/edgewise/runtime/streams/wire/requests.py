"""The requests a client sends after the handshake, and the handshake itself, decoded from frame payloads.

Payloads are CBOR maps with the SDK's camelCase keys. Every request carries a ``requestId`` that its response
echoes, so responses may come back in any order; a decoding error carries that id, where the payload had one,
so that the server can still answer the request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from edgewise.runtime.streams.definition import (
    DEFAULT_MAX_SIZE,
    DEFAULT_STREAM_SEGMENT_SIZE,
    MAX_STREAM_SEGMENT_SIZE,
    MAX_TIME_TO_LIVE_MILLIS,
    MIN_MAX_SIZE,
    MIN_STREAM_SEGMENT_SIZE,
    MIN_TIME_TO_LIVE_MILLIS,
    Persistence,
    StrategyOnFull,
    StreamDefinition,
)
from edgewise.runtime.streams.errors import InvalidStreamRequestError
from edgewise.runtime.streams.wire.fields import RequestFields, request_fields
from edgewise.runtime.streams.wire.frames import Frame, Operation, ResponseStatus, WireFormatError

_VERSION_PATTERN: Final = re.compile(r"\d+\.\d+\.\d+")
_MAX_TOKEN_LENGTH: Final = 4096
_MAX_VERSION_ENTRIES: Final = 32
_INT32_MAX: Final = 2**31 - 1
# Export configs nest maps three deep (S3 user metadata, status config); anything deeper is not the SDK's.
_MAX_EXPORT_DEPTH: Final = 6

#: Export definition keys as the SDK writes them (``iotSitewise`` really is ``IotSitewise`` on the wire).
EXPORT_DEFINITION_KEYS: Final = frozenset(
    {"http", "iotAnalytics", "kinesis", "IotSitewise", "s3TaskExecutor"}
)

_STRATEGY_BY_WIRE: Final = {strategy.wire: strategy for strategy in StrategyOnFull}
_PERSISTENCE_BY_WIRE: Final = {persistence.wire: persistence for persistence in Persistence}


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """The handshake a client sends first."""

    request_id: str
    protocol_version: str
    other_supported_protocol_versions: tuple[str, ...] = ()
    sdk_version: str | None = None
    auth_token: str | None = None


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """``ReadMessagesOptions``, with the SDK's defaults for what the client left out."""

    desired_start_sequence_number: int = 0
    min_message_count: int = 1
    max_message_count: int | None = None
    read_timeout_millis: int = 0


@dataclass(frozen=True, slots=True)
class CreateStreamRequest:
    request_id: str
    definition: StreamDefinition


@dataclass(frozen=True, slots=True)
class UpdateStreamRequest:
    request_id: str
    definition: StreamDefinition


@dataclass(frozen=True, slots=True)
class DeleteStreamRequest:
    request_id: str
    name: str


@dataclass(frozen=True, slots=True)
class DescribeStreamRequest:
    request_id: str
    name: str


@dataclass(frozen=True, slots=True)
class ListStreamsRequest:
    request_id: str


@dataclass(frozen=True, slots=True)
class AppendMessageRequest:
    request_id: str
    name: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class ReadMessagesRequest:
    request_id: str
    stream_name: str
    options: ReadOptions = field(default_factory=ReadOptions)


Request = (
    CreateStreamRequest
    | UpdateStreamRequest
    | DeleteStreamRequest
    | DescribeStreamRequest
    | ListStreamsRequest
    | AppendMessageRequest
    | ReadMessagesRequest
)


def decode_connect_request(payload: bytes) -> ConnectRequest:
    """The handshake in a ``Connect`` frame's payload.

    Raises:
        WireFormatError: The payload is not a valid ``ConnectRequest``.
    """
    fields = request_fields(payload)
    assert fields.request_id is not None  # checked by request_fields
    version = fields.text("protocolVersion", required=True, min_length=1, max_length=64)
    assert version is not None  # required
    return ConnectRequest(
        request_id=fields.request_id,
        protocol_version=version,
        other_supported_protocol_versions=fields.texts(
            "otherSupportedProtocolVersions", max_items=_MAX_VERSION_ENTRIES, max_length=64
        ),
        sdk_version=fields.text("sdkVersion", max_length=64),
        auth_token=fields.text("authToken", max_length=_MAX_TOKEN_LENGTH),
    )


def is_protocol_version(version: str) -> bool:
    """Whether ``version`` is a well-formed ``major.minor.patch`` protocol version."""
    return _VERSION_PATTERN.fullmatch(version) is not None


def _definition(fields: RequestFields) -> StreamDefinition:
    definition = fields.nested("definition", required=True)
    assert definition is not None  # required
    name = definition.name("name")
    max_size = definition.integer("maxSize", minimum=MIN_MAX_SIZE)
    segment_size = definition.integer(
        "streamSegmentSize", minimum=MIN_STREAM_SEGMENT_SIZE, maximum=MAX_STREAM_SEGMENT_SIZE
    )
    time_to_live = definition.integer(
        "timeToLiveMillis", minimum=MIN_TIME_TO_LIVE_MILLIS, maximum=MAX_TIME_TO_LIVE_MILLIS
    )
    strategy = definition.enum_value("strategyOnFull", _STRATEGY_BY_WIRE, required=True)
    persistence = definition.enum_value("persistence", _PERSISTENCE_BY_WIRE, required=False)
    flush_on_write = definition.boolean("flushOnWrite")
    export_definition = definition.mapping("exportDefinition")
    if export_definition is not None:
        _check_export_definition(definition, export_definition)
    try:
        return StreamDefinition(
            name=name,
            max_size=DEFAULT_MAX_SIZE if max_size is None else max_size,
            stream_segment_size=DEFAULT_STREAM_SEGMENT_SIZE if segment_size is None else segment_size,
            time_to_live_millis=time_to_live,
            strategy_on_full=strategy,
            persistence=Persistence.File if persistence is None else persistence,
            flush_on_write=bool(flush_on_write),
            export_definition=export_definition,
        )
    except InvalidStreamRequestError as exc:
        # The checks above use the wire's field names; this catches any rule the definition adds later.
        raise WireFormatError(
            str(exc), field=f"definition.{exc.field}", request_id=fields.request_id
        ) from exc


def _check_export_definition(definition: RequestFields, export_definition: Mapping[Any, Any]) -> None:
    """The export definition's outline: known kinds, each a list of maps; exporters check the rest."""
    exports = definition.nested("exportDefinition", required=True)
    assert exports is not None  # present
    for kind, configs in export_definition.items():
        if kind not in EXPORT_DEFINITION_KEYS:
            raise exports.error(
                str(kind), f"is not an export kind; expected one of {sorted(EXPORT_DEFINITION_KEYS)}"
            )
        if configs is None:
            continue
        if not isinstance(configs, list) or not all(isinstance(config, Mapping) for config in configs):
            raise exports.error(str(kind), "must be an array of maps")
        if not _is_plain(configs, depth=_MAX_EXPORT_DEPTH):
            raise exports.error(
                str(kind),
                f"must hold only text-keyed maps, arrays and scalars, nested at most {_MAX_EXPORT_DEPTH} deep",
            )


def _is_plain(value: object, *, depth: int) -> bool:
    """Whether ``value`` is plain data; the depth bound also stops at the cycles CBOR's shared values can build."""
    if value is None or isinstance(value, str | int | float | bytes):
        return True
    if depth == 0:
        return False
    if isinstance(value, list):
        return all(_is_plain(item, depth=depth - 1) for item in value)
    if isinstance(value, Mapping):
        return all(isinstance(key, str) and _is_plain(item, depth=depth - 1) for key, item in value.items())
    return False


def _read_options(fields: RequestFields) -> ReadOptions:
    options = fields.nested("readMessagesOptions", required=False)
    if options is None:
        # ``read_messages`` without options reads one message, as the SDK documents.
        return ReadOptions(max_message_count=1)
    start = options.integer("desiredStartSequenceNumber", minimum=0)
    minimum = options.integer("minMessageCount", minimum=1, maximum=_INT32_MAX)
    maximum = options.integer("maxMessageCount", minimum=1, maximum=_INT32_MAX)
    timeout = options.integer("readTimeoutMillis", minimum=0)
    if minimum is not None and maximum is not None and minimum > maximum:
        raise options.error("minMessageCount", f"must not exceed maxMessageCount ({maximum}), got {minimum}")
    return ReadOptions(
        desired_start_sequence_number=start or 0,
        min_message_count=1 if minimum is None else minimum,
        max_message_count=maximum,
        read_timeout_millis=timeout or 0,
    )


def decode_request(frame: Frame) -> Request:
    """The request a frame carries.

    Raises:
        WireFormatError: The payload is not a valid request of the frame's operation; an operation this
            server does not serve raises with status ``UnknownOperation``.
    """
    fields = request_fields(frame.payload)
    request_id = fields.request_id
    assert request_id is not None  # checked by request_fields
    match frame.operation:
        case Operation.CREATE_MESSAGE_STREAM:
            return CreateStreamRequest(request_id, _definition(fields))
        case Operation.UPDATE_MESSAGE_STREAM:
            return UpdateStreamRequest(request_id, _definition(fields))
        case Operation.DELETE_MESSAGE_STREAM:
            return DeleteStreamRequest(request_id, fields.name("name"))
        case Operation.DESCRIBE_MESSAGE_STREAM:
            return DescribeStreamRequest(request_id, fields.name("name"))
        case Operation.LIST_STREAMS:
            return ListStreamsRequest(request_id)
        case Operation.APPEND_MESSAGE:
            return AppendMessageRequest(request_id, fields.name("name"), fields.binary("payload"))
        case Operation.READ_MESSAGES:
            return ReadMessagesRequest(request_id, fields.name("streamName"), _read_options(fields))
    raise WireFormatError(
        f"Operation {frame.operation} is not a request this server serves",
        request_id=request_id,
        status=ResponseStatus.UnknownOperation,
    )

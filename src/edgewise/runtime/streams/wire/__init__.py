"""The stream manager wire format, as the ``stream-manager`` SDK (``StreamManagerClient``) speaks it.

A connection opens with one *connect version* byte from the client (answered with the server's), then frames
flow both ways: a length, an operation byte and a CBOR payload, a map with the SDK's camelCase keys. Every
request carries a ``requestId`` that its response echoes, so responses may come back in any order.

``frames`` encodes and decodes frames and checks their sizes; ``requests`` turns payloads into typed requests
(``fields`` validates their maps); ``responses`` turns typed responses into frames. Nothing here does I/O.
Every decoding problem raises :class:`WireFormatError`, which names the offending field and, where the payload
had one, the request id so that the server can still answer the request.
"""

from edgewise.runtime.streams.wire.frames import (
    CONNECT_VERSION,
    HEADER_SIZE,
    MAX_FRAME_LENGTH,
    PROTOCOL_VERSION,
    SERVER_VERSION,
    SUPPORTED_PROTOCOL_VERSIONS,
    Frame,
    Operation,
    ResponseStatus,
    WireFormatError,
    decode_frame,
    encode_frame,
    frame_payload_size,
    request_id_prefix,
)
from edgewise.runtime.streams.wire.requests import (
    EXPORT_DEFINITION_KEYS,
    AppendMessageRequest,
    ConnectRequest,
    CreateStreamRequest,
    DeleteStreamRequest,
    DescribeStreamRequest,
    ListStreamsRequest,
    ReadMessagesRequest,
    ReadOptions,
    Request,
    UpdateStreamRequest,
    decode_connect_request,
    decode_request,
    is_protocol_version,
)
from edgewise.runtime.streams.wire.responses import (
    ConnectResponse,
    Response,
    definition_body,
    encode_connect_response,
    encode_response,
    message_body,
    stream_info_body,
)

__all__ = [
    "CONNECT_VERSION",
    "EXPORT_DEFINITION_KEYS",
    "HEADER_SIZE",
    "MAX_FRAME_LENGTH",
    "PROTOCOL_VERSION",
    "SERVER_VERSION",
    "SUPPORTED_PROTOCOL_VERSIONS",
    "AppendMessageRequest",
    "ConnectRequest",
    "ConnectResponse",
    "CreateStreamRequest",
    "DeleteStreamRequest",
    "DescribeStreamRequest",
    "Frame",
    "ListStreamsRequest",
    "Operation",
    "ReadMessagesRequest",
    "ReadOptions",
    "Request",
    "Response",
    "ResponseStatus",
    "UpdateStreamRequest",
    "WireFormatError",
    "decode_connect_request",
    "decode_frame",
    "decode_request",
    "definition_body",
    "encode_connect_response",
    "encode_frame",
    "encode_response",
    "frame_payload_size",
    "is_protocol_version",
    "message_body",
    "request_id_prefix",
    "stream_info_body",
]

"""Responses to the client, encoded as frames: their models and the SDK's maps for messages and streams."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cbor2

from edgewise.runtime.streams.definition import ExportStatus, StoredMessage, StreamDefinition, StreamInfo
from edgewise.runtime.streams.wire.frames import Frame, Operation, ResponseStatus, encode_frame


@dataclass(frozen=True, slots=True)
class Response:
    """A response to one request.

    ``body`` holds the operation's own fields already in wire form (see :func:`message_body`,
    :func:`stream_info_body`); ``status`` and ``error_message`` are common to every response.
    """

    operation: Operation
    request_id: str | None
    status: ResponseStatus = ResponseStatus.Success
    error_message: str | None = None
    body: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConnectResponse:
    """The server's answer to the handshake."""

    request_id: str | None
    status: ResponseStatus
    error_message: str | None = None
    protocol_version: str | None = None
    supported_protocol_versions: tuple[str, ...] = ()
    server_version: str | None = None
    client_identifier: str | None = None


def _without_none(document: Mapping[str, Any]) -> dict[str, Any]:
    # The SDK leaves unset fields out rather than writing null, and so do we.
    return {key: value for key, value in document.items() if value is not None}


def encode_connect_response(response: ConnectResponse) -> bytes:
    """The ``ConnectResponse`` frame for ``response``."""
    document = _without_none(
        {
            "requestId": response.request_id,
            "status": int(response.status),
            "errorMessage": response.error_message,
            "protocolVersion": response.protocol_version,
            "supportedProtocolVersions": list(response.supported_protocol_versions) or None,
            "serverVersion": response.server_version,
            "clientIdentifier": response.client_identifier,
        }
    )
    return encode_frame(Frame(Operation.CONNECT_RESPONSE, cbor2.dumps(document)))


def encode_response(response: Response) -> bytes:
    """The frame for ``response``.

    Raises:
        WireFormatError: The encoded response is longer than the protocol allows (``ResponsePayloadTooLarge``).
    """
    document = _without_none(
        {
            "requestId": response.request_id,
            "status": int(response.status),
            "errorMessage": response.error_message,
            **response.body,
        }
    )
    return encode_frame(Frame(response.operation, cbor2.dumps(document)))


def message_body(message: StoredMessage) -> dict[str, Any]:
    """A stored message as the SDK's ``Message`` map."""
    return {
        "streamName": message.stream_name,
        "sequenceNumber": message.sequence_number,
        "ingestTime": message.ingest_time,
        "payload": message.payload,
    }


def definition_body(definition: StreamDefinition) -> dict[str, Any]:
    """A stream definition as the SDK's ``MessageStreamDefinition`` map."""
    return _without_none(
        {
            "name": definition.name,
            "maxSize": definition.max_size,
            "streamSegmentSize": definition.stream_segment_size,
            "timeToLiveMillis": definition.time_to_live_millis,
            "strategyOnFull": definition.strategy_on_full.wire,
            "persistence": definition.persistence.wire,
            "flushOnWrite": definition.flush_on_write,
            "exportDefinition": None
            if definition.export_definition is None
            else dict(definition.export_definition),
        }
    )


def stream_info_body(info: StreamInfo) -> dict[str, Any]:
    """A stream's description as the SDK's ``MessageStreamInfo`` map."""
    status = info.storage_status
    return {
        "definition": definition_body(info.definition),
        "storageStatus": {
            "oldestSequenceNumber": status.oldest_sequence_number,
            "newestSequenceNumber": status.newest_sequence_number,
            "totalBytes": status.total_bytes,
        },
        "exportStatuses": [_export_status_body(export) for export in info.export_statuses],
    }


def _export_status_body(status: ExportStatus) -> dict[str, Any]:
    return _without_none(
        {
            "exportConfigIdentifier": status.export_config_identifier,
            "lastExportedSequenceNumber": status.last_exported_sequence_number,
            "lastExportTime": status.last_export_time,
            "errorMessage": status.error_message,
            "exportedBytesFromStream": status.exported_bytes_from_stream,
            "exportedMessagesCount": status.exported_messages_count,
        }
    )

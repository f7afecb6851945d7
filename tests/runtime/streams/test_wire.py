"""The frame codec against the ``stream-manager`` SDK's own data classes and framing, plus fuzzing."""

from __future__ import annotations

import contextlib
import types
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from stream_manager import data as sdk
from stream_manager.utilinternal import UtilInternal

from edgewise.runtime.streams import wire
from edgewise.runtime.streams.definition import (
    ExportStatus,
    Persistence,
    StorageStatus,
    StoredMessage,
    StrategyOnFull,
    StreamDefinition,
    StreamInfo,
)
from edgewise.runtime.streams.wire import (
    AppendMessageRequest,
    ConnectResponse,
    CreateStreamRequest,
    DeleteStreamRequest,
    DescribeStreamRequest,
    Frame,
    ListStreamsRequest,
    Operation,
    ReadMessagesRequest,
    ReadOptions,
    Response,
    ResponseStatus,
    UpdateStreamRequest,
    WireFormatError,
    decode_connect_request,
    decode_frame,
    decode_request,
    encode_connect_response,
    encode_frame,
    encode_response,
    message_body,
    request_id_prefix,
    stream_info_body,
)


def sdk_frame(operation: sdk.Operation, request: Any) -> bytes:
    """The bytes the SDK writes for ``request`` (``StreamManagerClient.__send_and_receive``)."""
    frame = sdk.MessageFrame(operation=operation, payload=cbor2.dumps(request.as_dict()))
    return b"".join(UtilInternal.encode_frame(frame))


def decode_sdk(operation: sdk.Operation, request: Any) -> Any:
    return decode_request(decode_frame(sdk_frame(operation, request)))


def sdk_payload(data: bytes) -> tuple[sdk.Operation, dict[str, Any]]:
    """How the SDK's read loop sees a frame: operation and CBOR payload."""
    length = UtilInternal.int_from_bytes(data[:4])
    assert length == len(data) - 4
    return sdk.Operation.from_dict(UtilInternal.int_from_bytes(data[4:5])), cbor2.loads(data[5:])


def test_decode_connect_request_as_sdk_writes_it() -> None:
    request = sdk.ConnectRequest(
        request_id="r-1",
        protocol_version=sdk.VersionInfo.PROTOCOL_VERSION.value,
        other_supported_protocol_versions=["1.0.0"],
        sdk_version="1.1.2",
        auth_token="TOKEN",
    )
    frame = decode_frame(sdk_frame(sdk.Operation.Connect, request))

    connect = decode_connect_request(frame.payload)

    assert frame.operation == Operation.CONNECT
    assert connect.request_id == "r-1"
    assert connect.protocol_version == "1.1.0"
    assert connect.other_supported_protocol_versions == ("1.0.0",)
    assert connect.sdk_version == "1.1.2"
    assert connect.auth_token == "TOKEN"


def test_encode_connect_response_reads_back_with_sdk() -> None:
    data = encode_connect_response(
        ConnectResponse(
            request_id="r-1",
            status=ResponseStatus.Success,
            protocol_version="1.1.0",
            supported_protocol_versions=("1.1.0", "1.0.0"),
            server_version="1.1.0",
            client_identifier="com.example.Writer",
        )
    )
    operation, payload = sdk_payload(data)
    response = sdk.ConnectResponse.from_dict(payload)

    assert operation is sdk.Operation.ConnectResponse
    assert response.status is sdk.ResponseStatusCode.Success
    assert response.protocol_version == "1.1.0"
    assert response.supported_protocol_versions == ["1.1.0", "1.0.0"]
    assert response.client_identifier == "com.example.Writer"


def test_decode_create_request_with_every_definition_field() -> None:
    export = sdk.ExportDefinition(
        kinesis=[sdk.KinesisConfig(identifier="k1", kinesis_stream_name="telemetry", batch_size=10)],
        iot_sitewise=[sdk.IoTSiteWiseConfig(identifier="sw")],
    )
    definition = sdk.MessageStreamDefinition(
        name="sensor data, v1",
        max_size=4096,
        stream_segment_size=2048,
        time_to_live_millis=60_000,
        strategy_on_full=sdk.StrategyOnFull.RejectNewData,
        persistence=sdk.Persistence.Memory,
        flush_on_write=True,
        export_definition=export,
    )

    request = decode_sdk(
        sdk.Operation.CreateMessageStream,
        sdk.CreateMessageStreamRequest(request_id="c", definition=definition),
    )

    assert request == CreateStreamRequest(
        "c",
        StreamDefinition(
            name="sensor data, v1",
            max_size=4096,
            stream_segment_size=2048,
            time_to_live_millis=60_000,
            strategy_on_full=StrategyOnFull.RejectNewData,
            persistence=Persistence.Memory,
            flush_on_write=True,
            export_definition=export.as_dict(),
        ),
    )
    assert request.definition.export_definition == export.as_dict()


def test_decode_update_request_applies_sdk_defaults() -> None:
    definition = sdk.MessageStreamDefinition(
        name="s", strategy_on_full=sdk.StrategyOnFull.OverwriteOldestData
    )

    request = decode_sdk(
        sdk.Operation.UpdateMessageStream,
        sdk.UpdateMessageStreamRequest(request_id="u", definition=definition),
    )

    assert request == UpdateStreamRequest("u", StreamDefinition(name="s"))


def test_decode_simple_requests_as_sdk_writes_them() -> None:
    assert decode_sdk(
        sdk.Operation.DeleteMessageStream, sdk.DeleteMessageStreamRequest(request_id="d", name="s")
    ) == DeleteStreamRequest("d", "s")
    assert decode_sdk(
        sdk.Operation.DescribeMessageStream, sdk.DescribeMessageStreamRequest(request_id="i", name="s")
    ) == DescribeStreamRequest("i", "s")
    assert decode_sdk(
        sdk.Operation.ListStreams, sdk.ListStreamsRequest(request_id="l")
    ) == ListStreamsRequest("l")
    assert decode_sdk(
        sdk.Operation.AppendMessage, sdk.AppendMessageRequest(request_id="a", name="s", payload=b"\x00\xff")
    ) == AppendMessageRequest("a", "s", b"\x00\xff")


def test_decode_read_request_with_and_without_options() -> None:
    options = sdk.ReadMessagesOptions(
        desired_start_sequence_number=5, min_message_count=2, max_message_count=9, read_timeout_millis=1500
    )
    with_options = decode_sdk(
        sdk.Operation.ReadMessages,
        sdk.ReadMessagesRequest(request_id="r", stream_name="s", read_messages_options=options),
    )
    without = decode_sdk(sdk.Operation.ReadMessages, sdk.ReadMessagesRequest(request_id="r", stream_name="s"))

    assert with_options == ReadMessagesRequest("r", "s", ReadOptions(5, 2, 9, 1500))
    assert without == ReadMessagesRequest("r", "s", ReadOptions(max_message_count=1))


def test_encode_responses_read_back_with_sdk_classes() -> None:
    message = StoredMessage(stream_name="s", sequence_number=3, ingest_time=1_700_000_000_000, payload=b"abc")
    read = sdk.ReadMessagesResponse.from_dict(
        sdk_payload(
            encode_response(
                Response(Operation.READ_MESSAGES_RESPONSE, "r", body={"messages": [message_body(message)]})
            )
        )[1]
    )
    append = sdk.AppendMessageResponse.from_dict(
        sdk_payload(
            encode_response(Response(Operation.APPEND_MESSAGE_RESPONSE, "a", body={"sequenceNumber": 7}))
        )[1]
    )
    listing = sdk.ListStreamsResponse.from_dict(
        sdk_payload(
            encode_response(Response(Operation.LIST_STREAMS_RESPONSE, "l", body={"streams": ["a", "b"]}))
        )[1]
    )
    failed = sdk.CreateMessageStreamResponse.from_dict(
        sdk_payload(
            encode_response(
                Response(
                    Operation.CREATE_MESSAGE_STREAM_RESPONSE, "c", ResponseStatus.ResourceNotFound, "gone"
                )
            )
        )[1]
    )

    assert read.request_id == "r"
    assert read.status is sdk.ResponseStatusCode.Success
    assert [(m.stream_name, m.sequence_number, m.ingest_time, m.payload) for m in read.messages] == [
        ("s", 3, 1_700_000_000_000, b"abc")
    ]
    assert append.sequence_number == 7
    assert listing.streams == ["a", "b"]
    assert failed.status is sdk.ResponseStatusCode.ResourceNotFound
    assert failed.error_message == "gone"


def test_encode_stream_info_reads_back_as_sdk_message_stream_info() -> None:
    export = sdk.ExportDefinition(http=[sdk.HTTPConfig(identifier="h", uri="https://example.com/in")])
    info = StreamInfo(
        definition=StreamDefinition(
            name="s",
            time_to_live_millis=120_000,
            strategy_on_full=StrategyOnFull.RejectNewData,
            persistence=Persistence.Memory,
            export_definition=export.as_dict(),
        ),
        storage_status=StorageStatus(oldest_sequence_number=2, newest_sequence_number=9, total_bytes=512),
        export_statuses=(ExportStatus(export_config_identifier="h", last_exported_sequence_number=4),),
    )
    data = encode_response(
        Response(
            Operation.DESCRIBE_MESSAGE_STREAM_RESPONSE,
            "i",
            body={"messageStreamInfo": stream_info_body(info)},
        )
    )

    described = sdk.DescribeMessageStreamResponse.from_dict(sdk_payload(data)[1]).message_stream_info

    assert described.definition.name == "s"
    assert described.definition.strategy_on_full is sdk.StrategyOnFull.RejectNewData
    assert described.definition.persistence is sdk.Persistence.Memory
    assert described.definition.time_to_live_millis == 120_000
    assert described.definition.export_definition.http[0].uri == "https://example.com/in"
    assert described.storage_status.oldest_sequence_number == 2
    assert described.storage_status.newest_sequence_number == 9
    assert described.storage_status.total_bytes == 512
    assert described.export_statuses[0].export_config_identifier == "h"
    assert described.export_statuses[0].last_exported_sequence_number == 4


def test_unknown_operation_error_reads_back_with_sdk() -> None:
    data = encode_response(
        Response(Operation.UNKNOWN_OPERATION_ERROR, "x", ResponseStatus.UnknownOperation, "no such operation")
    )
    operation, payload = sdk_payload(data)

    assert operation is sdk.Operation.UnknownOperationError
    assert sdk.UnknownOperationError.from_dict(payload).status is sdk.ResponseStatusCode.UnknownOperation


def request_frame(operation: Operation, document: dict[str, Any]) -> Frame:
    return Frame(operation, cbor2.dumps(document))


def definition_with(**fields: Any) -> dict[str, Any]:
    return {"requestId": "c", "definition": {"name": "s", "strategyOnFull": 1, **fields}}


@pytest.mark.parametrize(
    ("operation", "document", "field"),
    [
        (Operation.CREATE_MESSAGE_STREAM, {"requestId": "c"}, "definition"),
        (Operation.CREATE_MESSAGE_STREAM, {"requestId": "c", "definition": []}, "definition"),
        (Operation.CREATE_MESSAGE_STREAM, definition_with(maxSize="big"), "definition.maxSize"),
        (Operation.CREATE_MESSAGE_STREAM, definition_with(maxSize=10), "definition.maxSize"),
        (
            Operation.CREATE_MESSAGE_STREAM,
            definition_with(streamSegmentSize=2**31),
            "definition.streamSegmentSize",
        ),
        (Operation.CREATE_MESSAGE_STREAM, definition_with(timeToLiveMillis=5), "definition.timeToLiveMillis"),
        (Operation.CREATE_MESSAGE_STREAM, definition_with(strategyOnFull=None), "definition.strategyOnFull"),
        (Operation.CREATE_MESSAGE_STREAM, definition_with(strategyOnFull=True), "definition.strategyOnFull"),
        (Operation.CREATE_MESSAGE_STREAM, definition_with(persistence=7), "definition.persistence"),
        (Operation.CREATE_MESSAGE_STREAM, definition_with(flushOnWrite=1), "definition.flushOnWrite"),
        (Operation.CREATE_MESSAGE_STREAM, definition_with(name="a/b"), "definition.name"),
        (Operation.CREATE_MESSAGE_STREAM, definition_with(name="x" * 256), "definition.name"),
        (Operation.CREATE_MESSAGE_STREAM, definition_with(exportDefinition=3), "definition.exportDefinition"),
        (
            Operation.CREATE_MESSAGE_STREAM,
            definition_with(exportDefinition={"ftp": []}),
            "definition.exportDefinition.ftp",
        ),
        (
            Operation.CREATE_MESSAGE_STREAM,
            definition_with(exportDefinition={"kinesis": [1]}),
            "definition.exportDefinition.kinesis",
        ),
        (
            Operation.CREATE_MESSAGE_STREAM,
            definition_with(exportDefinition={"http": [{"uri": [[[[[[["deep"]]]]]]]}]}),
            "definition.exportDefinition.http",
        ),
        (
            Operation.CREATE_MESSAGE_STREAM,
            definition_with(exportDefinition={"http": [{"uri": {1, 2}}]}),
            "definition.exportDefinition.http",
        ),
        (Operation.APPEND_MESSAGE, {"requestId": "a", "name": "s", "payload": "text"}, "payload"),
        (Operation.APPEND_MESSAGE, {"requestId": "a", "payload": b""}, "name"),
        (Operation.DELETE_MESSAGE_STREAM, {"requestId": "d", "name": 5}, "name"),
        (Operation.READ_MESSAGES, {"requestId": "r", "streamName": ""}, "streamName"),
        (
            Operation.READ_MESSAGES,
            {"requestId": "r", "streamName": "s", "readMessagesOptions": {"minMessageCount": 0}},
            "readMessagesOptions.minMessageCount",
        ),
        (
            Operation.READ_MESSAGES,
            {
                "requestId": "r",
                "streamName": "s",
                "readMessagesOptions": {"minMessageCount": 5, "maxMessageCount": 2},
            },
            "readMessagesOptions.minMessageCount",
        ),
        (
            Operation.READ_MESSAGES,
            {"requestId": "r", "streamName": "s", "readMessagesOptions": {"readTimeoutMillis": -1}},
            "readMessagesOptions.readTimeoutMillis",
        ),
    ],
)
def test_decode_request_when_field_invalid_names_field_and_keeps_request_id(
    operation: Operation, document: dict[str, Any], field: str
) -> None:
    with pytest.raises(WireFormatError) as caught:
        decode_request(request_frame(operation, document))

    assert caught.value.field == field
    assert repr(field) in str(caught.value)
    assert caught.value.request_id == document["requestId"]
    assert caught.value.status is ResponseStatus.InvalidRequest


def test_decode_request_when_request_id_missing_has_no_request_id() -> None:
    with pytest.raises(WireFormatError) as caught:
        decode_request(request_frame(Operation.LIST_STREAMS, {"requestId": 5}))

    assert caught.value.field == "requestId"
    assert caught.value.request_id is None


@pytest.mark.parametrize("operation", [0, Operation.CONNECT, Operation.APPEND_MESSAGE_RESPONSE, 99])
def test_decode_request_when_operation_not_served_is_unknown_operation(operation: int) -> None:
    with pytest.raises(WireFormatError) as caught:
        decode_request(Frame(operation, cbor2.dumps({"requestId": "q"})))

    assert caught.value.status is ResponseStatus.UnknownOperation
    assert caught.value.request_id == "q"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\x00\x00", "header"),
        (b"\x00\x00\x00\x00\x02", "at least 1"),
        (b"\xff\xff\xff\xff\x02", "at least 1"),
        (b"\x00\x00\x00\x05\x02ab", "carries 2"),
        (b"\x00\x00\x00\x02\x02ab", "carries 2"),
    ],
)
def test_decode_frame_when_malformed_says_why(data: bytes, problem: str) -> None:
    with pytest.raises(WireFormatError, match=problem):
        decode_frame(data)


def test_decode_frame_when_over_limit_is_payload_too_large() -> None:
    with pytest.raises(WireFormatError) as caught:
        decode_frame(encode_frame(Frame(Operation.APPEND_MESSAGE, b"x" * 11)), max_payload_size=10)

    assert caught.value.status is ResponseStatus.RequestPayloadTooLarge


def test_request_id_prefix_finds_sdk_request_id_in_first_bytes() -> None:
    request = sdk.AppendMessageRequest(
        request_id="0b7c1f36-6a25-4b8e-9d0e-5f3d2a1c9e77", name="s", payload=b"x" * 5000
    )
    payload = cbor2.dumps(request.as_dict())

    assert request_id_prefix(payload[:100]) == "0b7c1f36-6a25-4b8e-9d0e-5f3d2a1c9e77"
    assert request_id_prefix(payload[:20]) is None
    assert request_id_prefix(cbor2.dumps({"name": "s", "requestId": "r"})) is None
    assert request_id_prefix(b"") is None


# A strategy for arbitrary CBOR-decoded documents, with the keys the decoder looks for over-represented.
_KEYS = st.sampled_from(
    [
        "requestId",
        "name",
        "streamName",
        "payload",
        "definition",
        "maxSize",
        "streamSegmentSize",
        "timeToLiveMillis",
        "strategyOnFull",
        "persistence",
        "flushOnWrite",
        "exportDefinition",
        "kinesis",
        "readMessagesOptions",
        "minMessageCount",
        "maxMessageCount",
        "readTimeoutMillis",
        "desiredStartSequenceNumber",
        "protocolVersion",
        "otherSupportedProtocolVersions",
        "authToken",
    ]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.binary(max_size=20)
)
_DOCUMENTS = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_KEYS | st.text(max_size=5), children, max_size=6)
    ),
    max_leaves=30,
)


@given(st.binary(max_size=200))
def test_decode_frame_on_random_bytes_raises_only_wire_format_error(data: bytes) -> None:
    try:
        frame = decode_frame(data)
    except WireFormatError:
        return
    assert encode_frame(frame) == data


@given(st.integers(min_value=0, max_value=20), st.binary(max_size=200))
def test_decode_request_on_random_payload_raises_only_wire_format_error(
    operation: int, payload: bytes
) -> None:
    with contextlib.suppress(WireFormatError):
        decode_request(Frame(operation, payload))
    with contextlib.suppress(WireFormatError):
        decode_connect_request(payload)


@given(st.sampled_from(list(Operation)), _DOCUMENTS)
def test_decode_request_on_random_documents_raises_only_wire_format_error(
    operation: Operation, document: Any
) -> None:
    payload = cbor2.dumps(document)
    for decode in (
        lambda: decode_request(Frame(operation, payload)),
        lambda: decode_connect_request(payload),
    ):
        error = None
        try:
            decode()
        except WireFormatError as exc:
            error = exc
        assert error is None or str(error)


@given(st.integers(min_value=0, max_value=0x7F), st.binary(max_size=300))
def test_encode_frame_then_decode_round_trips(operation: int, payload: bytes) -> None:
    assert decode_frame(encode_frame(Frame(operation, payload))) == Frame(operation, payload)


_NAMES = st.from_regex(r"[A-Za-z0-9_ ,.\-]{1,255}", fullmatch=True)


@given(
    name=_NAMES,
    max_size=st.integers(min_value=1024, max_value=2**63 - 1),
    segment=st.integers(min_value=1024, max_value=2**31 - 1),
    ttl=st.none() | st.integers(min_value=60_000, max_value=9_223_372_036_854),
    strategy=st.sampled_from(list(sdk.StrategyOnFull)),
    persistence=st.sampled_from(list(sdk.Persistence)),
    flush=st.booleans(),
)
def test_sdk_definitions_round_trip_through_decode_and_encode(
    name: str, max_size: int, segment: int, ttl: int | None, strategy: Any, persistence: Any, flush: bool
) -> None:
    original = sdk.MessageStreamDefinition(
        name=name,
        max_size=max_size,
        stream_segment_size=segment,
        time_to_live_millis=ttl,
        strategy_on_full=strategy,
        persistence=persistence,
        flush_on_write=flush,
    )
    request = decode_sdk(
        sdk.Operation.CreateMessageStream, sdk.CreateMessageStreamRequest(request_id="c", definition=original)
    )
    info = StreamInfo(definition=request.definition, storage_status=StorageStatus(0, -1, 0))
    data = encode_response(
        Response(
            Operation.DESCRIBE_MESSAGE_STREAM_RESPONSE,
            "i",
            body={"messageStreamInfo": stream_info_body(info)},
        )
    )

    described = sdk.DescribeMessageStreamResponse.from_dict(
        sdk_payload(data)[1]
    ).message_stream_info.definition

    assert described.as_dict() == original.as_dict()


@given(
    request_id=st.text(min_size=1, max_size=40),
    status=st.sampled_from(list(ResponseStatus)),
    error=st.none() | st.text(max_size=40),
    sequence=st.integers(min_value=0, max_value=2**63 - 1),
)
def test_append_responses_round_trip_through_sdk(
    request_id: str, status: ResponseStatus, error: str | None, sequence: int
) -> None:
    data = encode_response(
        Response(Operation.APPEND_MESSAGE_RESPONSE, request_id, status, error, {"sequenceNumber": sequence})
    )
    operation, payload = sdk_payload(data)
    response = sdk.AppendMessageResponse.from_dict(payload)

    assert operation is sdk.Operation.AppendMessageResponse
    assert (response.request_id, response.status.value, response.error_message, response.sequence_number) == (
        request_id,
        status.value,
        error,
        sequence,
    )


def test_wire_package_exports_exactly_what_all_lists() -> None:
    public = {
        name
        for name, value in vars(wire).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }

    assert set(wire.__all__) == public

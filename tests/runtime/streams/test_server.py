"""The stream server driven by the real ``stream-manager`` SDK client, and by raw bytes for what the SDK never sends.

The SDK client is synchronous and runs its own event loop in a thread, so every call to it goes through
``asyncio.to_thread`` while the server runs on the test's loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cbor2
import pytest
from stream_manager import (
    MessageStreamDefinition,
    NotEnoughMessagesException,
    ReadMessagesOptions,
    RequestPayloadTooLargeException,
    ResourceNotFoundException,
    ResponsePayloadTooLargeException,
    StreamManagerClient,
    UnknownFailureException,
    UpdateNotAllowedException,
)
from stream_manager import data as sdk
from stream_manager.exceptions import ConnectFailedException

from edgewise.runtime.streams import store as store_module
from edgewise.runtime.streams.definition import (
    Persistence,
    StorageStatus,
    StoredMessage,
    StrategyOnFull,
    StreamDefinition,
    StreamInfo,
)
from edgewise.runtime.streams.errors import (
    NotEnoughMessagesError,
    StreamNotFoundError,
    StreamUpdateNotAllowedError,
)
from edgewise.runtime.streams.records import HEADER_BYTES
from edgewise.runtime.streams.server import StreamServer
from edgewise.runtime.streams.store import StreamStore
from edgewise.runtime.streams.wire import CONNECT_VERSION, Operation, ResponseStatus

TOKEN = "ABCDEFGHIJKLMNOP"
COMPONENT = "com.example.Writer"
# Generous: only reached when something is broken, never part of what a test measures.
DEADLINE_S = 30.0


class FakeStreamStore:
    """An in-memory stream store with the real one's read semantics, enough to exercise the server."""

    def __init__(self) -> None:
        self.definitions: dict[str, StreamDefinition] = {}
        self.messages: dict[str, list[StoredMessage]] = {}
        self.appended = asyncio.Condition()
        self.waiting_reads = 0
        self.fail_with: Exception | None = None

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    async def create(self, definition: StreamDefinition) -> None:
        self._check()
        self.definitions[definition.name] = definition
        self.messages[definition.name] = []

    async def update(self, definition: StreamDefinition) -> None:
        current = self._definition(definition.name)
        if definition.persistence is not current.persistence:
            raise StreamUpdateNotAllowedError("persistence cannot change", field="persistence")
        self.definitions[definition.name] = definition

    async def delete(self, name: str) -> None:
        self._definition(name)
        del self.definitions[name], self.messages[name]

    def describe(self, name: str) -> StreamInfo:
        messages = self.messages.get(name, [])
        return StreamInfo(
            definition=self._definition(name),
            storage_status=StorageStatus(0, len(messages) - 1, sum(len(m.payload) for m in messages)),
        )

    def names(self) -> list[str]:
        return sorted(self.definitions)

    async def append(self, name: str, payload: bytes) -> int:
        self._definition(name)
        messages = self.messages[name]
        messages.append(StoredMessage(name, len(messages), int(time.time() * 1000), payload))
        async with self.appended:
            self.appended.notify_all()
        return len(messages) - 1

    async def read(
        self,
        name: str,
        *,
        desired_start_sequence_number: int = 0,
        min_message_count: int = 1,
        max_message_count: int | None = None,
        read_timeout_millis: int = 0,
    ) -> list[StoredMessage]:
        self._definition(name)

        def available() -> list[StoredMessage]:
            return self.messages.get(name, [])[desired_start_sequence_number:]

        if len(available()) >= min_message_count:
            return self._window(available(), max_message_count)
        async with self.appended:
            self.waiting_reads += 1
            try:
                await asyncio.wait_for(
                    self.appended.wait_for(lambda: len(available()) >= min_message_count),
                    read_timeout_millis / 1000,
                )
            except TimeoutError:
                raise NotEnoughMessagesError(f"fewer than {min_message_count} messages in {name!r}") from None
            finally:
                self.waiting_reads -= 1
        return self._window(available(), max_message_count)

    @staticmethod
    def _window(found: list[StoredMessage], max_message_count: int | None) -> list[StoredMessage]:
        return found if max_message_count is None else found[:max_message_count]

    def _definition(self, name: str) -> StreamDefinition:
        if name not in self.definitions:
            raise StreamNotFoundError(name)
        return self.definitions[name]


@pytest.fixture
def store() -> FakeStreamStore:
    return FakeStreamStore()


@pytest.fixture
async def server(store: FakeStreamStore) -> AsyncIterator[StreamServer]:
    server = StreamServer(
        store,
        authenticate=lambda token: COMPONENT if token == TOKEN else None,
        port=0,
        max_payload_size=4096,
    )
    async with server:
        yield server


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", TOKEN)
    return TOKEN


async def open_client(server: StreamServer) -> StreamManagerClient:
    return await asyncio.to_thread(
        StreamManagerClient, host="127.0.0.1", port=server.port, request_timeout=10
    )


@pytest.fixture
async def client(server: StreamServer, token: str) -> AsyncIterator[StreamManagerClient]:
    client = await open_client(server)
    try:
        yield client
    finally:
        await asyncio.to_thread(client.close)


def definition(name: str = "telemetry", **fields: Any) -> MessageStreamDefinition:
    fields.setdefault("strategy_on_full", sdk.StrategyOnFull.OverwriteOldestData)
    return MessageStreamDefinition(name=name, **fields)


async def call(function: Any, *args: Any) -> Any:
    return await asyncio.to_thread(function, *args)


async def wait_until(condition: Any) -> None:
    async with asyncio.timeout(DEADLINE_S):
        while not condition():
            await asyncio.sleep(0.01)


async def test_create_describe_list_delete_through_sdk(
    client: StreamManagerClient, store: FakeStreamStore
) -> None:
    await call(
        client.create_message_stream,
        definition(
            max_size=8192,
            time_to_live_millis=60_000,
            persistence=sdk.Persistence.Memory,
            strategy_on_full=sdk.StrategyOnFull.RejectNewData,
            flush_on_write=True,
        ),
    )
    info = await call(client.describe_message_stream, "telemetry")
    names = await call(client.list_streams)
    await call(client.delete_message_stream, "telemetry")

    assert store.definitions == {}
    assert names == ["telemetry"]
    assert info.definition.max_size == 8192
    assert info.definition.persistence is sdk.Persistence.Memory
    assert info.definition.strategy_on_full is sdk.StrategyOnFull.RejectNewData
    assert info.definition.flush_on_write is True
    assert info.storage_status.newest_sequence_number == -1
    assert await call(client.list_streams) == []


async def test_update_through_sdk_changes_definition(
    client: StreamManagerClient, store: FakeStreamStore
) -> None:
    await call(client.create_message_stream, definition())

    await call(client.update_message_stream, definition(max_size=2048))

    assert store.definitions["telemetry"].max_size == 2048
    assert store.definitions["telemetry"].strategy_on_full is StrategyOnFull.OverwriteOldestData


async def test_update_when_store_refuses_raises_update_not_allowed(client: StreamManagerClient) -> None:
    await call(client.create_message_stream, definition())

    with pytest.raises(UpdateNotAllowedException, match="persistence cannot change"):
        await call(client.update_message_stream, definition(persistence=sdk.Persistence.Memory))


async def test_append_and_read_with_options_through_sdk(client: StreamManagerClient) -> None:
    await call(client.create_message_stream, definition())
    numbers = [await call(client.append_message, "telemetry", f"m{i}".encode()) for i in range(5)]

    first = await call(client.read_messages, "telemetry")
    window = await call(
        client.read_messages,
        "telemetry",
        ReadMessagesOptions(desired_start_sequence_number=1, min_message_count=2, max_message_count=3),
    )

    assert numbers == [0, 1, 2, 3, 4]
    assert [(m.stream_name, m.sequence_number, m.payload) for m in first] == [("telemetry", 0, b"m0")]
    assert [m.payload for m in window] == [b"m1", b"m2", b"m3"]
    assert all(m.ingest_time > 0 for m in window)


async def test_read_when_not_enough_messages_before_timeout_raises(client: StreamManagerClient) -> None:
    await call(client.create_message_stream, definition())

    with pytest.raises(NotEnoughMessagesException):
        await call(
            client.read_messages,
            "telemetry",
            ReadMessagesOptions(min_message_count=2, read_timeout_millis=10),
        )


async def test_read_larger_than_one_answer_raises_response_payload_too_large(
    tmp_path: Path, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = b"x" * 100
    # The real store bounds one answer; two of the three messages fit in it.
    monkeypatch.setattr(store_module, "MAX_READ_BYTES", 2 * (HEADER_BYTES + len(payload)))
    store = await StreamStore.open(tmp_path)
    try:
        async with StreamServer(store, authenticate=lambda token: COMPONENT, port=0) as server:
            client = await open_client(server)
            try:
                await call(client.create_message_stream, definition(persistence=sdk.Persistence.Memory))
                for _ in range(3):
                    await call(client.append_message, "telemetry", payload)

                with pytest.raises(ResponsePayloadTooLargeException, match="min_message_count 3"):
                    await call(
                        client.read_messages,
                        "telemetry",
                        ReadMessagesOptions(min_message_count=3, max_message_count=3),
                    )
                fitting = await call(
                    client.read_messages,
                    "telemetry",
                    ReadMessagesOptions(min_message_count=1, max_message_count=3),
                )
            finally:
                await asyncio.to_thread(client.close)
    finally:
        await store.close()

    assert [message.sequence_number for message in fitting] == [0, 1]


async def test_blocking_read_completes_when_second_client_appends(
    server: StreamServer, client: StreamManagerClient, store: FakeStreamStore
) -> None:
    await call(client.create_message_stream, definition())
    read = asyncio.create_task(
        call(
            client.read_messages,
            "telemetry",
            ReadMessagesOptions(min_message_count=1, read_timeout_millis=5000),
        )
    )
    await wait_until(lambda: store.waiting_reads == 1)
    writer = await open_client(server)
    try:
        await call(writer.append_message, "telemetry", b"late")
    finally:
        await asyncio.to_thread(writer.close)

    messages = await asyncio.wait_for(read, DEADLINE_S)

    assert [m.payload for m in messages] == [b"late"]


async def test_blocking_read_does_not_hold_up_requests_on_same_connection(
    client: StreamManagerClient, store: FakeStreamStore
) -> None:
    await call(client.create_message_stream, definition())
    read = asyncio.create_task(
        call(
            client.read_messages,
            "telemetry",
            ReadMessagesOptions(min_message_count=2, read_timeout_millis=5000),
        )
    )
    await wait_until(lambda: store.waiting_reads == 1)

    names = await call(client.list_streams)
    await call(client.append_message, "telemetry", b"a")
    await call(client.append_message, "telemetry", b"b")
    messages = await asyncio.wait_for(read, DEADLINE_S)

    assert names == ["telemetry"]
    assert [m.payload for m in messages] == [b"a", b"b"]


async def test_unknown_stream_raises_resource_not_found(client: StreamManagerClient) -> None:
    with pytest.raises(ResourceNotFoundException, match="'missing' does not exist"):
        await call(client.describe_message_stream, "missing")
    with pytest.raises(ResourceNotFoundException):
        await call(client.append_message, "missing", b"x")
    with pytest.raises(ResourceNotFoundException):
        await call(client.read_messages, "missing")


def connect_refused(port: int) -> bool:
    """Whether the SDK client fails to connect; a refused client is closed all the same.

    The SDK's constructor raises without closing its socket or stopping its loop thread, so the half-built
    client is taken from the traceback and closed, rather than left to warn when garbage-collected.
    """
    try:
        client = StreamManagerClient(host="127.0.0.1", port=port, request_timeout=10)
    except ConnectFailedException as exc:
        trace = exc.__traceback__
        while trace is not None:
            half_built = trace.tb_frame.f_locals.get("self")
            if isinstance(half_built, StreamManagerClient):
                half_built.close()
            trace = trace.tb_next
        return True
    client.close()
    return False


async def test_wrong_token_refused_with_sdk_connect_failure(
    server: StreamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "WRONG")

    assert await asyncio.to_thread(connect_refused, server.port)


async def test_missing_token_refused(server: StreamServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", raising=False)

    assert await asyncio.to_thread(connect_refused, server.port)


async def test_store_failure_answers_unknown_failure_without_details(
    client: StreamManagerClient, store: FakeStreamStore
) -> None:
    store.fail_with = RuntimeError("disk exploded at /secret/path")

    with pytest.raises(UnknownFailureException) as caught:
        await call(client.create_message_stream, definition())

    assert "secret" not in caught.value.message
    assert "CREATE_MESSAGE_STREAM" in caught.value.message


async def test_oversized_request_answered_payload_too_large_and_connection_stays(
    client: StreamManagerClient,
) -> None:
    await call(client.create_message_stream, definition())

    with pytest.raises(RequestPayloadTooLargeException, match="exceeds the limit of 4096"):
        await call(client.append_message, "telemetry", b"x" * 10_000)

    assert await call(client.append_message, "telemetry", b"small") == 0


# Raw connections: what a broken or hostile client sends, which the SDK never would.


def frame(operation: int, document: Any) -> bytes:
    payload = cbor2.dumps(document)
    return (len(payload) + 1).to_bytes(4, "big") + bytes([operation]) + payload


def connect_frame(**fields: Any) -> bytes:
    return frame(
        Operation.CONNECT, {"requestId": "hello", "protocolVersion": "1.1.0", "authToken": TOKEN, **fields}
    )


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    header = await reader.readexactly(5)
    payload = await reader.readexactly(int.from_bytes(header[:4], "big") - 1)
    return header[4], cbor2.loads(payload)


@pytest.fixture
async def raw(server: StreamServer) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        await writer.wait_closed()


async def handshake(
    raw: tuple[asyncio.StreamReader, asyncio.StreamWriter], data: bytes
) -> tuple[int, dict[str, Any]]:
    reader, writer = raw
    writer.write(data)
    assert (await reader.readexactly(1))[0] == CONNECT_VERSION
    return await read_frame(reader)


async def connected(raw: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
    operation, response = await handshake(raw, bytes([CONNECT_VERSION]) + connect_frame())
    assert operation == Operation.CONNECT_RESPONSE
    assert response["status"] == ResponseStatus.Success


async def assert_closed(raw: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
    assert await asyncio.wait_for(raw[0].read(), DEADLINE_S) == b""


async def test_handshake_answers_version_and_component(raw: Any) -> None:
    operation, response = await handshake(raw, bytes([CONNECT_VERSION]) + connect_frame())

    assert operation == Operation.CONNECT_RESPONSE
    assert response["requestId"] == "hello"
    assert response["status"] == ResponseStatus.Success
    assert response["protocolVersion"] == "1.1.0"
    assert response["supportedProtocolVersions"] == ["1.1.0", "1.0.0"]
    assert response["clientIdentifier"] == COMPONENT


async def test_handshake_falls_back_to_older_protocol_both_speak(raw: Any) -> None:
    data = bytes([CONNECT_VERSION]) + connect_frame(
        protocolVersion="9.0.0", otherSupportedProtocolVersions=["1.0.0"]
    )

    _, response = await handshake(raw, data)

    assert response["status"] == ResponseStatus.Success
    assert response["protocolVersion"] == "1.0.0"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (bytes([2]) + connect_frame(), ResponseStatus.UnsupportedConnectVersion),
        # A request before the handshake: its length's first byte is read as the connect version.
        (frame(Operation.LIST_STREAMS, {"requestId": "early"}), ResponseStatus.UnsupportedConnectVersion),
        (
            bytes([CONNECT_VERSION]) + frame(Operation.LIST_STREAMS, {"requestId": "r"}),
            ResponseStatus.UnexpectedOperation,
        ),
        (
            bytes([CONNECT_VERSION]) + connect_frame(protocolVersion="9.0.0"),
            ResponseStatus.UnsupportedProtocolVersion,
        ),
        (
            bytes([CONNECT_VERSION]) + connect_frame(protocolVersion="latest"),
            ResponseStatus.InvalidProtocolVersion,
        ),
        (bytes([CONNECT_VERSION]) + connect_frame(protocolVersion=5), ResponseStatus.InvalidRequest),
        (bytes([CONNECT_VERSION]) + connect_frame(authToken="WRONG"), ResponseStatus.Unauthorized),
        (bytes([CONNECT_VERSION]) + b"\x00\x00\x00\x03\x01\xff\xff", ResponseStatus.InvalidRequest),
        (
            bytes([CONNECT_VERSION]) + connect_frame(authToken="x" * 5000),
            ResponseStatus.RequestPayloadTooLarge,
        ),
    ],
)
async def test_handshake_refusal_answers_status_and_closes(
    raw: Any, data: bytes, status: ResponseStatus
) -> None:
    operation, response = await handshake(raw, data)

    assert operation == Operation.CONNECT_RESPONSE
    assert response["status"] == status
    assert response["errorMessage"]
    await assert_closed(raw)


async def test_invalid_field_answered_with_field_name(raw: Any) -> None:
    await connected(raw)
    raw[1].write(frame(Operation.APPEND_MESSAGE, {"requestId": "a1", "name": "s", "payload": "not bytes"}))

    operation, response = await read_frame(raw[0])

    assert operation == Operation.APPEND_MESSAGE_RESPONSE
    assert response["requestId"] == "a1"
    assert response["status"] == ResponseStatus.InvalidRequest
    assert "'payload' must be a byte string" in response["errorMessage"]


async def test_unknown_operation_answered_as_sdk_expects(raw: Any) -> None:
    await connected(raw)
    raw[1].write(frame(99, {"requestId": "u1"}))

    operation, response = await read_frame(raw[0])

    assert operation == Operation.UNKNOWN_OPERATION_ERROR
    assert response == {
        "requestId": "u1",
        "status": ResponseStatus.UnknownOperation,
        "errorMessage": response["errorMessage"],
    }


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x00\x00\x03\x0b\xff\xff",  # not CBOR
        frame(Operation.LIST_STREAMS, ["requestId"]),  # not a map
        frame(Operation.LIST_STREAMS, {"requestId": 7}),  # no usable request id
        b"\x00\x00\x00\x00\x0b",  # length without the operation byte
        b"\x80\x00\x00\x00\x0b",  # negative length
        (10_000).to_bytes(4, "big") + b"\x04" + b"\x00" * 600,  # oversized, no request id to answer
    ],
)
async def test_unanswerable_frame_closes_only_its_connection(
    raw: Any, data: bytes, server: StreamServer, token: str
) -> None:
    other = await open_client(server)
    try:
        await connected(raw)
        raw[1].write(data)
        await assert_closed(raw)

        assert await call(other.list_streams) == []
    finally:
        await asyncio.to_thread(other.close)


async def test_truncated_frame_then_disconnect_leaves_others_served(
    raw: Any, server: StreamServer, token: str
) -> None:
    other = await open_client(server)
    try:
        await connected(raw)
        raw[1].write((100).to_bytes(4, "big") + bytes([Operation.LIST_STREAMS]) + b"\xa1")
        raw[1].write_eof()
        await assert_closed(raw)

        assert await call(other.list_streams) == []
    finally:
        await asyncio.to_thread(other.close)


async def test_close_ends_connections_and_pending_reads(store: FakeStreamStore, token: str) -> None:
    server = StreamServer(store, authenticate=lambda token: COMPONENT, port=0)
    await server.start()
    await store.create(StreamDefinition(name="s", persistence=Persistence.Memory))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        await connected((reader, writer))
        writer.write(
            frame(
                Operation.READ_MESSAGES,
                {"requestId": "r", "streamName": "s", "readMessagesOptions": {"readTimeoutMillis": 60_000}},
            )
        )
        await wait_until(lambda: store.waiting_reads == 1)

        await server.close()

        assert await asyncio.wait_for(reader.read(), DEADLINE_S) == b""
        assert store.waiting_reads == 0
    finally:
        writer.close()
        await writer.wait_closed()


def test_stream_server_refuses_nonsense_limits(store: FakeStreamStore) -> None:
    with pytest.raises(ValueError, match="max_payload_size"):
        StreamServer(store, authenticate=lambda token: None, max_payload_size=0)

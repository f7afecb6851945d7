"""The IPC server over real Unix sockets, driven by a raw eventstream client written for these tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import stat
import struct
import zlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from tests.support.waiting import eventually

from edgewise.runtime.ipc import (
    CallContext,
    EventStream,
    InvalidArgumentsError,
    IpcError,
    IpcServer,
    TokenTable,
)
from edgewise.runtime.ipc.eventstream import (
    HeaderValue,
    Int64,
    Message,
    MessageDecoder,
    MessageFlag,
    MessageType,
    encode_message,
)

COMPONENT = "com.example.Raw"
OP = "aws.greengrass#"
DEADLINE_S = 10.0
TERMINATE = MessageFlag.TERMINATE_STREAM


class RawClient:
    """An eventstream-RPC client that sends exactly what a test tells it to."""

    opened: ClassVar[list[RawClient]] = []

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = MessageDecoder()
        self.received: list[Message] = []

    @classmethod
    async def open(cls, path: Path) -> RawClient:
        reader, writer = await asyncio.open_unix_connection(path)
        client = cls(reader, writer)
        cls.opened.append(client)
        return client

    def send(
        self,
        kind: int,
        stream_id: int = 0,
        payload: bytes = b"",
        *,
        flags: int = 0,
        headers: Mapping[str, HeaderValue] | None = None,
    ) -> None:
        """Send one message: ``headers`` first, then the reserved ones (the order the CRT client uses)."""
        message_headers = dict(headers or {})
        message_headers.update({":message-type": kind, ":message-flags": flags, ":stream-id": stream_id})
        self.writer.write(encode_message(Message(message_headers, payload)))

    def call(self, stream_id: int, operation: str, request: Any = None, *, raw: bytes | None = None) -> None:
        payload = raw if raw is not None else json.dumps(request or {}).encode()
        self.writer.write(
            encode_message(
                Message(
                    {
                        ":content-type": "application/json",
                        "service-model-type": OP + operation + "Request",
                        ":message-type": MessageType.APPLICATION_MESSAGE,
                        ":message-flags": 0,
                        ":stream-id": stream_id,
                        "operation": OP + operation,
                    },
                    payload,
                )
            )
        )

    async def connect(self, token: str, version: str = "0.1.0") -> Message:
        self.send(
            MessageType.CONNECT,
            payload=json.dumps({"authToken": token}).encode(),
            headers={":version": version},
        )
        return await self.receive()

    async def receive(self) -> Message:
        async with asyncio.timeout(DEADLINE_S):
            while not self.received:
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("the server closed the connection")
                self.received.extend(self.decoder.feed(data))
        return self.received.pop(0)

    async def receive_until_closed(self) -> list[Message]:
        """Every message up to the server closing the connection."""
        messages = []
        async with asyncio.timeout(DEADLINE_S):
            while True:
                try:
                    messages.append(await self.receive())
                except ConnectionError:
                    return messages

    def close(self) -> None:
        self.writer.close()


@pytest.fixture(autouse=True)
async def close_raw_clients() -> AsyncIterator[None]:
    yield
    clients, RawClient.opened = RawClient.opened, []
    for client in clients:
        client.close()
        with contextlib.suppress(ConnectionError):
            await client.writer.wait_closed()


def body(message: Message) -> Any:
    return json.loads(message.payload)


class Handlers:
    """Handlers the tests register; they record what the server gave them."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.streams: list[EventStream] = []
        self.closed: list[int] = []
        self.contexts: list[CallContext] = []
        self.running = self.most_running = 0

    async def echo(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        self.contexts.append(context)
        return {"echo": request}

    async def slow(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        await self.release.wait()
        self.running -= 1
        return {"done": True}

    async def big(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        return {"data": "x" * request["size"]}

    async def crash(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("a bug in a service")

    async def invalid(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        raise InvalidArgumentsError("topic must not be empty")

    async def not_a_mapping(self, context: CallContext, request: dict[str, Any]) -> Any:
        return ["not", "an", "object"]

    async def subscribe(
        self, context: CallContext, request: dict[str, Any], stream: EventStream
    ) -> dict[str, Any]:
        self.streams.append(stream)
        stream.on_close(lambda: self.closed.append(context.stream_id))
        for n in range(request.get("early", 0)):
            assert stream.send_nowait({"n": n})
        return {}


@pytest.fixture
def tokens() -> TokenTable:
    return TokenTable()


@pytest.fixture
def handlers() -> Handlers:
    return Handlers()


async def start_server(
    socket_path: Path, tokens: TokenTable, handlers: Handlers, **options: Any
) -> IpcServer:
    server = IpcServer(socket_path, authenticate=tokens.component_for, **options)
    server.register_unary(OP + "GetConfiguration", handlers.echo)
    server.register_unary(OP + "UpdateState", handlers.slow)
    server.register_unary(OP + "GetSecretValue", handlers.big)
    server.register_unary(OP + "StopComponent", handlers.crash)
    server.register_unary(OP + "PublishToTopic", handlers.invalid)
    server.register_unary(OP + "RestartComponent", handlers.not_a_mapping)
    server.register_stream(
        OP + "SubscribeToTopic", handlers.subscribe, event_shape=OP + "SubscriptionResponseMessage"
    )
    await server.start()
    return server


@pytest.fixture
async def server(socket_path: Path, tokens: TokenTable, handlers: Handlers) -> AsyncIterator[IpcServer]:
    server = await start_server(socket_path, tokens, handlers)
    yield server
    await server.close()


@pytest.fixture
async def client(server: IpcServer, socket_path: Path, tokens: TokenTable) -> AsyncIterator[RawClient]:
    client = await RawClient.open(socket_path)
    ack = await client.connect(tokens.issue(COMPONENT))
    assert ack.headers[":message-flags"] == MessageFlag.CONNECTION_ACCEPTED
    yield client
    client.close()


# Handshake


async def test_valid_token_is_accepted_and_logged_by_component_never_by_token(
    server: IpcServer, socket_path: Path, tokens: TokenTable, caplog: pytest.LogCaptureFixture
) -> None:
    token = tokens.issue(COMPONENT)
    client = await RawClient.open(socket_path)
    with caplog.at_level(logging.DEBUG, logger="edgewise.runtime.ipc"):
        ack = await client.connect(token)

    assert ack == Message({":message-type": 5, ":message-flags": 1, ":stream-id": 0}, b"")
    assert any(COMPONENT in record.getMessage() for record in caplog.records)
    assert all(token not in record.getMessage() for record in caplog.records)
    client.close()


@pytest.mark.parametrize(
    ("payload", "version"),
    [
        (b'{"authToken": "NOTATOKEN0000000"}', "0.1.0"),
        (b'{"authToken": "%TOKEN%"}', "0.2.0"),
        (b'{"authToken": ""}', "0.1.0"),
        (b'{"authToken": 12}', "0.1.0"),
        (b'{"componentName": "com.example.Raw"}', "0.1.0"),
        (b'["%TOKEN%"]', "0.1.0"),
        (b"not json", "0.1.0"),
        (b"\xff\xfe", "0.1.0"),
        (b"", "0.1.0"),
    ],
)
async def test_bad_connect_gets_a_refusing_ack_then_the_connection_closes(
    server: IpcServer,
    socket_path: Path,
    tokens: TokenTable,
    payload: bytes,
    version: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = tokens.issue(COMPONENT)
    client = await RawClient.open(socket_path)
    client.send(
        MessageType.CONNECT,
        payload=payload.replace(b"%TOKEN%", token.encode()),
        headers={":version": version},
    )

    messages = await client.receive_until_closed()

    assert messages == [Message({":message-type": 5, ":message-flags": 0, ":stream-id": 0}, b"")]
    assert all(token not in record.getMessage() for record in caplog.records)


async def test_connect_without_version_header_is_refused(
    server: IpcServer, socket_path: Path, tokens: TokenTable
) -> None:
    client = await RawClient.open(socket_path)
    client.send(MessageType.CONNECT, payload=json.dumps({"authToken": tokens.issue(COMPONENT)}).encode())

    messages = await client.receive_until_closed()

    assert [m.headers[":message-flags"] for m in messages] == [0]


@pytest.mark.parametrize(
    ("kind", "stream_id"),
    [(MessageType.PING, 0), (MessageType.APPLICATION_MESSAGE, 1), (MessageType.CONNECT, 1)],
)
async def test_anything_but_connect_first_is_a_protocol_error(
    server: IpcServer, socket_path: Path, kind: MessageType, stream_id: int
) -> None:
    client = await RawClient.open(socket_path)
    client.send(kind, stream_id, headers={"operation": OP + "GetConfiguration"})

    messages = await client.receive_until_closed()

    assert [m.headers[":message-type"] for m in messages] == [MessageType.PROTOCOL_ERROR]
    assert b"first message must be CONNECT" in messages[0].payload


async def test_authenticator_that_raises_refuses_the_connection(socket_path: Path) -> None:
    def broken(token: str) -> str | None:
        raise KeyError(token)

    server = IpcServer(socket_path, authenticate=broken)
    await server.start()
    client = await RawClient.open(socket_path)

    client.send(MessageType.CONNECT, payload=b'{"authToken": "X"}', headers={":version": "0.1.0"})

    assert [m.headers[":message-flags"] for m in await client.receive_until_closed()] == [0]
    await server.close()


# Connections that have not authenticated


def prelude_announcing(total: int) -> bytes:
    """The 12-byte prelude of a message of ``total`` bytes with no headers, its CRC right."""
    head = struct.pack(">II", total, 0)
    return head + struct.pack(">I", zlib.crc32(head))


async def test_a_frame_announced_larger_than_a_connect_closes_the_connection_before_it_is_buffered(
    server: IpcServer, socket_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    intruder = await RawClient.open(socket_path)
    intruder.writer.write(prelude_announcing(15 * 1024 * 1024) + b"x" * 65536)

    messages = await intruder.receive_until_closed()

    assert [m.headers[":message-type"] for m in messages] == [MessageType.PROTOCOL_ERROR]
    assert messages[0].payload == (
        b"a message of 15728640 bytes before authentication; until its CONNECT is accepted "
        b"a connection's messages may be at most 8192 bytes"
    )
    assert (
        "IPC connection 1 (not authenticated): protocol error, closing it: a message of 15728640"
        in caplog.text
    )
    await eventually(lambda: server.statistics().connections == 0)
    assert server.statistics().bytes_buffered == 0
    assert server.statistics().connections_dropped == 1


async def test_forty_clients_announcing_huge_frames_hold_nothing_and_slow_ones_at_most_the_bound(
    socket_path: Path, tokens: TokenTable, handlers: Handlers
) -> None:
    server = await start_server(socket_path, tokens, handlers, handshake_timeout=60.0)
    bound = server.max_connect_message_size
    huge = [await RawClient.open(socket_path) for _ in range(40)]
    for client in huge:
        client.writer.write(prelude_announcing(15 * 1024 * 1024) + b"x" * (4 * bound))

    closed = await asyncio.gather(*(client.receive_until_closed() for client in huge))

    assert all(m.headers[":message-type"] == MessageType.PROTOCOL_ERROR for ms in closed for m in ms)
    await eventually(lambda: server.statistics().connections == 0)
    assert server.statistics().bytes_buffered == 0
    # Clients that stay within the bound but never finish their message: each holds what it sent, no more.
    slow = [await RawClient.open(socket_path) for _ in range(40)]
    for client in slow:
        client.writer.write(prelude_announcing(bound) + b"x" * (bound - 100))
    await eventually(
        lambda: server.statistics().bytes_buffered == 40 * (bound - 88), what="the slow clients' bytes"
    )
    assert server.statistics().unauthenticated == 40
    await server.close()


async def test_a_pipelined_request_after_the_connect_may_be_as_large_as_an_authenticated_one(
    server: IpcServer, socket_path: Path, tokens: TokenTable
) -> None:
    client = await RawClient.open(socket_path)
    client.send(
        MessageType.CONNECT,
        payload=json.dumps({"authToken": tokens.issue(COMPONENT)}).encode(),
        headers={":version": "0.1.0"},
    )
    client.call(1, "GetConfiguration", {"blob": "y" * 100_000})
    client.call(2, "GetConfiguration", {"blob": "z" * 100_000})

    assert (await client.receive()).headers[":message-flags"] == MessageFlag.CONNECTION_ACCEPTED
    assert body(await client.receive()) == {"echo": {"blob": "y" * 100_000}}
    assert body(await client.receive()) == {"echo": {"blob": "z" * 100_000}}


async def test_a_client_that_does_not_authenticate_in_time_is_closed_and_an_authenticated_one_is_not(
    socket_path: Path, tokens: TokenTable, handlers: Handlers, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server(socket_path, tokens, handlers, handshake_timeout=0.5)
    member = await RawClient.open(socket_path)
    await member.connect(tokens.issue(COMPONENT))
    silent = await RawClient.open(socket_path)
    halfway = await RawClient.open(socket_path)
    connect = encode_message(
        Message(
            {":version": "0.1.0", ":message-type": 4, ":message-flags": 0, ":stream-id": 0},
            json.dumps({"authToken": tokens.issue(COMPONENT)}).encode(),
        )
    )
    halfway.writer.write(connect[:-10])

    assert await silent.receive_until_closed() == []
    assert await halfway.receive_until_closed() == []

    assert (
        "IPC connection 2 (not authenticated): closing it: it has not authenticated within 0.5s"
        in caplog.text
    )
    assert (
        "IPC connection 3 (not authenticated): closing it: it has not authenticated within 0.5s"
        in caplog.text
    )
    statistics = server.statistics()
    assert (statistics.connections_dropped, statistics.unauthenticated) == (2, 0)
    member.send(MessageType.PING, payload=b"still here")
    assert (await member.receive()).payload == b"still here"
    await server.close()


async def test_connections_beyond_the_unauthenticated_limit_are_closed_at_once_until_a_slot_frees(
    socket_path: Path, tokens: TokenTable, handlers: Handlers, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server(
        socket_path, tokens, handlers, max_unauthenticated_connections=3, handshake_timeout=60.0
    )
    member = await RawClient.open(socket_path)
    await member.connect(tokens.issue(COMPONENT))
    idle = [await RawClient.open(socket_path) for _ in range(3)]
    await eventually(lambda: server.statistics().unauthenticated == 3)

    refused = [await RawClient.open(socket_path) for _ in range(2)]
    for client in refused:
        with pytest.raises(ConnectionError):
            await client.connect(tokens.issue(COMPONENT))

    assert server.statistics().connections_refused == 2
    assert caplog.text.count("IPC server: closed 1 new connection(s) at once: 3 connections are already") == 1
    member.send(MessageType.PING, payload=b"unaffected")
    assert (await member.receive()).payload == b"unaffected"
    idle[0].close()
    await eventually(lambda: server.statistics().unauthenticated == 2)
    newcomer = await RawClient.open(socket_path)
    ack = await newcomer.connect(tokens.issue(COMPONENT))
    assert ack.headers[":message-flags"] == MessageFlag.CONNECTION_ACCEPTED
    assert server.statistics().unauthenticated == 2
    await server.close()


def test_unauthenticated_limits_are_checked(socket_path: Path) -> None:
    with pytest.raises(ValueError, match="max_unauthenticated_connections must be at least 1, got 0"):
        IpcServer(socket_path, authenticate=lambda token: None, max_unauthenticated_connections=0)
    with pytest.raises(ValueError, match="handshake_timeout must be a positive number of seconds, got 0"):
        IpcServer(socket_path, authenticate=lambda token: None, handshake_timeout=0)
    with pytest.raises(ValueError, match="max_connect_message_size must be at least 16 bytes, got 8"):
        IpcServer(socket_path, authenticate=lambda token: None, max_connect_message_size=8)
    server = IpcServer(socket_path, authenticate=lambda token: None, max_message_size=4096)
    assert server.max_connect_message_size == 4096


# Connection-level messages and stream rules


async def test_ping_is_answered_with_its_payload_and_non_reserved_headers(client: RawClient) -> None:
    client.send(MessageType.PING, payload=b"hello", headers={"trace": "abc", "big": Int64(2**40)})

    pong = await client.receive()

    assert pong == Message(
        {"trace": "abc", "big": Int64(2**40), ":message-type": 3, ":message-flags": 0, ":stream-id": 0},
        b"hello",
    )


@pytest.mark.parametrize(
    ("actions", "words"),
    [
        ([("call", 2)], b"new stream id 2 does not follow 0"),
        ([("call", 1), ("call", 3)], b"new stream id 3 does not follow 1"),
        ([("call", 1), ("message", 1)], b"stream 1 is not open"),
        ([("bare", 1)], b"has no 'operation' string header"),
        ([("ping", 1)], b"message type 2 is not allowed on stream 1"),
        ([("connect", 0)], b"message type 4 is not allowed on stream 0"),
        ([("message", 0)], b"message type 0 is not allowed on stream 0"),
        ([("message", -1)], b"stream id -1 is negative"),
        ([("error", 1)], b"new stream 1 starts with message type 1"),
    ],
)
async def test_stream_rule_violations_close_only_that_connection(
    server: IpcServer, socket_path: Path, tokens: TokenTable, actions: list[tuple[str, int]], words: bytes
) -> None:
    bystander = await RawClient.open(socket_path)
    await bystander.connect(tokens.issue(COMPONENT))
    offender = await RawClient.open(socket_path)
    await offender.connect(tokens.issue(COMPONENT))

    for index, (action, stream_id) in enumerate(actions):
        if action == "call":
            offender.call(stream_id, "GetConfiguration")
        elif action in ("message", "bare"):
            offender.send(MessageType.APPLICATION_MESSAGE, stream_id, b"{}")
        elif action == "ping":
            offender.send(MessageType.PING, stream_id)
        elif action == "connect":
            offender.send(MessageType.CONNECT, stream_id, headers={":version": "0.1.0"})
        elif action == "error":
            offender.send(
                MessageType.APPLICATION_ERROR,
                stream_id,
                b"{}",
                headers={"operation": OP + "GetConfiguration"},
            )
        if action == "call" and index < len(actions) - 1:
            # let the reply arrive so that the stream is over before the next action
            assert (await offender.receive()).headers[":message-flags"] == TERMINATE

    messages = await offender.receive_until_closed()
    assert [m.headers[":message-type"] for m in messages] == [MessageType.PROTOCOL_ERROR]
    assert words in messages[0].payload
    bystander.send(MessageType.PING, payload=b"still here")
    assert (await bystander.receive()).payload == b"still here"
    assert server.statistics().connections_dropped == 1
    bystander.close()


async def test_terminate_for_a_stream_that_already_ended_is_ignored(client: RawClient) -> None:
    client.call(1, "GetConfiguration")
    await client.receive()

    client.send(MessageType.APPLICATION_MESSAGE, 1, flags=TERMINATE)
    client.send(MessageType.PING, payload=b"after")

    assert (await client.receive()).payload == b"after"


async def test_garbage_closes_the_connection_but_not_the_others(
    server: IpcServer, client: RawClient, socket_path: Path
) -> None:
    vandal = await RawClient.open(socket_path)
    vandal.writer.write(b"\x00\x00\x00\x30 this is not an eventstream frame")

    messages = await vandal.receive_until_closed()

    assert [m.headers[":message-type"] for m in messages] == [MessageType.PROTOCOL_ERROR]
    assert b"malformed frame: Prelude CRC" in messages[0].payload
    client.send(MessageType.PING, payload=b"ok")
    assert (await client.receive()).payload == b"ok"


async def test_oversized_frame_closes_the_connection_before_it_is_buffered(
    socket_path: Path, tokens: TokenTable, handlers: Handlers
) -> None:
    server = await start_server(socket_path, tokens, handlers, max_message_size=4096)
    client = await RawClient.open(socket_path)
    await client.connect(tokens.issue(COMPONENT))

    frame = encode_message(Message({":message-type": 2, ":message-flags": 0, ":stream-id": 0}, b"x" * 8192))
    client.writer.write(frame[:100])
    messages = await client.receive_until_closed()

    assert b"exceeds the limit of 4096 bytes" in messages[0].payload
    await server.close()


# Calls


async def test_unary_call_gets_a_terminating_json_response_with_the_response_shape(
    client: RawClient, handlers: Handlers
) -> None:
    client.call(1, "GetConfiguration", {"keyPath": ["a"], "unknownField": 1})

    reply = await client.receive()

    assert reply.headers == {
        ":message-type": MessageType.APPLICATION_MESSAGE,
        ":message-flags": TERMINATE,
        ":stream-id": 1,
        ":content-type": "application/json",
        "service-model-type": "aws.greengrass#GetConfigurationResponse",
    }
    assert body(reply) == {"echo": {"keyPath": ["a"], "unknownField": 1}}
    assert handlers.contexts == [
        CallContext(COMPONENT, OP + "GetConfiguration", handlers.contexts[0].connection_id, 1)
    ]


async def test_empty_request_payload_is_an_empty_request(client: RawClient) -> None:
    client.call(1, "GetConfiguration", raw=b"")

    assert body(await client.receive()) == {"echo": {}}


def assert_error(message: Message, stream_id: int, shape: str, text: str) -> None:
    assert message.headers == {
        ":message-type": MessageType.APPLICATION_ERROR,
        ":message-flags": TERMINATE,
        ":stream-id": stream_id,
        ":content-type": "application/json",
        "service-model-type": "aws.greengrass#" + shape,
    }
    payload = body(message)
    assert text in payload["message"], payload
    assert payload["_message"] == payload["message"]
    assert payload["_errorCode"] == shape
    assert payload["_service"] == "aws.greengrass#GreengrassCoreIPC"


@pytest.mark.parametrize(
    ("operation", "raw", "shape", "text"),
    [
        ("GetConfiguration", b"[1, 2]", "InvalidArgumentsError", "must be a JSON object, got list"),
        ("GetConfiguration", b"{nope", "InvalidArgumentsError", "is not valid JSON"),
        ("GetConfiguration", b"[" * 100_000, "InvalidArgumentsError", "is not valid JSON"),
        ("PublishToTopic", b"{}", "InvalidArgumentsError", "topic must not be empty"),
        (
            "PublishToIoTCore",
            b"{}",
            "ServiceError",
            "aws.greengrass#PublishToIoTCore is not supported by Edgewise yet",
        ),
        ("NoSuchThing", b"{}", "ServiceError", "aws.greengrass#NoSuchThing is not a known operation"),
        ("StopComponent", b"{}", "ServiceError", "Edgewise failed to handle aws.greengrass#StopComponent"),
        (
            "RestartComponent",
            b"{}",
            "ServiceError",
            "Edgewise failed to handle aws.greengrass#RestartComponent",
        ),
    ],
)
async def test_failed_calls_get_a_modeled_error_and_the_connection_stays_usable(
    server: IpcServer, client: RawClient, operation: str, raw: bytes, shape: str, text: str
) -> None:
    client.call(1, operation, raw=raw)

    assert_error(await client.receive(), 1, shape, text)
    client.call(2, "GetConfiguration")
    assert body(await client.receive()) == {"echo": {}}
    assert server.statistics().errors == 1


async def test_unexpected_handler_failure_is_logged_with_its_traceback(
    client: RawClient, caplog: pytest.LogCaptureFixture
) -> None:
    client.call(1, "StopComponent")
    await client.receive()

    (record,) = [r for r in caplog.records if r.exc_info]
    assert "aws.greengrass#StopComponent" in record.getMessage()
    assert COMPONENT in record.getMessage()


async def test_slow_handler_does_not_hold_up_pings_or_other_calls(
    client: RawClient, handlers: Handlers
) -> None:
    client.call(1, "UpdateState")
    client.send(MessageType.PING, payload=b"ping")
    client.call(2, "GetConfiguration")

    assert (await client.receive()).payload == b"ping"
    assert (await client.receive()).headers[":stream-id"] == 2
    handlers.release.set()
    assert body(await client.receive()) == {"done": True}


async def test_calls_beyond_the_limit_wait_until_a_running_one_finishes(
    socket_path: Path, tokens: TokenTable, handlers: Handlers
) -> None:
    server = await start_server(socket_path, tokens, handlers, max_calls_per_connection=2)
    client = await RawClient.open(socket_path)
    await client.connect(tokens.issue(COMPONENT))
    for stream_id in (1, 2, 3, 4):
        client.call(stream_id, "UpdateState")

    await eventually(lambda: server.statistics().calls_in_flight == 2)
    handlers.release.set()
    replies = [await client.receive() for _ in range(4)]

    assert sorted(reply.headers[":stream-id"] for reply in replies) == [1, 2, 3, 4]
    assert handlers.most_running == 2
    await server.close()


async def test_replies_completed_in_one_turn_of_the_loop_go_out_in_one_write(
    server: IpcServer, client: RawClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    (connection,) = server._connections.values()
    transport = connection._transport
    assert transport is not None
    writes: list[int] = []
    write = transport.write

    def counting_write(data: bytes | bytearray | memoryview) -> None:
        writes.append(len(data))
        write(data)

    monkeypatch.setattr(transport, "write", counting_write)
    calls = 20
    # All requests in one client write, so that the server reads them in one chunk and answers them together.
    real_write, pipelined = client.writer.write, bytearray()
    client.writer.write = pipelined.extend  # type: ignore[method-assign]
    for stream_id in range(1, calls + 1):
        client.call(stream_id, "GetConfiguration", {"n": stream_id})
    client.writer.write = real_write  # type: ignore[method-assign]
    client.writer.write(bytes(pipelined))

    replies = [await client.receive() for _ in range(calls)]

    assert [body(reply)["echo"]["n"] for reply in replies] == list(range(1, calls + 1))
    assert sum(writes) == sum(len(encode_message(reply)) for reply in replies)
    assert len(writes) < calls


# Streams


async def test_events_sent_by_the_handler_follow_the_initial_response(
    client: RawClient, handlers: Handlers
) -> None:
    client.call(1, "SubscribeToTopic", {"early": 3})

    response = await client.receive()
    events = [await client.receive() for _ in range(3)]

    assert response.headers["service-model-type"] == OP + "SubscribeToTopicResponse"
    assert response.headers[":message-flags"] == 0
    assert [body(e) for e in events] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert {e.headers["service-model-type"] for e in events} == {OP + "SubscriptionResponseMessage"}
    assert {(e.headers[":message-flags"], e.headers[":stream-id"]) for e in events} == {(0, 1)}


async def test_events_after_the_response_arrive_in_order(client: RawClient, handlers: Handlers) -> None:
    client.call(1, "SubscribeToTopic")
    await client.receive()
    (stream,) = handlers.streams

    for n in range(50):
        if n % 2:
            assert stream.send_nowait({"n": n})
        else:
            await stream.send({"n": n})

    assert [body(await client.receive())["n"] for _ in range(50)] == list(range(50))


async def test_client_terminate_closes_the_stream_and_fires_on_close(
    server: IpcServer, client: RawClient, handlers: Handlers
) -> None:
    client.call(1, "SubscribeToTopic")
    await client.receive()
    (stream,) = handlers.streams

    client.send(MessageType.APPLICATION_MESSAGE, 1, flags=TERMINATE)
    await eventually(lambda: stream.closed)

    assert handlers.closed == [1]
    assert stream.send_nowait({"n": 1}) is False
    await stream.send({"n": 1})
    assert server.statistics().streams == 0


async def test_server_close_of_a_stream_sends_terminate_after_queued_events(
    client: RawClient, handlers: Handlers
) -> None:
    client.call(1, "SubscribeToTopic")
    await client.receive()
    (stream,) = handlers.streams
    stream.send_nowait({"n": 1})

    await stream.close()

    assert body(await client.receive()) == {"n": 1}
    assert await client.receive() == Message(
        {":message-type": 0, ":message-flags": TERMINATE, ":stream-id": 1}, b""
    )
    assert handlers.closed == [1]
    late: list[str] = []
    stream.on_close(lambda: late.append("ran"))
    assert late == ["ran"]


async def test_disconnect_fires_on_close_of_every_stream(
    server: IpcServer, client: RawClient, handlers: Handlers
) -> None:
    for stream_id in (1, 2, 3):
        client.call(stream_id, "SubscribeToTopic")
        await client.receive()

    client.close()

    await eventually(lambda: sorted(handlers.closed) == [1, 2, 3])
    await eventually(lambda: server.statistics().connections == 0)
    assert server.statistics().streams == 0


async def test_stream_limit_refuses_extra_streams_with_a_service_error(
    socket_path: Path, tokens: TokenTable, handlers: Handlers
) -> None:
    server = await start_server(socket_path, tokens, handlers, max_streams_per_connection=2)
    client = await RawClient.open(socket_path)
    await client.connect(tokens.issue(COMPONENT))
    for stream_id in (1, 2):
        client.call(stream_id, "SubscribeToTopic")
        await client.receive()

    client.call(3, "GetConfiguration")

    assert_error(await client.receive(), 3, "ServiceError", "already has 2 open streams")
    await server.close()


# Clients that do not read, many clients, shutdown


async def test_client_that_never_reads_is_dropped_while_another_keeps_working(
    socket_path: Path, tokens: TokenTable, handlers: Handlers
) -> None:
    server = await start_server(socket_path, tokens, handlers, max_buffered_bytes=256 * 1024)
    worker = await RawClient.open(socket_path)
    await worker.connect(tokens.issue(COMPONENT))
    hog = await RawClient.open(socket_path)
    await hog.connect(tokens.issue(COMPONENT))

    for stream_id in range(1, 201):
        hog.call(stream_id, "GetSecretValue", {"size": 100_000})
    await hog.writer.drain()
    for stream_id in range(1, 21):
        worker.call(stream_id, "GetConfiguration", {"n": stream_id})
        assert body(await worker.receive()) == {"echo": {"n": stream_id}}

    await eventually(lambda: server.statistics().connections_dropped == 1)
    assert server.statistics().connections == 1
    await server.close()


async def test_subscriber_that_never_reads_loses_events_not_memory(
    socket_path: Path, tokens: TokenTable, handlers: Handlers
) -> None:
    server = await start_server(
        socket_path, tokens, handlers, max_buffered_bytes=64 * 1024, max_queued_events=4
    )
    client = await RawClient.open(socket_path)
    await client.connect(tokens.issue(COMPONENT))
    client.call(1, "SubscribeToTopic")
    await client.receive()
    (stream,) = handlers.streams

    accepted = 0
    while stream.send_nowait({"data": "x" * 8192}):
        accepted += 1
        assert accepted < 10_000, "the subscriber's queue never filled up"
    assert server.statistics().events_dropped == 1
    # send() waits for room, and gives up on the event when none comes in time.
    for _ in range(100):
        await stream.send({"data": "x" * 8192}, max_wait=0.05)
        if server.statistics().events_dropped == 2:
            break

    assert server.statistics().events_dropped == 2
    assert server.statistics().connections == 1
    assert not stream.closed
    await server.close()


async def test_many_subscriptions_that_never_read_share_one_byte_budget(
    socket_path: Path, tokens: TokenTable, handlers: Handlers
) -> None:
    budget = 256 * 1024
    server = await start_server(
        socket_path, tokens, handlers, max_buffered_bytes=64 * 1024, max_queued_bytes=budget
    )
    client = await RawClient.open(socket_path)
    await client.connect(tokens.issue(COMPONENT))
    for stream_id in range(1, 51):
        client.call(stream_id, "SubscribeToTopic")
        await client.receive()
    assert len(handlers.streams) == 50

    event = {"data": "x" * 8192}
    accepted = sum(stream.send_nowait(event) for _ in range(40) for stream in handlers.streams)
    connection = next(iter(server._connections.values()))
    # 50 streams x 40 events of 8 KiB would be 16 MiB; the connection holds at most its byte budget.
    assert connection.queued_bytes <= budget
    assert accepted * 8192 <= budget + 2 * 64 * 1024 + 50 * 8300
    assert server.statistics().events_dropped == 50 * 40 - accepted
    client.close()
    await eventually(lambda: server.statistics().connections == 0)
    await server.close()


async def test_many_clients_are_served_at_once(
    server: IpcServer, socket_path: Path, tokens: TokenTable
) -> None:
    async def session(n: int) -> Any:
        client = await RawClient.open(socket_path)
        await client.connect(tokens.issue(f"com.example.C{n}"))
        client.call(1, "GetConfiguration", {"n": n})
        reply = body(await client.receive())
        client.close()
        return reply

    replies = await asyncio.gather(*(session(n) for n in range(200)))

    assert replies == [{"echo": {"n": n}} for n in range(200)]
    assert server.statistics().connections_accepted == 200


async def test_close_ends_streams_drops_clients_and_removes_the_socket(
    server: IpcServer, client: RawClient, handlers: Handlers, socket_path: Path
) -> None:
    client.call(1, "SubscribeToTopic")
    await client.receive()
    client.call(2, "UpdateState")

    await server.close()

    assert handlers.closed == [1]
    assert not socket_path.exists()
    assert await client.receive_until_closed() == []
    assert server.statistics().calls_in_flight == 0


# Starting


async def test_start_replaces_a_stale_socket_and_opens_it_to_everyone(
    socket_path: Path, tokens: TokenTable, handlers: Handlers
) -> None:
    # A socket file nobody listens on, as a runtime that died leaves behind.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(socket_path))

    server = await start_server(socket_path, tokens, handlers)

    assert stat.S_IMODE(socket_path.stat().st_mode) == 0o666
    client = await RawClient.open(socket_path)
    assert (await client.connect(tokens.issue(COMPONENT))).headers[":message-flags"] == 1
    client.close()
    await server.close()


async def test_start_refuses_to_replace_a_file_that_is_not_a_socket(socket_path: Path) -> None:
    socket_path.write_text("precious")
    server = IpcServer(socket_path, authenticate=lambda token: None)

    with pytest.raises(IpcError, match="a file that is not a socket is in the way"):
        await server.start()
    assert socket_path.read_text() == "precious"


async def test_start_refuses_a_socket_path_longer_than_the_os_allows(socket_path: Path) -> None:
    server = IpcServer(socket_path.parent / ("x" * 120), authenticate=lambda token: None)

    with pytest.raises(IpcError, match="longer than the 107-byte limit"):
        await server.start()


async def test_start_reports_a_missing_directory(socket_path: Path) -> None:
    server = IpcServer(socket_path.parent / "missing" / "ipc.socket", authenticate=lambda token: None)

    with pytest.raises(IpcError, match=r"Cannot listen on IPC socket .*missing"):
        await server.start()


def test_an_operation_gets_one_handler(handlers: Handlers, socket_path: Path) -> None:
    server = IpcServer(socket_path, authenticate=lambda token: None)
    server.register_unary(OP + "GetConfiguration", handlers.echo)

    with pytest.raises(ValueError, match=r"'aws\.greengrass#GetConfiguration' already has a handler"):
        server.register_stream(OP + "GetConfiguration", handlers.subscribe, event_shape="x")


def test_limits_must_be_positive(socket_path: Path) -> None:
    with pytest.raises(ValueError, match="max_calls_per_connection must be at least 1, got 0"):
        IpcServer(socket_path, authenticate=lambda token: None, max_calls_per_connection=0)


# Handlers that never wait


class NowaitHandlers:
    """Plain-function handlers, with the task each ran in."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any] | None] = []

    def record(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        self.tasks.append(asyncio.current_task())
        return {"n": request["n"]}

    def refuse(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        raise InvalidArgumentsError("publishMessage: required")

    def crash(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("a bug in a nowait handler")


@pytest.fixture
async def nowait_client(
    socket_path: Path, tokens: TokenTable
) -> AsyncIterator[tuple[RawClient, NowaitHandlers]]:
    handlers = NowaitHandlers()
    server = IpcServer(socket_path, authenticate=tokens.component_for)
    server.register_unary_nowait(OP + "PublishToTopic", handlers.record)
    server.register_unary_nowait(OP + "PublishToIoTCore", handlers.refuse)
    server.register_unary_nowait(OP + "StopComponent", handlers.crash)
    await server.start()
    client = await RawClient.open(socket_path)
    await client.connect(tokens.issue(COMPONENT))
    yield client, handlers
    await server.close()


async def test_a_nowait_handler_answers_each_call_in_order_with_no_task_of_its_own(
    nowait_client: tuple[RawClient, NowaitHandlers],
) -> None:
    client, handlers = nowait_client
    for stream_id in range(1, 11):
        client.call(stream_id, "PublishToTopic", {"n": stream_id})

    replies = [await client.receive() for _ in range(10)]

    assert [reply.headers[":stream-id"] for reply in replies] == list(range(1, 11))
    assert [body(reply) for reply in replies] == [{"n": n} for n in range(1, 11)]
    assert replies[0].headers["service-model-type"] == OP + "PublishToTopicResponse"
    assert replies[0].headers[":message-flags"] == TERMINATE
    assert handlers.tasks == [None] * 10


async def test_a_nowait_handler_that_fails_gets_an_error_reply_and_the_connection_stays_usable(
    nowait_client: tuple[RawClient, NowaitHandlers], caplog: pytest.LogCaptureFixture
) -> None:
    client, _handlers = nowait_client
    client.call(1, "PublishToIoTCore")
    client.call(2, "StopComponent")
    client.call(3, "PublishToTopic", {"n": 3})

    assert_error(await client.receive(), 1, "InvalidArgumentsError", "publishMessage: required")
    assert_error(await client.receive(), 2, "ServiceError", "Edgewise failed to handle")
    assert body(await client.receive()) == {"n": 3}
    (record,) = [r for r in caplog.records if r.exc_info]
    assert "aws.greengrass#StopComponent" in record.getMessage()


def test_a_nowait_operation_gets_one_handler(handlers: Handlers, socket_path: Path) -> None:
    server = IpcServer(socket_path, authenticate=lambda token: None)
    server.register_unary(OP + "GetConfiguration", handlers.echo)

    with pytest.raises(ValueError, match=r"'aws\.greengrass#GetConfiguration' already has a handler"):
        server.register_unary_nowait(OP + "GetConfiguration", NowaitHandlers().record)

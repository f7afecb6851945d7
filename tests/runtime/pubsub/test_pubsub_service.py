"""The PublishToTopic/SubscribeToTopic IPC service on a real IPC server, driven over real Unix sockets.

The clients here are raw eventstream-RPC clients, so a test can send exactly the (malformed, hostile or
pipelined) requests it wants; the unmodified awsiotsdk clients are exercised in tests/integration.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tests.support.waiting import eventually

from edgewise.runtime.ipc import IpcServer, TokenTable
from edgewise.runtime.ipc.authorization import Authorizer
from edgewise.runtime.ipc.eventstream import Message, MessageDecoder, MessageFlag, MessageType, encode_message
from edgewise.runtime.ipc.services.pubsub import PubSubService
from edgewise.runtime.pubsub import PubSubBus

OP = "aws.greengrass#"
DEADLINE_S = 10.0
PUBSUB = "aws.greengrass.ipc.pubsub"


def policy(operations: list[str], resources: list[str]) -> dict[str, Any]:
    return {"accessControl": {PUBSUB: {"p1": {"operations": operations, "resources": resources}}}}


class RawIpc:
    """An eventstream-RPC client that sends what the test says and sorts replies by stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = MessageDecoder()
        self.by_stream: dict[int, list[Message]] = {}
        self.last_stream = 0

    def request(self, operation: str, body: Any) -> int:
        """Open the next stream with ``body`` (JSON, or raw bytes); returns its id."""
        self.last_stream += 1
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {
            ":content-type": "application/json",
            "service-model-type": OP + operation + "Request",
            ":message-type": MessageType.APPLICATION_MESSAGE,
            ":message-flags": 0,
            ":stream-id": self.last_stream,
            "operation": OP + operation,
        }
        self.writer.write(encode_message(Message(headers, payload)))
        return self.last_stream

    def terminate(self, stream_id: int) -> None:
        headers = {
            ":message-type": MessageType.APPLICATION_MESSAGE,
            ":message-flags": MessageFlag.TERMINATE_STREAM,
            ":stream-id": stream_id,
        }
        self.writer.write(encode_message(Message(headers, b"")))

    async def read_more(self) -> None:
        data = await self.reader.read(1 << 16)
        if not data:
            raise ConnectionError("the server closed the connection")
        for message in self.decoder.feed(data):
            self.by_stream.setdefault(int(message.headers[":stream-id"]), []).append(message)  # type: ignore[arg-type]

    async def messages(self, stream_id: int, count: int) -> list[Message]:
        """The first ``count`` messages received on ``stream_id``, waiting for them if needed."""
        async with asyncio.timeout(DEADLINE_S):
            while len(self.by_stream.get(stream_id, ())) < count:
                await self.read_more()
        return self.by_stream[stream_id][:count]

    async def reply(self, stream_id: int) -> tuple[str, Any]:
        """The first message on ``stream_id`` as (shape, JSON body)."""
        (message,) = await self.messages(stream_id, 1)
        return str(message.headers["service-model-type"]), json.loads(message.payload)

    async def events(self, stream_id: int, count: int) -> list[Any]:
        """The bodies of the first ``count`` events after the initial response on ``stream_id``."""
        messages = await self.messages(stream_id, count + 1)
        return [json.loads(message.payload) for message in messages[1:]]


class Harness:
    """A real IPC server with the pub/sub service; ``connect`` opens authenticated raw clients."""

    def __init__(self, socket_path: Path, policies: dict[str, Any], **server_options: Any) -> None:
        self.tokens = TokenTable()
        self.bus = PubSubBus()
        context = SimpleNamespace(bus=self.bus, authorizer=Authorizer(policies.get))
        self.server = IpcServer(socket_path, authenticate=self.tokens.component_for, **server_options)
        PubSubService(context).register(self.server)  # type: ignore[arg-type]
        self.clients: list[RawIpc] = []

    async def connect(self, component: str) -> RawIpc:
        reader, writer = await asyncio.open_unix_connection(self.server.socket_path)
        client = RawIpc(reader, writer)
        self.clients.append(client)
        headers = {
            ":version": "0.1.0",
            ":message-type": MessageType.CONNECT,
            ":message-flags": 0,
            ":stream-id": 0,
        }
        payload = json.dumps({"authToken": self.tokens.issue(component)}).encode()
        writer.write(encode_message(Message(headers, payload)))
        await client.messages(0, 1)
        return client

    async def subscribe(self, client: RawIpc, topic_filter: str, **request: Any) -> int:
        stream_id = client.request("SubscribeToTopic", {"topic": topic_filter, **request})
        shape, body = await client.reply(stream_id)
        assert (shape, body) == (OP + "SubscribeToTopicResponse", {}), body
        return stream_id


@pytest.fixture
def socket_path() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="ew-ps-"))
    yield directory / "ipc.socket"
    shutil.rmtree(directory, ignore_errors=True)


OPEN_POLICY = policy(["*"], ["*"])


@contextlib.asynccontextmanager
async def serving(socket_path: Path, policies: dict[str, Any], **options: Any) -> AsyncIterator[Harness]:
    harness = Harness(socket_path, policies, **options)
    await harness.server.start()
    try:
        yield harness
    finally:
        for client in harness.clients:
            client.writer.close()
        await harness.server.close()


def json_publish(topic: str, message: Any) -> dict[str, Any]:
    return {"topic": topic, "publishMessage": {"jsonMessage": {"message": message}}}


async def test_published_messages_reach_subscribers_with_their_topic(socket_path: Path) -> None:
    policies = {"c.Pub": OPEN_POLICY, "c.Sub": OPEN_POLICY}
    async with serving(socket_path, policies) as harness:
        subscriber = await harness.connect("c.Sub")
        publisher = await harness.connect("c.Pub")
        stream = await harness.subscribe(subscriber, "home/+/temp")

        done = publisher.request("PublishToTopic", json_publish("home/kitchen/temp", {"celsius": 21}))
        assert await publisher.reply(done) == (OP + "PublishToTopicResponse", {})
        binary = base64.b64encode(b"\x00\x01raw").decode()
        publisher.request(
            "PublishToTopic",
            {"topic": "home/hall/temp", "publishMessage": {"binaryMessage": {"message": binary}}},
        )

        events = await subscriber.events(stream, 2)
        messages = await subscriber.messages(stream, 3)
    assert events == [
        {"jsonMessage": {"message": {"celsius": 21}, "context": {"topic": "home/kitchen/temp"}}},
        {"binaryMessage": {"message": binary, "context": {"topic": "home/hall/temp"}}},
    ]
    assert {m.headers["service-model-type"] for m in messages[1:]} == {OP + "SubscriptionResponseMessage"}


async def test_pipelined_publishes_arrive_in_order(socket_path: Path) -> None:
    policies = {"c.Pub": OPEN_POLICY, "c.Sub": OPEN_POLICY}
    async with serving(socket_path, policies) as harness:
        subscriber = await harness.connect("c.Sub")
        publisher = await harness.connect("c.Pub")
        stream = await harness.subscribe(subscriber, "seq")
        for n in range(1000):  # all sent before any reply is read
            publisher.request("PublishToTopic", json_publish("seq", n))
        events = await subscriber.events(stream, 1000)
    assert [event["jsonMessage"]["message"] for event in events] == list(range(1000))


async def test_receive_mode_default_and_explicit(socket_path: Path) -> None:
    async with serving(socket_path, {"c.Me": OPEN_POLICY}) as harness:
        me = await harness.connect("c.Me")
        plain = await harness.subscribe(me, "chat")  # default: all messages
        wildcard = await harness.subscribe(me, "chat/#")  # default: from others only
        explicit_all = await harness.subscribe(me, "chat/#", receiveMode="RECEIVE_ALL_MESSAGES")
        explicit_others = await harness.subscribe(me, "chat", receiveMode="RECEIVE_MESSAGES_FROM_OTHERS")
        published = me.request("PublishToTopic", json_publish("chat", "mine"))
        await me.reply(published)
        harness.bus.publish("chat", "runtime's")  # the runtime (e.g. the shadow manager) is another source

        assert [e["jsonMessage"]["message"] for e in await me.events(plain, 2)] == ["mine", "runtime's"]
        assert [e["jsonMessage"]["message"] for e in await me.events(explicit_all, 2)] == [
            "mine",
            "runtime's",
        ]
        assert [e["jsonMessage"]["message"] for e in await me.events(wildcard, 1)] == ["runtime's"]
        assert [e["jsonMessage"]["message"] for e in await me.events(explicit_others, 1)] == ["runtime's"]
        assert len(me.by_stream[wildcard]) == 2
        assert len(me.by_stream[explicit_others]) == 2


@pytest.mark.parametrize(
    ("operation", "request_body", "expected"),
    [
        (
            "PublishToTopic",
            {"publishMessage": {"jsonMessage": {"message": 1}}},
            "topic: expected a string, got None",
        ),
        ("PublishToTopic", json_publish("", 1), "topic: must not be empty"),
        ("PublishToTopic", json_publish("a/+/c", 1), "'a/+/c' contains a wildcard"),
        ("PublishToTopic", json_publish("a/#", 1), "'a/#' contains a wildcard"),
        ("PublishToTopic", {"topic": "t"}, "publishMessage: expected an object, got None"),
        (
            "PublishToTopic",
            {"topic": "t", "publishMessage": []},
            "publishMessage: expected an object, got []",
        ),
        (
            "PublishToTopic",
            {"topic": "t", "publishMessage": {}},
            "jsonMessage and binaryMessage, got neither",
        ),
        (
            "PublishToTopic",
            {
                "topic": "t",
                "publishMessage": {"jsonMessage": {"message": 1}, "binaryMessage": {"message": ""}},
            },
            "jsonMessage and binaryMessage, got both",
        ),
        (
            "PublishToTopic",
            {"topic": "t", "publishMessage": {"jsonMessage": "text"}},
            "publishMessage.jsonMessage: expected an object, got 'text'",
        ),
        (
            "PublishToTopic",
            {"topic": "t", "publishMessage": {"jsonMessage": {"context": {}}}},
            "publishMessage.jsonMessage.message: required",
        ),
        (
            "PublishToTopic",
            {"topic": "t", "publishMessage": {"binaryMessage": {"message": "not base64!"}}},
            "publishMessage.binaryMessage.message: not valid base64",
        ),
        (
            "PublishToTopic",
            {"topic": "t", "publishMessage": {"binaryMessage": {"message": 12}}},
            "publishMessage.binaryMessage.message: expected a base64 string, got 12",
        ),
        ("SubscribeToTopic", {}, "topic: expected a string, got None"),
        ("SubscribeToTopic", {"topic": ["a"]}, "topic: expected a string, got ['a']"),
        ("SubscribeToTopic", {"topic": "a/#/b"}, "'#' other than as the whole last level"),
        ("SubscribeToTopic", {"topic": "a+"}, "'+' other than as a whole level"),
        (
            "SubscribeToTopic",
            {"topic": "a", "receiveMode": "SOMETIMES"},
            "receiveMode: expected one of RECEIVE_ALL_MESSAGES, RECEIVE_MESSAGES_FROM_OTHERS, got 'SOMETIMES'",
        ),
        ("SubscribeToTopic", b"[1, 2]", "must be a JSON object"),
        ("PublishToTopic", b"{not json", "is not valid JSON"),
    ],
)
async def test_malformed_requests_get_invalid_arguments_naming_the_field(
    socket_path: Path, operation: str, request_body: Any, expected: str
) -> None:
    async with serving(socket_path, {"c.Any": OPEN_POLICY}) as harness:
        client = await harness.connect("c.Any")
        watcher = await harness.subscribe(client, "#", receiveMode="RECEIVE_ALL_MESSAGES")
        stream = client.request(operation, request_body)
        shape, body = await client.reply(stream)
        assert shape == OP + "InvalidArgumentsError"
        assert expected in body["message"]
        # The connection still works, and nothing was published.
        ok = client.request("PublishToTopic", json_publish("after", "ok"))
        assert await client.reply(ok) == (OP + "PublishToTopicResponse", {})
        (event,) = await client.events(watcher, 1)
    assert event["jsonMessage"]["context"]["topic"] == "after"
    assert harness.bus.statistics().published == 1


async def test_unauthorized_publish_and_subscribe_name_component_operation_and_resource(
    socket_path: Path,
) -> None:
    policies = {
        "c.Limited": {
            "accessControl": {
                PUBSUB: {
                    "pub": {"operations": [OP + "PublishToTopic"], "resources": ["allowed/*"]},
                    "sub": {"operations": [OP + "SubscribeToTopic"], "resources": ["test/#", "exact"]},
                }
            }
        }
    }
    async with serving(socket_path, policies) as harness:
        client = await harness.connect("c.Limited")
        await harness.subscribe(client, "test/#")  # the literal policy resource
        await harness.subscribe(client, "exact")
        outcomes = {}
        for operation, body in [
            ("PublishToTopic", json_publish("denied/x", 1)),
            ("SubscribeToTopic", {"topic": "test/x"}),  # 'test/#' in a policy is not a wildcard
            ("SubscribeToTopic", {"topic": "test/+"}),
            ("SubscribeToTopic", {"topic": "allowed/x"}),  # a publish-only resource
        ]:
            shape, reply = await client.reply(client.request(operation, body))
            outcomes[body.get("topic")] = (shape, reply["message"])
        allowed = client.request("PublishToTopic", json_publish("allowed/deep/x", 1))
        assert await client.reply(allowed) == (OP + "PublishToTopicResponse", {})
    assert outcomes["denied/x"] == (
        OP + "UnauthorizedError",
        f"Principal c.Limited is not authorized to perform {PUBSUB}:{OP}PublishToTopic on resource denied/x",
    )
    for topic_filter in ("test/x", "test/+", "allowed/x"):
        shape, message = outcomes[topic_filter]
        assert shape == OP + "UnauthorizedError"
        assert message.endswith(f"{OP}SubscribeToTopic on resource {topic_filter}")
    assert harness.bus.statistics().subscriptions == 0  # and nothing leaked after close


async def test_subscriptions_end_with_their_stream_or_connection(socket_path: Path) -> None:
    async with serving(socket_path, {"c.Sub": OPEN_POLICY}) as harness:
        client = await harness.connect("c.Sub")
        streams = [await harness.subscribe(client, f"many/{n}/#") for n in range(300)]
        assert harness.bus.statistics().subscriptions == 300

        client.terminate(streams[0])
        await eventually(lambda: harness.bus.statistics().subscriptions == 299)

        client.writer.close()
        await eventually(lambda: harness.bus.statistics().subscriptions == 0)
        assert len(harness.bus._index._root.children) == 0


async def test_subscriptions_beyond_the_stream_limit_get_an_error_and_the_rest_keep_working(
    socket_path: Path,
) -> None:
    async with serving(socket_path, {"c.Greedy": OPEN_POLICY}, max_streams_per_connection=40) as harness:
        client = await harness.connect("c.Greedy")
        streams = [client.request("SubscribeToTopic", {"topic": f"t/{n}"}) for n in range(60)]
        replies = [await client.reply(stream) for stream in streams]
        accepted = [s for s, (shape, _) in zip(streams, replies, strict=True) if shape.endswith("Response")]
        refused = [body["message"] for shape, body in replies if shape == OP + "ServiceError"]
        assert len(accepted) == 40
        assert refused == ["The connection already has 40 open streams"] * 20
        harness.bus.publish("t/39", "still here")
        assert (await client.events(accepted[-1], 1))[0]["jsonMessage"]["message"] == "still here"


async def test_a_client_that_never_reads_loses_its_own_events_and_nobody_waits(socket_path: Path) -> None:
    policies = {"c.Stuck": OPEN_POLICY, "c.Good": OPEN_POLICY}
    options = {"max_queued_events": 8, "max_buffered_bytes": 1 << 20}
    async with serving(socket_path, policies, **options) as harness:
        stuck = await harness.connect("c.Stuck")
        for n in range(50):
            await harness.subscribe(stuck, f"load/{'#' if n % 2 else '+'}")
        good = await harness.connect("c.Good")
        stream = await harness.subscribe(good, "load/x")
        # From here on the stuck client reads nothing; its socket and queues fill up.
        payload = "x" * 2000
        count = 3000
        received = 0
        for n in range(count):
            harness.bus.publish("load/x", {"n": n, "pad": payload})
            if n % 100 == 99:
                # Read the good client's events as they come, the way a live component does.
                await good.messages(stream, received + 101)
                received += 100
        events = await good.events(stream, count)
        statistics = harness.bus.statistics()
    assert [event["jsonMessage"]["message"]["n"] for event in events] == list(range(count))
    assert statistics.delivered + statistics.dropped == 51 * count
    assert statistics.dropped > 40 * count  # almost all of the stuck client's 50 x 3000

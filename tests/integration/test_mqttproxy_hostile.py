"""The IoT Core operations against hostile and careless clients, on an in-process runtime whose cloud link
talks to a real Mosquitto: wrong shapes get an error naming the field, thousands of subscriptions are
bounded and released with the connection, and other components never notice."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgewise.runtime.cloudlink import CloudLink, CloudLinkSettings, FleetSettings, ReconnectSettings
from edgewise.runtime.ipc.eventstream import Message, MessageDecoder, MessageType, encode_message
from edgewise.runtime.kernel import Kernel
from edgewise.runtime.settings import RuntimeSettings
from tests.runtime.ipc.services.harness import connect, deploy
from tests.support.mosquitto import Mosquitto
from tests.support.pki import CertificateAuthority
from tests.support.runtime_process import write_recipe
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
ANYTHING = "test.Anything"
POLICY = """\
  DefaultConfiguration:
    accessControl:
      aws.greengrass.ipc.mqttproxy:
        test.Anything:mqttproxy:1:
          operations: ["*"]
          resources: ["*"]
"""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker", CertificateAuthority(tmp_path / "pki")) as running:
        yield running


@pytest.fixture
async def kernel(tmp_path: Path, broker: Mosquitto) -> AsyncIterator[Kernel]:
    device = broker.ca.issue("edge-1")
    cloud = CloudLinkSettings(
        endpoint="localhost",
        port=broker.port,
        certificate=device.certificate,
        private_key=device.private_key,
        root_ca=broker.ca.certificate,
        reconnect=ReconnectSettings(min_delay=0.1, max_delay=0.5),
        # A plain broker, not an Edgewise cloud: no device agent, so the link's subscriptions are the test's.
        fleet=FleetSettings(enabled=False),
    )
    directory = Path(tempfile.mkdtemp(prefix="ew-mqp-"))  # the socket path must stay under 108 bytes
    kernel = Kernel(RuntimeSettings(root=directory / "root", thing_name="edge-1", cloud=cloud))
    await kernel.start()
    recipes = tmp_path / "recipes"
    write_recipe(recipes, ANYTHING, "1.0.0", "ComponentConfiguration:\n" + POLICY)
    assert (await deploy(kernel, recipes, {ANYTHING: "1.0.0"})).status.value == "SUCCEEDED"
    yield kernel
    await kernel.stop()
    shutil.rmtree(directory, ignore_errors=True)


def _link(kernel: Kernel) -> CloudLink:
    assert kernel.cloud is not None
    return kernel.cloud


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        ({"topicName": 5, "qos": "1"}, "topicName"),
        ({"topicName": "a/b"}, "qos"),
        ({"topicName": "a/b", "qos": "2"}, "qos"),
        ({"topicName": "a/b", "qos": "1", "payload": "!!!"}, "payload"),
        ({"topicName": "a/b", "qos": "1", "payload": 7}, "payload"),
        ({"topicName": "a/b", "qos": "1", "retain": "yes"}, "retain"),
        ({"topicName": "a/b", "qos": "1", "userProperties": [{"key": 1, "value": "v"}]}, "userProperties[0]"),
        ({"topicName": "a/b", "qos": "1", "userProperties": {"k": "v"}}, "userProperties"),
        (
            {"topicName": "a/b", "qos": "1", "messageExpiryIntervalSeconds": -1},
            "messageExpiryIntervalSeconds",
        ),
        ({"topicName": "a/b", "qos": "1", "correlationData": "%%"}, "correlationData"),
        ({"topicName": "a/b", "qos": "1", "responseTopic": "r/#"}, "responseTopic"),
        ({"topicName": "a/b", "qos": "1", "payloadFormat": "2"}, "payloadFormat"),
        ({"topicName": "a/b", "qos": "1", "contentType": ["json"]}, "contentType"),
        ({"topicName": "t" * 257, "qos": "0"}, "topicName"),
        ({"topicName": "a/\0", "qos": "0"}, "topicName"),
    ],
)
async def test_a_publish_of_the_wrong_shape_is_invalid_arguments_naming_the_field(
    kernel: Kernel, request_body: dict[str, Any], field: str
) -> None:
    client = await connect(kernel, ANYTHING)

    reply = await client.call("PublishToIoTCore", request_body)

    assert reply.error == "InvalidArgumentsError", reply
    assert reply.message.startswith(f"{field}:"), reply.message
    assert _link(kernel).statistics().published == 0
    await client.close()


@pytest.mark.parametrize("topic_filter", ["a/#/b", "a/b+", "", "a/b/c/d/e/f/g/h/#"])
async def test_an_illegal_filter_is_invalid_arguments(kernel: Kernel, topic_filter: str) -> None:
    client = await connect(kernel, ANYTHING)

    stream = await client.subscribe("SubscribeToIoTCore", {"topicName": topic_filter, "qos": "0"})

    assert stream.reply.error == "InvalidArgumentsError", stream.reply
    assert stream.reply.message.startswith("topicName:")
    assert _link(kernel).statistics().subscriptions == 0
    await client.close()


async def test_thousands_of_subscriptions_are_bounded_and_released_without_disturbing_others(
    kernel: Kernel, broker: Mosquitto
) -> None:
    neighbour = await connect(kernel, ANYTHING)
    steady = await neighbour.subscribe("SubscribeToIoTCore", {"topicName": "steady/+", "qos": "1"})
    assert steady.reply.error is None
    greedy = await connect(kernel, ANYTHING)
    replies = [
        (await greedy.subscribe("SubscribeToIoTCore", {"topicName": f"load/{index}", "qos": "1"})).reply
        for index in range(1100)
    ]
    refused = [reply for reply in replies if reply.error is not None]
    assert len(refused) == 1100 - 1024  # the IPC server's streams-per-connection limit
    assert all(reply.error == "ServiceError" and "1024 open streams" in reply.message for reply in refused)
    assert _link(kernel).statistics().subscriptions == 1025

    with broker.client("commander") as commander:
        await asyncio.to_thread(commander.publish, "load/7", b"to the greedy one", 1)
        await asyncio.to_thread(commander.publish, "steady/a", b"still here", 1)
        event = await steady.next_event()
        assert base64.b64decode(event["message"]["payload"]) == b"still here"
        await greedy.close()
        await eventually(
            lambda: _link(kernel).statistics().subscriptions == 1, what="the greedy client's release"
        )
        await asyncio.to_thread(commander.publish, "steady/b", b"and again", 1)
        event = await steady.next_event()
        assert event["message"]["topicName"] == "steady/b"
    await neighbour.close()


async def test_connection_status_events_follow_the_broker(kernel: Kernel, broker: Mosquitto) -> None:
    await eventually(lambda: _link(kernel).connected, what="the first connection")
    client = await connect(kernel, "test.NoPolicyNeeded")
    status = await client.subscribe("SubscribeToIoTCoreConnectionStatus", {})
    assert status.reply.error is None
    assert (await status.next_event()) == {"connectionStatusEvent": {"status": "CONNECTED"}}

    await asyncio.to_thread(broker.stop)
    assert (await status.next_event()) == {"connectionStatusEvent": {"status": "DISCONNECTED"}}
    await asyncio.to_thread(broker.start)
    assert (await status.next_event()) == {"connectionStatusEvent": {"status": "CONNECTED"}}
    await client.close()


async def _silent_subscriber(kernel: Kernel, topic_filter: str) -> asyncio.StreamWriter:
    """A component connection that subscribes, reads the response, and then never reads again."""
    reader, writer = await asyncio.open_unix_connection(kernel.paths.ipc_socket)
    token = kernel.tokens.issue(ANYTHING)
    connect_headers = {
        ":version": "0.1.0",
        ":message-type": MessageType.CONNECT,
        ":message-flags": 0,
        ":stream-id": 0,
    }
    writer.write(encode_message(Message(connect_headers, json.dumps({"authToken": token}).encode())))
    subscribe_headers = {
        ":content-type": "application/json",
        "service-model-type": "aws.greengrass#SubscribeToIoTCoreRequest",
        ":message-type": MessageType.APPLICATION_MESSAGE,
        ":message-flags": 0,
        ":stream-id": 1,
        "operation": "aws.greengrass#SubscribeToIoTCore",
    }
    writer.write(
        encode_message(
            Message(subscribe_headers, json.dumps({"topicName": topic_filter, "qos": "0"}).encode())
        )
    )
    decoder = MessageDecoder()
    received: list[Message] = []
    async with asyncio.timeout(15):
        while len(received) < 2:  # CONNECT_ACK, then the subscription's response
            received += decoder.feed(await reader.read(65536))
    assert received[1].headers["service-model-type"] == "aws.greengrass#SubscribeToIoTCoreResponse"
    return writer


async def test_a_subscriber_that_never_reads_costs_bounded_memory_and_delays_nobody(
    kernel: Kernel, broker: Mosquitto
) -> None:
    silent = await _silent_subscriber(kernel, "flood/#")
    neighbour = await connect(kernel, ANYTHING)
    steady = await neighbour.subscribe("SubscribeToIoTCore", {"topicName": "steady/+", "qos": "1"})
    chunk = b"x" * 16 * 1024
    with broker.client("flooder") as flooder:
        for _ in range(200):
            if kernel.server.statistics().events_dropped:
                break
            for _ in range(50):
                flooder.paho.publish("flood/data", chunk, qos=0)
            # Paced, so that the broker hands the flood on rather than dropping it for a slow client.
            await asyncio.sleep(0.02)
        assert kernel.server.statistics().events_dropped > 0
        await asyncio.to_thread(flooder.publish, "steady/now", b"after the flood", 1)
        event = await steady.next_event()
    assert base64.b64decode(event["message"]["payload"]) == b"after the flood"
    silent.close()
    await neighbour.close()

"""The IPC server against the unmodified awsiotsdk clients (v1 and v2), each in its own process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.waiting import eventually

from edgewise.runtime.ipc import (
    CallContext,
    EventStream,
    IpcServer,
    ResourceNotFoundError,
    TokenTable,
)

CLIENTS = Path(__file__).parent / "clients"
COMPONENT = "com.example.Hello"
OP = "aws.greengrass#"
CLIENT_DEADLINE_S = 60.0


class Services:
    """Test handlers standing in for the real IPC services; they record what the server gave them."""

    def __init__(self) -> None:
        self.contexts: list[CallContext] = []
        self.update_streams: list[EventStream] = []
        self.closed_update_streams = 0

    def register(self, server: IpcServer) -> None:
        server.register_unary(OP + "ListComponents", self.list_components)
        server.register_unary(OP + "GetComponentDetails", self.get_component_details)
        server.register_unary(OP + "UpdateState", self.update_state)
        server.register_unary(OP + "DeferComponentUpdate", self.defer_component_update)
        server.register_stream(
            OP + "SubscribeToComponentUpdates",
            self.subscribe_to_component_updates,
            event_shape=OP + "ComponentUpdatePolicyEvents",
        )
        server.register_stream(
            OP + "SubscribeToTopic", self.subscribe_to_topic, event_shape=OP + "SubscriptionResponseMessage"
        )

    async def list_components(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        self.contexts.append(context)
        component = {
            "componentName": COMPONENT,
            "version": "1.0.0",
            "state": "RUNNING",
            "configuration": {"greeting": "hi"},
        }
        return {"components": [component]}

    async def get_component_details(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        raise ResourceNotFoundError("Component", request["componentName"])

    async def update_state(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("a bug in a service")

    async def subscribe_to_component_updates(
        self, context: CallContext, request: dict[str, Any], stream: EventStream
    ) -> dict[str, Any]:
        # Sent before the handler returns: the server must hold it until the initial response is out.
        stream.send_nowait(_update_event("d1"))
        stream.on_close(self._update_stream_closed)
        self.update_streams.append(stream)
        return {}

    def _update_stream_closed(self) -> None:
        self.closed_update_streams += 1

    async def defer_component_update(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        for stream in self.update_streams:
            await stream.send(_update_event("d2"))
            assert stream.send_nowait(_update_event("d3"))
        return {}

    async def subscribe_to_topic(
        self, context: CallContext, request: dict[str, Any], stream: EventStream
    ) -> dict[str, Any]:
        for n in range(1, 6):
            stream.send_nowait({"jsonMessage": {"message": {"n": n}, "context": {"topic": "sensors/x"}}})
        await stream.close()
        return {}


def _update_event(deployment_id: str) -> dict[str, Any]:
    return {"preUpdateEvent": {"deploymentId": deployment_id, "isGgcRestarting": False}}


@pytest.fixture
async def served(socket_path: Path) -> AsyncIterator[tuple[IpcServer, Services, str]]:
    tokens = TokenTable()
    token = tokens.issue(COMPONENT)
    server = IpcServer(socket_path, authenticate=tokens.component_for)
    services = Services()
    services.register(server)
    await server.start()
    yield server, services, token
    await server.close()


async def run_client(script: str, socket_path: Path, token: str) -> list[dict[str, Any]]:
    env = dict(os.environ)
    env["AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"] = str(socket_path)
    env["SVCUID"] = token
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CLIENTS / script),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), CLIENT_DEADLINE_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode()
    return [json.loads(line) for line in stdout.decode().splitlines()]


def steps(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line.pop("step"): line for line in lines}


async def test_v2_client_calls_unary_streaming_and_failing_operations(
    served: tuple[IpcServer, Services, str], socket_path: Path
) -> None:
    server, services, token = served

    result = steps(await run_client("v2_component.py", socket_path, token))

    assert result["list"] == {
        "components": [
            {"name": COMPONENT, "version": "1.0.0", "state": "RUNNING", "configuration": {"greeting": "hi"}}
        ]
    }
    assert services.contexts[0].component == COMPONENT
    assert services.contexts[0].operation == OP + "ListComponents"
    assert result["details"] == {
        "error": "ResourceNotFoundError",
        "message": "Component 'com.example.Missing' not found",
        "resource_type": "Component",
        "resource_name": "com.example.Missing",
    }
    assert result["iotcore"] == {
        "error": "ServiceError",
        "message": "Operation aws.greengrass#PublishToIoTCore is not supported by Edgewise yet",
    }
    assert result["update_state"]["error"] == "ServiceError"
    assert "UpdateState" in result["update_state"]["message"]
    assert result["updates_subscribed"] == {"response": "SubscribeToComponentUpdatesResponse"}
    assert result["updates_events"] == {"received": True, "deployments": ["d1", "d2", "d3"]}
    assert result["updates_closed"] == {"closed": True}
    assert result["topic"] == {"closed_by_server": True, "messages": [1, 2, 3, 4, 5]}
    await eventually(lambda: services.closed_update_streams == 1)
    await eventually(lambda: server.statistics().connections == 0)
    statistics = server.statistics()
    assert statistics.streams == 0
    assert statistics.calls_in_flight == 0
    assert statistics.errors == 3


async def test_v1_client_receives_stream_events_in_order_then_the_server_close(
    served: tuple[IpcServer, Services, str], socket_path: Path
) -> None:
    _, _, token = served

    result = steps(await run_client("v1_component.py", socket_path, token))

    assert result["list"] == {"names": [COMPONENT]}
    assert result["topic"] == {"closed_by_server": True, "messages": [1, 2, 3, 4, 5]}


async def test_client_with_an_unknown_token_cannot_connect(
    served: tuple[IpcServer, Services, str], socket_path: Path
) -> None:
    server, _, _ = served

    (outcome,) = await run_client("connect_only.py", socket_path, "NOTATOKEN0000000")

    assert outcome["connected"] is False
    assert server.statistics().connections_accepted == 1


async def test_client_with_its_token_connects(
    served: tuple[IpcServer, Services, str], socket_path: Path
) -> None:
    _, _, token = served

    (outcome,) = await run_client("connect_only.py", socket_path, token)

    assert outcome == {"connected": True}


async def open_idle_sockets(
    socket_path: Path, count: int
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """Connections that never send anything, as a local user blocking the handshake slots would open."""
    return [await asyncio.open_unix_connection(socket_path) for _ in range(count)]


async def test_v2_client_is_refused_while_idle_sockets_fill_the_unauthenticated_limit(
    socket_path: Path,
) -> None:
    tokens = TokenTable()
    server = IpcServer(
        socket_path,
        authenticate=tokens.component_for,
        max_unauthenticated_connections=4,
        handshake_timeout=60.0,
    )
    await server.start()
    idle = await open_idle_sockets(socket_path, 4)
    await eventually(lambda: server.statistics().unauthenticated == 4)

    (outcome,) = await run_client("connect_only.py", socket_path, tokens.issue(COMPONENT))

    assert outcome == {"connected": False, "error": "AwsCrtError"}
    assert server.statistics().connections_refused == 1
    for _, writer in idle:
        writer.close()
    await server.close()


async def test_v2_client_connects_once_the_handshake_timeout_has_freed_the_slots_of_idle_sockets(
    socket_path: Path,
) -> None:
    tokens = TokenTable()
    server = IpcServer(
        socket_path,
        authenticate=tokens.component_for,
        max_unauthenticated_connections=4,
        handshake_timeout=0.5,
    )
    Services().register(server)
    await server.start()
    idle = await open_idle_sockets(socket_path, 4)
    await eventually(lambda: server.statistics().connections_dropped == 4, what="the idle sockets timing out")

    result = steps(await run_client("v2_component.py", socket_path, tokens.issue(COMPONENT)))

    assert result["list"]["components"][0]["name"] == COMPONENT
    for reader, writer in idle:
        assert await reader.read() == b""  # closed by the server, not by us
        writer.close()
    await server.close()

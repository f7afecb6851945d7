"""An in-process runtime and an async eventstream-RPC client for the IPC service tests.

The runtime is the real :class:`Kernel` on a short temporary root, running real component processes; the
client speaks the wire protocol over the real socket, authenticated with a component's own token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgewise.runtime.deployment import DeploymentRecord, parse_local_deployment
from edgewise.runtime.ipc.eventstream import Message, MessageDecoder, MessageFlag, MessageType, encode_message
from edgewise.runtime.kernel import Kernel

OP = "aws.greengrass#"
DEADLINE_S = 15.0


@dataclass(frozen=True)
class Reply:
    """The first answer on a stream: a response or an error shape."""

    shape: str
    body: Any

    @property
    def error(self) -> str | None:
        """The error shape name (``UnauthorizedError``), or None for a response."""
        return self.shape.removeprefix(OP) if self.shape.endswith("Error") else None

    @property
    def message(self) -> str:
        return str(self.body.get("message", "")) if isinstance(self.body, dict) else ""


class Subscription:
    """One streaming operation: its first reply, then its events."""

    def __init__(self, client: ComponentClient, stream_id: int, reply: Reply) -> None:
        self._client = client
        self.stream_id = stream_id
        self.reply = reply

    async def next_event(self, *, deadline_s: float = DEADLINE_S) -> Any:
        async with asyncio.timeout(deadline_s):
            message = await self._client.queue(self.stream_id).get()
        return json.loads(message.payload) if message.payload else None

    def received(self) -> list[Any]:
        """Events already received and not yet taken."""
        queue = self._client.queue(self.stream_id)
        events = []
        while not queue.empty():
            events.append(json.loads(queue.get_nowait().payload))
        return events

    def close(self) -> None:
        self._client.terminate(self.stream_id)


class ComponentClient:
    """An IPC connection authenticated as one component."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = MessageDecoder()
        self._queues: dict[int, asyncio.Queue[Message]] = {}
        self._next_stream = 1
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, socket_path: Path, token: str) -> ComponentClient:
        reader, writer = await asyncio.open_unix_connection(socket_path)
        client = cls(reader, writer)
        client._send(
            Message(
                {
                    ":version": "0.1.0",
                    ":message-type": MessageType.CONNECT,
                    ":message-flags": 0,
                    ":stream-id": 0,
                },
                json.dumps({"authToken": token}).encode(),
            )
        )
        client._task = asyncio.get_running_loop().create_task(client._read())
        async with asyncio.timeout(DEADLINE_S):
            ack = await client.queue(0).get()
        if not int(ack.headers[":message-flags"]) & MessageFlag.CONNECTION_ACCEPTED:
            raise ConnectionError("the runtime refused the token")
        return client

    def queue(self, stream_id: int) -> asyncio.Queue[Message]:
        return self._queues.setdefault(stream_id, asyncio.Queue())

    async def call(self, operation: str, request: Mapping[str, Any] | None = None) -> Reply:
        _, reply = await self._open(operation, request)
        return reply

    async def subscribe(self, operation: str, request: Mapping[str, Any] | None = None) -> Subscription:
        stream_id, reply = await self._open(operation, request)
        return Subscription(self, stream_id, reply)

    def terminate(self, stream_id: int) -> None:
        self._send(
            Message(
                {
                    ":message-type": MessageType.APPLICATION_MESSAGE,
                    ":message-flags": MessageFlag.TERMINATE_STREAM,
                    ":stream-id": stream_id,
                }
            )
        )

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _open(self, operation: str, request: Mapping[str, Any] | None) -> tuple[int, Reply]:
        stream_id = self._next_stream
        self._next_stream += 1
        self._send(
            Message(
                {
                    ":content-type": "application/json",
                    "service-model-type": f"{OP}{operation}Request",
                    ":message-type": MessageType.APPLICATION_MESSAGE,
                    ":message-flags": 0,
                    ":stream-id": stream_id,
                    "operation": OP + operation,
                },
                json.dumps(request or {}).encode(),
            )
        )
        async with asyncio.timeout(DEADLINE_S):
            message = await self.queue(stream_id).get()
        return stream_id, Reply(
            str(message.headers.get("service-model-type", "")), json.loads(message.payload)
        )

    def _send(self, message: Message) -> None:
        self._writer.write(encode_message(message))

    async def _read(self) -> None:
        while data := await self._reader.read(65536):
            for message in self._decoder.feed(data):
                self.queue(int(message.headers[":stream-id"])).put_nowait(message)


async def connect(kernel: Kernel, component: str) -> ComponentClient:
    """A connection authenticated with ``component``'s token."""
    return await ComponentClient.open(kernel.paths.ipc_socket, kernel.tokens.issue(component))


def submit(kernel: Kernel, recipes: Path, roots: Mapping[str, str], **request: Any) -> str:
    """Queue a local deployment; returns its id."""
    document = parse_local_deployment(
        {"recipeDirectoryPath": str(recipes), "rootComponentVersionsToAdd": dict(roots), **request}
    )
    return kernel.deployments.submit(document).deployment_id


async def wait_deployment(kernel: Kernel, deployment_id: str) -> DeploymentRecord:
    """The deployment's record once it has ended."""
    async with asyncio.timeout(60):
        record = await kernel.deployments.wait_final(deployment_id)
    assert record is not None, f"no deployment {deployment_id}"
    return record


async def deploy(kernel: Kernel, recipes: Path, roots: Mapping[str, str], **request: Any) -> DeploymentRecord:
    """Deploy and wait for the outcome."""
    return await wait_deployment(kernel, submit(kernel, recipes, roots, **request))

"""A small blocking eventstream-RPC client for the ``edgewise`` CLI.

Components use the real ``awsiotsdk`` client; the CLI uses this one so that a device needs nothing beyond
``edgewise``. It supports unary operations only, one call at a time.

Usage::

    with IpcClient(socket_path, token) as client:
        components = client.call("aws.greengrass#ListComponents", {})["components"]
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from edgewise.runtime.ipc.errors import IpcError
from edgewise.runtime.ipc.eventstream import (
    CONTENT_TYPE,
    CONTENT_TYPE_JSON,
    MESSAGE_FLAGS,
    MESSAGE_TYPE,
    OPERATION,
    PROTOCOL_VERSION,
    SERVICE_MODEL_TYPE,
    STREAM_ID,
    VERSION,
    Message,
    MessageDecoder,
    MessageFlag,
    MessageType,
    encode_message,
)


class IpcCallError(IpcError):
    """The runtime answered an IPC call with an error; ``error_code`` is the Greengrass error shape name."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(f"{error_code}: {message}")
        self.error_code = error_code
        self.message = message


class IpcClient:
    """A blocking connection to a runtime's IPC socket. Not thread-safe."""

    def __init__(self, socket_path: Path, token: str, *, timeout: float = 30.0) -> None:
        self._socket_path = socket_path
        self._token = token
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._decoder = MessageDecoder()
        self._pending: list[Message] = []
        self._stream_id = 0

    def __enter__(self) -> IpcClient:
        self.connect()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Connect and authenticate. Raises OSError when the runtime is not there, IpcCallError when refused."""
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.settimeout(self._timeout)
            self._sock.connect(str(self._socket_path))
            self._send(
                Message(
                    {
                        VERSION: PROTOCOL_VERSION,
                        MESSAGE_TYPE: MessageType.CONNECT,
                        MESSAGE_FLAGS: 0,
                        STREAM_ID: 0,
                    },
                    json.dumps({"authToken": self._token}).encode(),
                )
            )
            ack = self._receive()
        except BaseException:
            # A runtime that is not there (or went away) must not cost the caller a file descriptor.
            self.close()
            raise
        flags = int(ack.headers.get(MESSAGE_FLAGS, 0))
        if (
            ack.headers.get(MESSAGE_TYPE) != MessageType.CONNECT_ACK
            or not flags & MessageFlag.CONNECTION_ACCEPTED
        ):
            self.close()
            raise IpcCallError("ConnectionRefused", "the runtime refused the CLI token; are you root?")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def call(self, operation: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """Call a unary operation and return the response JSON.

        Raises:
            IpcCallError: the runtime answered with an error shape.
        """
        self._stream_id += 1
        self._send(
            Message(
                {
                    CONTENT_TYPE: CONTENT_TYPE_JSON,
                    SERVICE_MODEL_TYPE: f"{operation}Request",
                    MESSAGE_TYPE: MessageType.APPLICATION_MESSAGE,
                    MESSAGE_FLAGS: 0,
                    STREAM_ID: self._stream_id,
                    OPERATION: operation,
                },
                json.dumps(request).encode(),
            )
        )
        while True:
            reply = self._receive()
            if reply.headers.get(STREAM_ID) == self._stream_id:
                break
        kind = reply.headers.get(MESSAGE_TYPE)
        shape = str(reply.headers.get(SERVICE_MODEL_TYPE, ""))
        if kind == MessageType.APPLICATION_ERROR:
            try:
                body = json.loads(reply.payload)
                message = str(body.get("message") or body.get("_message") or body)
            except ValueError:
                message = reply.payload.decode("utf-8", "replace")
            raise IpcCallError(shape.rpartition("#")[2] or "InternalServerError", message)
        if kind != MessageType.APPLICATION_MESSAGE:
            raise IpcCallError("ProtocolError", f"unexpected message type {kind!r}")
        result = json.loads(reply.payload or b"{}")
        if not isinstance(result, dict):
            raise IpcCallError("ProtocolError", "the response is not a JSON object")
        return result

    def _send(self, message: Message) -> None:
        assert self._sock is not None, "not connected"
        self._sock.sendall(encode_message(message))

    def _receive(self) -> Message:
        assert self._sock is not None, "not connected"
        while not self._pending:
            data = self._sock.recv(65536)
            if not data:
                raise ConnectionError("the runtime closed the IPC connection")
            self._pending.extend(self._decoder.feed(data))
        return self._pending.pop(0)

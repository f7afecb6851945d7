"""The stream manager's TCP server: the SDK's handshake, then concurrent requests against a stream store.

Each connection must first complete the handshake ``StreamManagerClient`` performs: the connect version byte,
then a ``Connect`` frame whose protocol version this server speaks and whose auth token ``authenticate`` maps
to a component name. Any failure is answered with a ``ConnectResponse`` carrying the SDK's status code
(``UnsupportedConnectVersion``, ``UnexpectedOperation``, ``InvalidRequest``, ``UnsupportedProtocolVersion``,
``InvalidProtocolVersion``, ``Unauthorized``), and the connection is closed.

After it, every frame is one request, served in its own task so that a blocking read never holds up the
other requests of its connection; responses carry the request id and may come back in any order. A request
the server cannot decode but whose id it knows is answered with ``InvalidRequest`` (``UnknownOperation`` for
an operation it does not serve, ``RequestPayloadTooLarge`` for a frame over the size limit); bytes that do not
even carry a request id end that connection, never another one.

Usage::

    async with StreamServer(store, authenticate=tokens.get, port=8088) as server:
        await server.serve_forever()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Protocol, Self

from edgewise.runtime.streams.definition import StoredMessage, StreamDefinition, StreamInfo
from edgewise.runtime.streams.errors import StreamError
from edgewise.runtime.streams.wire import (
    CONNECT_VERSION,
    HEADER_SIZE,
    PROTOCOL_VERSION,
    SERVER_VERSION,
    SUPPORTED_PROTOCOL_VERSIONS,
    AppendMessageRequest,
    ConnectRequest,
    ConnectResponse,
    CreateStreamRequest,
    DeleteStreamRequest,
    DescribeStreamRequest,
    Frame,
    ListStreamsRequest,
    Operation,
    ReadMessagesRequest,
    Request,
    Response,
    ResponseStatus,
    UpdateStreamRequest,
    WireFormatError,
    decode_connect_request,
    decode_request,
    encode_connect_response,
    encode_response,
    frame_payload_size,
    is_protocol_version,
    message_body,
    request_id_prefix,
    stream_info_body,
)

logger = logging.getLogger(__name__)

#: Port the SDK connects to when ``STREAM_MANAGER_SERVER_PORT`` is not set.
DEFAULT_PORT: Final = 8088
#: Largest request payload accepted by default. The SDK's own ceiling is 1 GiB, far more than a device should
#: buffer for one request; larger requests are answered with ``RequestPayloadTooLarge``.
DEFAULT_MAX_PAYLOAD_SIZE: Final = 16 * 1024 * 1024
#: Requests one connection may have in flight before the server stops reading from it.
DEFAULT_MAX_PENDING_REQUESTS: Final = 64
# How much of an oversized payload is kept to find its request id; the SDK writes ``requestId`` first.
_REQUEST_ID_PREFIX_SIZE: Final = 512
_DRAIN_CHUNK_SIZE: Final = 64 * 1024

#: Maps a client's auth token (None when it sent none) to its component name, or None to refuse it.
Authenticate = Callable[[str | None], str | None]


class StreamBackend(Protocol):
    """The stream store operations the server needs (:class:`~edgewise.runtime.streams.store.StreamStore`)."""

    async def create(self, definition: StreamDefinition) -> None: ...

    async def update(self, definition: StreamDefinition) -> None: ...

    async def delete(self, name: str) -> None: ...

    def describe(self, name: str) -> StreamInfo: ...

    def names(self) -> list[str]: ...

    async def append(self, name: str, payload: bytes) -> int: ...

    async def read(
        self,
        name: str,
        *,
        desired_start_sequence_number: int = 0,
        min_message_count: int = 1,
        max_message_count: int | None = None,
        read_timeout_millis: int = 0,
    ) -> list[StoredMessage]: ...


class _HandshakeRefused(Exception):
    """A handshake that fails with ``status``; the connection is answered and closed."""

    def __init__(self, status: ResponseStatus, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.request_id = request_id


class StreamServer:
    """Serves the stream manager protocol on TCP for one stream store.

    Must be used from the event loop thread. ``start`` binds (port 0 picks a free port, see :attr:`port`), or
    takes over ``sock``, a listening socket bound beforehand; ``close`` stops accepting, ends every connection and
    cancels their pending requests.
    """

    def __init__(
        self,
        store: StreamBackend,
        *,
        authenticate: Authenticate,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        max_payload_size: int = DEFAULT_MAX_PAYLOAD_SIZE,
        max_pending_requests: int = DEFAULT_MAX_PENDING_REQUESTS,
        sock: socket.socket | None = None,
    ) -> None:
        if max_payload_size < 1:
            raise ValueError(f"max_payload_size must be positive, got {max_payload_size}")
        if max_pending_requests < 1:
            raise ValueError(f"max_pending_requests must be positive, got {max_pending_requests}")
        self._store = store
        self._authenticate = authenticate
        self._host = host
        self._port = port
        self._sock = sock
        self._max_payload_size = max_payload_size
        self._max_pending_requests = max_pending_requests
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The port the server listens on (the bound one when started with port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("The stream server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        """Binds and starts accepting connections; returns once the socket listens."""
        if self._server is not None:
            raise RuntimeError("The stream server is already started")
        if self._sock is not None:
            self._server = await asyncio.start_server(self._accept, sock=self._sock)
        else:
            self._server = await asyncio.start_server(self._accept, self._host, self._port)
        logger.info("Stream manager listening on %s:%d", self._host, self.port)

    async def serve_forever(self) -> None:
        """Waits until the server is closed or the calling task is cancelled."""
        if self._server is None:
            raise RuntimeError("The stream server is not started")
        await self._server.serve_forever()

    async def close(self) -> None:
        """Stops accepting, closes every connection and waits for their tasks to end."""
        if self._server is not None:
            self._server.close()
        connections = list(self._connections)
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # asyncio runs client callbacks as tasks
        self._connections.add(task)
        peer = writer.get_extra_info("peername")
        try:
            await _Connection(self, reader, writer).serve()
        except _ProtocolViolation as exc:
            logger.warning("stream-connection-closed", extra={"peer": peer, "reason": str(exc)})
        except (_HandshakeRefused, ConnectionError, asyncio.IncompleteReadError) as exc:
            # Refusals are logged where they are sent; the rest is a client that went away.
            logger.debug("Stream manager connection from %s ended: %r", peer, exc)
        except Exception:
            logger.exception("Stream manager connection from %s failed", peer)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class _ProtocolViolation(Exception):
    """Bytes after the handshake that cannot be answered (no request id); the connection is closed."""


def _response_operation(operation: int) -> Operation:
    """The operation of the answer to a request frame whose operation byte is ``operation``."""
    try:
        return Operation(operation).response
    except ValueError:
        return Operation.UNKNOWN_OPERATION_ERROR


def _status_of(error: StreamError) -> ResponseStatus:
    try:
        return ResponseStatus[error.status]
    except KeyError:
        return ResponseStatus.UnknownFailure


class _Connection:
    """One client connection: the handshake, then a task per request."""

    def __init__(
        self, server: StreamServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._server = server
        self._store = server._store
        self._reader = reader
        self._writer = writer
        self._component = ""

    async def serve(self) -> None:
        try:
            request, protocol_version, component = await self._handshake()
        except _HandshakeRefused as refusal:
            refused = ConnectResponse(
                request_id=refusal.request_id, status=refusal.status, error_message=refusal.message
            )
            await self._send(CONNECT_VERSION.to_bytes(1, "big") + encode_connect_response(refused))
            logger.warning(
                "stream-client-refused", extra={"status": refusal.status.name, "reason": refusal.message}
            )
            raise
        self._component = component
        accepted = ConnectResponse(
            request_id=request.request_id,
            status=ResponseStatus.Success,
            protocol_version=protocol_version,
            supported_protocol_versions=SUPPORTED_PROTOCOL_VERSIONS,
            server_version=SERVER_VERSION,
            client_identifier=component,
        )
        await self._send(CONNECT_VERSION.to_bytes(1, "big") + encode_connect_response(accepted))
        logger.info(
            "stream-client-connected",
            extra={
                "component": component,
                "protocol_version": protocol_version,
                "sdk_version": request.sdk_version,
            },
        )
        await self._serve_requests()

    async def _handshake(self) -> tuple[ConnectRequest, str, str]:
        """The client's connect request, the protocol version to speak and the client's component name."""
        version = (await self._reader.readexactly(1))[0]
        if version != CONNECT_VERSION:
            raise _HandshakeRefused(
                ResponseStatus.UnsupportedConnectVersion, f"Connect version {version} is not supported"
            )
        header = await self._reader.readexactly(HEADER_SIZE)
        try:
            size = frame_payload_size(header, max_payload_size=self._server._max_payload_size)
        except WireFormatError as exc:
            raise _HandshakeRefused(exc.status, str(exc)) from exc
        payload = await self._reader.readexactly(size)
        if header[4] != Operation.CONNECT:
            raise _HandshakeRefused(
                ResponseStatus.UnexpectedOperation,
                f"Expected a Connect request first, got operation {header[4]}",
            )
        try:
            request = decode_connect_request(payload)
        except WireFormatError as exc:
            raise _HandshakeRefused(
                ResponseStatus.InvalidRequest, str(exc), request_id=exc.request_id
            ) from exc
        protocol_version = _negotiate(request)
        component = self._server._authenticate(request.auth_token)
        if component is None:
            raise _HandshakeRefused(
                ResponseStatus.Unauthorized,
                "The authorization token is not valid",
                request_id=request.request_id,
            )
        return request, protocol_version, component

    async def _serve_requests(self) -> None:
        slots = asyncio.Semaphore(self._server._max_pending_requests)
        pending: set[asyncio.Task[None]] = set()

        def finished(task: asyncio.Task[None]) -> None:
            pending.discard(task)
            slots.release()

        try:
            while True:
                # Bounds memory per connection: a client that floods requests waits for their answers.
                await slots.acquire()
                request = await self._next_request()
                if request is None:
                    slots.release()
                    continue
                task = asyncio.create_task(self._serve(request))
                pending.add(task)
                task.add_done_callback(finished)
        finally:
            # The client is gone or the server closes: nobody is left to answer.
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _next_request(self) -> Request | None:
        """The next request; None when the frame was not a valid request and has been answered.

        Raises:
            asyncio.IncompleteReadError: The client closed the connection, possibly in the middle of a frame.
            _ProtocolViolation: A frame that cannot be answered.
        """
        header = await self._reader.readexactly(HEADER_SIZE)
        try:
            size = frame_payload_size(header, max_payload_size=self._server._max_payload_size)
        except WireFormatError as exc:
            if exc.status is not ResponseStatus.RequestPayloadTooLarge:
                raise _ProtocolViolation(str(exc)) from exc
            await self._skip_oversized(header, exc)
            return None
        frame = Frame(operation=header[4], payload=await self._reader.readexactly(size))
        try:
            return decode_request(frame)
        except WireFormatError as exc:
            if exc.request_id is None:
                raise _ProtocolViolation(str(exc)) from exc
            logger.warning("stream-request-invalid", extra={"component": self._component, "reason": str(exc)})
            await self._answer(
                Response(_response_operation(frame.operation), exc.request_id, exc.status, str(exc))
            )
            return None

    async def _skip_oversized(self, header: bytes, error: WireFormatError) -> None:
        """Reads past an oversized frame without keeping it, and answers it when its request id is known."""
        remaining = int.from_bytes(header[:4], "big", signed=True) - 1
        prefix = await self._reader.readexactly(min(remaining, _REQUEST_ID_PREFIX_SIZE))
        remaining -= len(prefix)
        request_id = request_id_prefix(prefix)
        if request_id is None:
            raise _ProtocolViolation(f"{error}, and it carries no request id to answer")
        while remaining:
            chunk = await self._reader.read(min(remaining, _DRAIN_CHUNK_SIZE))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(chunk)
        logger.warning("stream-request-too-large", extra={"component": self._component, "reason": str(error)})
        await self._answer(Response(_response_operation(header[4]), request_id, error.status, str(error)))

    async def _serve(self, request: Request) -> None:
        operation = _RESPONSE_OPERATIONS[type(request)]
        try:
            body = await self._execute(request)
        except StreamError as exc:
            response = Response(operation, request.request_id, _status_of(exc), str(exc))
        except Exception:
            logger.exception(
                "Stream manager failed to serve %s for %s", type(request).__name__, self._component
            )
            response = Response(
                operation,
                request.request_id,
                ResponseStatus.UnknownFailure,
                f"The stream manager failed to serve {operation.name}; see its log",
            )
        else:
            response = Response(operation, request.request_id, ResponseStatus.Success, None, body)
        await self._answer(response)

    async def _execute(self, request: Request) -> dict[str, Any]:
        """Carries out ``request`` on the store; returns the response's own fields."""
        store = self._store
        match request:
            # Appends first: they are nearly every request a busy client sends.
            case AppendMessageRequest(name=name, payload=payload):
                return {"sequenceNumber": await store.append(name, payload)}
            case CreateStreamRequest(definition=definition):
                await store.create(definition)
            case UpdateStreamRequest(definition=definition):
                await store.update(definition)
            case DeleteStreamRequest(name=name):
                await store.delete(name)
            case DescribeStreamRequest(name=name):
                return {"messageStreamInfo": stream_info_body(store.describe(name))}
            case ListStreamsRequest():
                return {"streams": store.names()}
            case ReadMessagesRequest(stream_name=name, options=options):
                messages = await store.read(
                    name,
                    desired_start_sequence_number=options.desired_start_sequence_number,
                    min_message_count=options.min_message_count,
                    max_message_count=options.max_message_count,
                    read_timeout_millis=options.read_timeout_millis,
                )
                return {"messages": [message_body(message) for message in messages]}
        return {}

    async def _answer(self, response: Response) -> None:
        try:
            data = encode_response(response)
        except WireFormatError as exc:
            data = encode_response(Response(response.operation, response.request_id, exc.status, str(exc)))
        await self._send(data)

    async def _send(self, data: bytes) -> None:
        # One write per frame: asyncio queues whole writes, so concurrent answers never interleave.
        self._writer.write(data)
        await self._writer.drain()


#: The operation that answers each request type, looked up once rather than per request.
_RESPONSE_OPERATIONS: Final[dict[type, Operation]] = {
    CreateStreamRequest: Operation.CREATE_MESSAGE_STREAM.response,
    UpdateStreamRequest: Operation.UPDATE_MESSAGE_STREAM.response,
    DeleteStreamRequest: Operation.DELETE_MESSAGE_STREAM.response,
    DescribeStreamRequest: Operation.DESCRIBE_MESSAGE_STREAM.response,
    ListStreamsRequest: Operation.LIST_STREAMS.response,
    AppendMessageRequest: Operation.APPEND_MESSAGE.response,
    ReadMessagesRequest: Operation.READ_MESSAGES.response,
}


def _negotiate(request: ConnectRequest) -> str:
    """The protocol version to speak: the client's own if supported, else the newest one both know.

    Raises:
        _HandshakeRefused: No version in common (``UnsupportedProtocolVersion``), or a malformed one
            (``InvalidProtocolVersion``).
    """
    if not is_protocol_version(request.protocol_version):
        raise _HandshakeRefused(
            ResponseStatus.InvalidProtocolVersion,
            f"Protocol version {request.protocol_version!r} is not of the form major.minor.patch",
            request_id=request.request_id,
        )
    if request.protocol_version in SUPPORTED_PROTOCOL_VERSIONS:
        return request.protocol_version
    for version in SUPPORTED_PROTOCOL_VERSIONS:
        if version in request.other_supported_protocol_versions:
            return version
    raise _HandshakeRefused(
        ResponseStatus.UnsupportedProtocolVersion,
        f"Protocol version {request.protocol_version!r} is not supported; this server speaks "
        f"{', '.join(SUPPORTED_PROTOCOL_VERSIONS)} (natively {PROTOCOL_VERSION})",
        request_id=request.request_id,
    )

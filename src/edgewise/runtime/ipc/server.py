"""The IPC server: Unix socket, CONNECT handshake and eventstream-RPC streams, the protocol of Greengrass IPC.

Services register one handler per operation (``aws.greengrass#X``). A unary handler returns the response
object; a streaming handler returns the initial response and pushes events through its
:class:`EventStream`, which the server holds back until the initial response is on the wire.

Each connection is an asyncio protocol with its own decoder. Every call of an ``async`` handler runs in its
own task so a slow handler does not hold up pings or other calls; at most ``max_calls_per_connection`` run at
once, beyond that the server stops reading from that client. A handler registered with
:meth:`IpcServer.register_unary_nowait` never waits, so it runs at once as its request is decoded, with no
task (PublishToTopic: a task per message was a tenth of the runtime's time in a flat-out publish). Output goes to the transport's buffer, the frames written
during one turn of the event loop in one send (at once when they reach the high-water mark): above that
mark the server stops reading the client's requests and queues stream events per stream (a full queue drops
events, see :meth:`EventStream.send_nowait`), and a reply that would push the buffer past
``max_buffered_bytes`` drops the connection. A client that never reads therefore costs bounded memory and
never slows other connections. A protocol violation or a malformed frame closes only that connection.

The socket is open to every local user, so a connection that has not authenticated yet is held to much less:
its first message (the CONNECT, about 120 bytes from the SDKs) may be at most ``max_connect_message_size``,
checked on the prelude before anything is buffered; it must authenticate within ``handshake_timeout``
seconds; and at most ``max_unauthenticated_connections`` wait to authenticate at once, further ones being
closed as soon as they are accepted. Unauthenticated connections therefore cost at most about
``max_unauthenticated_connections * max_connect_message_size`` bytes of buffers whatever they send, and each
slot frees itself within the handshake timeout.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import os
import stat
import struct
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias, cast

from edgewise.runtime.ipc import jsoncodec
from edgewise.runtime.ipc.catalog import OPERATIONS, response_shape
from edgewise.runtime.ipc.errors import (
    FrameError,
    InvalidArgumentsError,
    IpcError,
    ModeledError,
    ServiceError,
)
from edgewise.runtime.ipc.eventstream import (
    CONTENT_TYPE,
    CONTENT_TYPE_JSON,
    CONTENT_TYPE_TEXT,
    DEFAULT_MAX_MESSAGE_SIZE,
    MESSAGE_FLAGS,
    MESSAGE_OVERHEAD,
    MESSAGE_TYPE,
    OPERATION,
    PROTOCOL_VERSION,
    SERVICE_MODEL_TYPE,
    STREAM_ID,
    VERSION,
    FrameTooLargeError,
    HeaderValue,
    Message,
    MessageDecoder,
    MessageFlag,
    MessageType,
    encode_frame,
    encode_headers,
    encode_message,
)

logger = logging.getLogger(__name__)

_SOCKET_PATH_LIMIT = 107  # sun_path is 108 bytes including the terminating NUL
_PROTOCOL_ERROR_GRACE_S = 2.0  # time a closing connection gets to flush its PROTOCOL_ERROR
# Components usually connect together right after the runtime starts them; a full backlog makes their
# connect() fail outright on a Unix socket.
_LISTEN_BACKLOG = 1024
#: A CONNECT from the SDKs is about 120 bytes (a token of 16 to 64 characters); a few KB leaves room for
#: longer tokens and extra headers while keeping what an unauthenticated connection can make us hold small.
DEFAULT_MAX_CONNECT_MESSAGE_SIZE = 8 * 1024
#: The SDKs send CONNECT as soon as the socket is connected and give up after 10 s without CONNECT_ACK.
DEFAULT_HANDSHAKE_TIMEOUT = 5.0
#: Above the number of components that connect at once when a runtime starts them all together.
DEFAULT_MAX_UNAUTHENTICATED_CONNECTIONS = 256
# Refused connections come as fast as a client can open them: one log line at most this often.
_REFUSAL_LOG_INTERVAL_S = 10.0
# Only the stream id differs between the replies of one operation, so the rest of the headers is kept.
_rpc_header_prefixes: dict[tuple[int, int, str], bytes] = {}
_RPC_HEADER_PREFIXES_LIMIT = 1024
_STREAM_ID_HEADER = encode_headers({STREAM_ID: 0})[:-4]  # name and type, without the int32 value
_INT32 = struct.Struct(">i")
_EMPTY_OBJECT = b"{}"


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who called which operation, on which connection and stream."""

    component: str
    operation: str
    connection_id: int
    stream_id: int


@dataclass(frozen=True, slots=True)
class IpcStatistics:
    """A snapshot of the server's counters."""

    connections: int  #: open connections, authenticated or not
    connections_accepted: int  #: connections accepted since start
    connections_dropped: int  #: closed by the server for a violation, an overflow or a handshake timeout
    connections_refused: int  #: connections closed at once because too many were waiting to authenticate
    unauthenticated: int  #: open connections still waiting to authenticate
    bytes_buffered: int  #: received bytes held for messages not complete yet, all connections together
    streams: int  #: open streaming operations
    calls_in_flight: int  #: handlers running
    messages_in: int
    messages_out: int
    errors: int  #: error replies sent
    events_dropped: int  #: stream events discarded because a subscriber's queue was full


class _Counters:
    __slots__ = (
        "accepted",
        "calls",
        "dropped",
        "errors",
        "events_dropped",
        "messages_in",
        "messages_out",
        "refused",
        "streams",
    )

    def __init__(self) -> None:
        self.accepted = self.calls = self.dropped = self.errors = self.events_dropped = self.refused = 0
        self.messages_in = self.messages_out = self.streams = 0


class EventStream:
    """The server side of one streaming operation: events go out in the order they are sent.

    Events sent before the handler returns are queued and follow the initial response. Must be used from
    the event loop thread.
    """

    def __init__(self, connection: _Connection, stream_id: int, event_shape: str, max_queued: int) -> None:
        self._connection = connection
        self._headers_block = _rpc_headers(
            MessageType.APPLICATION_MESSAGE, MessageFlag.NONE, event_shape, stream_id
        )
        self._stream_id = stream_id
        self._max_queued = max_queued
        self._queue: collections.deque[bytes] = collections.deque()
        self._ready = False  # the initial response has been written
        self._closed = False
        self._peer_gone = False  # the client terminated the stream or disconnected
        self._callbacks: list[Callable[[], None]] = []
        self._space: asyncio.Event | None = None

    @property
    def closed(self) -> bool:
        """True once the stream has ended, whichever side ended it."""
        return self._closed

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once when the stream ends (client close, disconnect, :meth:`close`, failure).

        On a stream that has already ended, ``callback`` runs immediately.
        """
        if self._closed:
            callback()
        else:
            self._callbacks.append(callback)

    def send_nowait(self, event: Mapping[str, Any]) -> bool:
        """Queue ``event``; False when the stream has ended or this subscriber's queue is full."""
        if self._closed:
            return False
        return self._push(encode_frame(self._headers_block, _json_bytes(event)))

    def send_encoded_nowait(self, payload: bytes) -> bool:
        """Like :meth:`send_nowait` for an event already encoded as JSON (encode once, fan out to many)."""
        if self._closed:
            return False
        return self._push(encode_frame(self._headers_block, payload))

    async def send(self, event: Mapping[str, Any], *, max_wait: float = 5.0) -> None:
        """Queue ``event``, waiting up to ``max_wait`` seconds for room; after that the event is dropped.

        Does nothing once the stream has ended. Waiting never holds up other connections.
        """
        if self._closed:
            return
        frame = encode_frame(self._headers_block, _json_bytes(event))
        try:
            async with asyncio.timeout(max_wait):
                while len(self._queue) >= self._max_queued and not self._closed:
                    if self._space is None:
                        self._space = asyncio.Event()
                    self._space.clear()
                    await self._space.wait()
        except TimeoutError:
            self._connection.counters.events_dropped += 1
            logger.warning(
                "IPC stream %d of %s: dropped an event after waiting %.1fs for the client to read",
                self._stream_id,
                self._connection.describe(),
                max_wait,
            )
            return
        if not self._closed:
            self._push(frame)

    async def close(self) -> None:
        """End the stream from the server side: the client gets TERMINATE_STREAM after queued events."""
        if self._closed:
            return
        self._connection.forget_stream(self._stream_id)
        terminate = encode_message(
            Message(
                {
                    MESSAGE_TYPE: MessageType.APPLICATION_MESSAGE,
                    MESSAGE_FLAGS: MessageFlag.TERMINATE_STREAM,
                    STREAM_ID: self._stream_id,
                }
            )
        )
        # Queued even past the limit: the client must learn that the stream ended.
        self._enqueue(terminate)
        self._finish()
        if self._ready:
            self._flush()

    def _push(self, frame: bytes) -> bool:
        if self._ready and not self._queue and not self._connection.writing_paused:
            return self._connection.write(frame)
        connection = self._connection
        if len(self._queue) >= self._max_queued or (
            connection.queued_bytes + len(frame) > connection.server.max_queued_bytes
        ):
            connection.counters.events_dropped += 1
            return False
        self._enqueue(frame)
        if self._ready:
            self._connection.backlog(self)
        return True

    def _enqueue(self, frame: bytes) -> None:
        self._queue.append(frame)
        self._connection.queued_bytes += len(frame)

    def _start(self) -> None:
        """The initial response is written: let queued events follow."""
        self._ready = True
        if self._queue:
            self._flush()

    def _flush(self) -> None:
        connection = self._connection
        while self._queue and not connection.writing_paused and not connection.closing:
            frame = self._queue.popleft()
            connection.queued_bytes -= len(frame)
            connection.write(frame)
        if self._queue and not connection.closing:
            connection.backlog(self)
        if self._space is not None:
            self._space.set()

    def _peer_closed(self) -> None:
        """The client terminated the stream or went away: nothing more is sent."""
        self._peer_gone = True
        self._connection.queued_bytes -= sum(map(len, self._queue))
        self._queue.clear()
        self._finish()

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._connection.counters.streams -= 1
        if self._space is not None:
            self._space.set()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("IPC stream %d: an on_close callback failed", self._stream_id)


JsonObject: TypeAlias = dict[str, Any]
UnaryHandler: TypeAlias = Callable[[CallContext, JsonObject], Awaitable[Mapping[str, Any]]]
#: A unary handler that never waits: it runs as soon as its request is decoded, in the connection's callback.
NowaitHandler: TypeAlias = Callable[[CallContext, JsonObject], Mapping[str, Any]]
StreamHandler: TypeAlias = Callable[[CallContext, JsonObject, EventStream], Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True, slots=True)
class _StreamOperation:
    handler: StreamHandler
    event_shape: str


class IpcServer:
    """Serves Greengrass IPC on a Unix socket; services register their operations before or after start."""

    def __init__(
        self,
        socket_path: Path,
        *,
        authenticate: Callable[[str], str | None],
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_streams_per_connection: int = 1024,
        max_calls_per_connection: int = 64,
        max_buffered_bytes: int = 16 * 1024 * 1024,
        max_queued_events: int = 1024,
        max_queued_bytes: int = 16 * 1024 * 1024,
        max_connect_message_size: int = DEFAULT_MAX_CONNECT_MESSAGE_SIZE,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        max_unauthenticated_connections: int = DEFAULT_MAX_UNAUTHENTICATED_CONNECTIONS,
    ) -> None:
        for name, value in (
            ("max_streams_per_connection", max_streams_per_connection),
            ("max_calls_per_connection", max_calls_per_connection),
            ("max_buffered_bytes", max_buffered_bytes),
            ("max_queued_events", max_queued_events),
            ("max_queued_bytes", max_queued_bytes),
            ("max_unauthenticated_connections", max_unauthenticated_connections),
        ):
            if value < 1:
                msg = f"{name} must be at least 1, got {value}"
                raise ValueError(msg)
        if max_connect_message_size < MESSAGE_OVERHEAD:
            msg = (
                f"max_connect_message_size must be at least {MESSAGE_OVERHEAD} bytes, "
                f"got {max_connect_message_size}"
            )
            raise ValueError(msg)
        if not handshake_timeout > 0:
            msg = f"handshake_timeout must be a positive number of seconds, got {handshake_timeout}"
            raise ValueError(msg)
        self.socket_path = socket_path
        self.authenticate = authenticate
        self.max_message_size = max_message_size
        self.max_streams_per_connection = max_streams_per_connection
        self.max_calls_per_connection = max_calls_per_connection
        self.max_buffered_bytes = max_buffered_bytes
        self.max_queued_events = max_queued_events
        #: Events queued for one connection's streams, all streams together: bounds what a client with many
        #: subscriptions that never reads can hold, whatever the size of the events.
        self.max_queued_bytes = max_queued_bytes
        #: The largest message a connection may send before it has authenticated (its CONNECT).
        self.max_connect_message_size = min(max_connect_message_size, max_message_size)
        #: Seconds a connection has to authenticate before it is closed.
        self.handshake_timeout = handshake_timeout
        #: Connections waiting to authenticate at once; further ones are closed as soon as they are accepted.
        self.max_unauthenticated_connections = max_unauthenticated_connections
        self._counters = _Counters()
        self._unauthenticated: dict[int, _Connection] = {}
        self._refused_unlogged = 0
        self._refusal_logged_at = -_REFUSAL_LOG_INTERVAL_S
        self._unary: dict[str, UnaryHandler] = {}
        self._unary_nowait: dict[str, NowaitHandler] = {}
        self._streaming: dict[str, _StreamOperation] = {}
        self._connections: dict[int, _Connection] = {}
        self._ids = itertools.count(1)
        self._server: asyncio.AbstractServer | None = None

    def register_unary(self, operation: str, handler: UnaryHandler) -> None:
        """Answer ``operation`` (``aws.greengrass#X``) with ``handler``'s result."""
        self._check_free(operation)
        self._unary[operation] = handler

    def register_unary_nowait(self, operation: str, handler: NowaitHandler) -> None:
        """Answer ``operation`` with the result of ``handler``, a plain function that must not block.

        It is called as soon as the request is decoded, from the event loop thread, with no task of its own:
        the calls of one connection run in the order the client sent them, and each reply is written before
        the next request is read.
        """
        self._check_free(operation)
        self._unary_nowait[operation] = handler

    def register_stream(self, operation: str, handler: StreamHandler, *, event_shape: str) -> None:
        """Answer ``operation`` with ``handler``'s initial response, then events of ``event_shape``."""
        self._check_free(operation)
        self._streaming[operation] = _StreamOperation(handler, event_shape)

    def _check_free(self, operation: str) -> None:
        if not operation:
            msg = "Operation name must not be empty"
            raise ValueError(msg)
        if operation in self._unary or operation in self._unary_nowait or operation in self._streaming:
            msg = f"Operation {operation!r} already has a handler"
            raise ValueError(msg)

    async def start(self) -> None:
        """Listen on the socket (replacing a stale one), world read/write; returns once listening."""
        if self._server is not None:
            msg = f"IPC server on {self.socket_path} is already started"
            raise RuntimeError(msg)
        path = self.socket_path
        if len(os.fsencode(path)) > _SOCKET_PATH_LIMIT:
            msg = f"IPC socket path {str(path)!r} is longer than the {_SOCKET_PATH_LIMIT}-byte limit"
            raise IpcError(msg)
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISSOCK(path.lstat().st_mode):
                msg = f"Cannot create IPC socket {str(path)!r}: a file that is not a socket is in the way"
                raise IpcError(msg)
            path.unlink()
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_unix_server(
                lambda: _Connection(self, next(self._ids)), path, backlog=_LISTEN_BACKLOG
            )
            path.chmod(0o666)
        except OSError as exc:
            msg = f"Cannot listen on IPC socket {str(path)!r}: {exc.strerror or exc}"
            raise IpcError(msg) from exc
        logger.info("IPC server listening on %s", path)

    async def close(self) -> None:
        """Stop accepting, drop every connection (ending its streams), remove the socket file."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks: list[asyncio.Task[None]] = []
        for connection in list(self._connections.values()):
            tasks.extend(connection.shutdown())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        logger.info("IPC server on %s closed", self.socket_path)

    def statistics(self) -> IpcStatistics:
        """The current counters."""
        counters = self._counters
        return IpcStatistics(
            connections=len(self._connections),
            connections_accepted=counters.accepted,
            connections_dropped=counters.dropped,
            connections_refused=counters.refused,
            unauthenticated=len(self._unauthenticated),
            bytes_buffered=sum(connection.bytes_buffered for connection in self._connections.values()),
            streams=counters.streams,
            calls_in_flight=counters.calls,
            messages_in=counters.messages_in,
            messages_out=counters.messages_out,
            errors=counters.errors,
            events_dropped=counters.events_dropped,
        )

    def _added(self, connection: _Connection) -> bool:
        """Count a new connection in; False when too many wait to authenticate and it must be closed."""
        self._connections[connection.id] = connection
        self._counters.accepted += 1
        if len(self._unauthenticated) < self.max_unauthenticated_connections:
            self._unauthenticated[connection.id] = connection
            return True
        self._counters.refused += 1
        self._refused_unlogged += 1
        now = time.monotonic()
        if now - self._refusal_logged_at >= _REFUSAL_LOG_INTERVAL_S:
            logger.warning(
                "IPC server: closed %d new connection(s) at once: %d connections are already waiting to "
                "authenticate (the limit); each is closed if it has not authenticated within %.1fs",
                self._refused_unlogged,
                self.max_unauthenticated_connections,
                self.handshake_timeout,
            )
            self._refused_unlogged = 0
            self._refusal_logged_at = now
        return False

    def _handshake_over(self, connection: _Connection) -> None:
        """``connection`` authenticated or is closing: its slot among those waiting to authenticate is free."""
        self._unauthenticated.pop(connection.id, None)

    def _removed(self, connection: _Connection) -> None:
        self._connections.pop(connection.id, None)
        self._unauthenticated.pop(connection.id, None)


class _Connection(asyncio.Protocol):
    """One client connection: handshake, stream bookkeeping, calls and output."""

    def __init__(self, server: IpcServer, connection_id: int) -> None:
        self.server = server
        self.id = connection_id
        self.counters = server._counters
        self.component: str | None = None
        self.closing = False
        self.writing_paused = False
        self.queued_bytes = 0  # events waiting in this connection's stream queues
        self._transport: asyncio.Transport | None = None
        # Raised to max_message_size once the CONNECT is accepted.
        self._decoder = MessageDecoder(max_message_size=server.max_connect_message_size)
        self._last_stream_id = 0
        self._active: dict[int, EventStream | None] = {}  # open streams; None for a unary call
        self._calls: set[asyncio.Task[None]] = set()
        self._read_blockers: set[str] = set()
        self._inbox: collections.deque[Message] = collections.deque()
        self._backlog: dict[EventStream, None] = {}
        self._abort_handle: asyncio.TimerHandle | None = None
        self._handshake_timer: asyncio.TimerHandle | None = None
        # Frames written during one turn of the event loop go out together in one send at its end.
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._pending_limit = 0  # the transport's high-water mark, set when connected

    def describe(self) -> str:
        """How log lines name this connection."""
        return f"IPC connection {self.id} ({self.component or 'not authenticated'})"

    @property
    def bytes_buffered(self) -> int:
        """Received bytes held for a message not complete yet."""
        return self._decoder.buffered

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, though not always an asyncio.Transport subclass (uvloop's are not).
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        high = min(1024 * 1024, max(self.server.max_buffered_bytes // 2, 1))
        transport.set_write_buffer_limits(high=high, low=high // 4)
        self._pending_limit = high
        if not self.server._added(self):
            self.closing = True
            transport.abort()
            return
        self._handshake_timer = asyncio.get_running_loop().call_later(
            self.server.handshake_timeout, self._handshake_timed_out
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self._abort_handle is not None:
            self._abort_handle.cancel()
        self._stop_handshake_timer()
        self._end_streams()
        self.server._removed(self)
        logger.debug("%s closed%s", self.describe(), f": {exc}" if exc else "")

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._block_reading("writes")

    def resume_writing(self) -> None:
        self.writing_paused = False
        while self._backlog and not self.writing_paused and not self.closing:
            stream = next(iter(self._backlog))
            del self._backlog[stream]
            stream._flush()
        self._unblock_reading("writes")

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if self.component is not None:
            self._receive(data, None)
            return
        # Only the first message is decoded under the pre-authentication limit: whatever the client sent
        # after its CONNECT is decoded once the CONNECT is accepted, under the limit of authenticated clients.
        if self._receive(data, 1) and self.component is not None and self._decoder.buffered:
            self._receive(b"", None)

    def _receive(self, data: bytes, max_messages: int | None) -> bool:
        """Decode and dispatch what ``data`` completes; False when it closed the connection."""
        try:
            messages = self._decoder.feed(data, max_messages=max_messages)
        except FrameTooLargeError as exc:
            if self.component is None:
                self._protocol_error(
                    f"a message of {exc.length} bytes before authentication; until its CONNECT is accepted "
                    f"a connection's messages may be at most {exc.limit} bytes"
                )
            else:
                self._protocol_error(f"malformed frame: {exc}")
            return False
        except FrameError as exc:
            self._protocol_error(f"malformed frame: {exc}")
            return False
        self.counters.messages_in += len(messages)
        self._inbox.extend(messages)
        self._process_inbox()
        return not self.closing

    def _process_inbox(self) -> None:
        """Dispatch received messages while fewer than the allowed number of calls run."""
        inbox = self._inbox
        limit = self.server.max_calls_per_connection
        while inbox and not self.closing:
            if len(self._calls) >= limit:
                # Resumed by _call_done: the client's requests wait in its socket, not in our memory.
                self._block_reading("calls")
                return
            self._dispatch(inbox.popleft())
        self._unblock_reading("calls")

    # output

    def write(self, frame: bytes) -> bool:
        """Send ``frame``; False when the connection is closing or its output buffer overflowed."""
        transport = self._transport
        if self.closing or transport is None:
            return False
        buffered = transport.get_write_buffer_size() + self._pending_bytes
        if buffered and buffered + len(frame) > self.server.max_buffered_bytes:
            logger.warning(
                "%s: client is not reading (%d bytes waiting, limit %d); dropping the connection",
                self.describe(),
                buffered,
                self.server.max_buffered_bytes,
            )
            self.counters.dropped += 1
            self._close(abort=True)
            return False
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._send_pending)
        self._pending.append(frame)
        self._pending_bytes += len(frame)
        self.counters.messages_out += 1
        if self._pending_bytes >= self._pending_limit:
            # Past the high-water mark the transport must see the bytes now, so that pause_writing turns
            # later events into stream queues (bounded per subscription) as it did before coalescing.
            self._send_pending()
        return True

    def _send_pending(self) -> None:
        """One send for every frame written since the last one (a no-op when none or when aborted)."""
        if not self._pending:
            return
        frames, self._pending = self._pending, []
        self._pending_bytes = 0
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def backlog(self, stream: EventStream) -> None:
        """Flush ``stream``'s queued events once the client reads again."""
        self._backlog[stream] = None

    def forget_stream(self, stream_id: int) -> None:
        """The server ended ``stream_id``: later client messages for it are only valid as terminations."""
        self._active.pop(stream_id, None)

    def _reply(self, kind: MessageType, stream_id: int, flags: MessageFlag, shape: str, body: bytes) -> bool:
        return self.write(encode_frame(_rpc_headers(kind, flags, shape, stream_id), body))

    def _reply_error(self, stream_id: int, error: ModeledError) -> None:
        self.counters.errors += 1
        body = _json_bytes(error.payload())
        self._reply(MessageType.APPLICATION_ERROR, stream_id, MessageFlag.TERMINATE_STREAM, error.shape, body)

    def _send_control(
        self, kind: MessageType, flags: MessageFlag = MessageFlag.NONE, payload: bytes = b""
    ) -> None:
        headers: dict[str, HeaderValue] = {MESSAGE_TYPE: kind, MESSAGE_FLAGS: flags, STREAM_ID: 0}
        self.write(encode_message(Message(headers, payload)))

    # closing

    def _protocol_error(self, reason: str) -> None:
        logger.warning("%s: protocol error, closing it: %s", self.describe(), reason)
        self.counters.dropped += 1
        headers: dict[str, HeaderValue] = {
            MESSAGE_TYPE: MessageType.PROTOCOL_ERROR,
            MESSAGE_FLAGS: MessageFlag.NONE,
            STREAM_ID: 0,
            CONTENT_TYPE: CONTENT_TYPE_TEXT,
        }
        self.write(encode_message(Message(headers, reason.encode())))
        self._close(abort=False)

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        if self.component is not None or self.closing:
            return
        logger.warning(
            "%s: closing it: it has not authenticated within %.1fs of connecting",
            self.describe(),
            self.server.handshake_timeout,
        )
        self.counters.dropped += 1
        self._close(abort=True)

    def _stop_handshake_timer(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None

    def _close(self, *, abort: bool) -> None:
        if self.closing or self._transport is None:
            return
        self.closing = True
        self._stop_handshake_timer()
        # Its slot among the connections waiting to authenticate is free at once, not after the grace period.
        self.server._handshake_over(self)
        self._end_streams()
        if abort:
            self._pending.clear()
            self._transport.abort()
        else:
            self._send_pending()
            self._transport.close()
            # A client that does not read would keep the flush (and the connection) pending forever.
            loop = asyncio.get_running_loop()
            self._abort_handle = loop.call_later(_PROTOCOL_ERROR_GRACE_S, self._transport.abort)

    def shutdown(self) -> list[asyncio.Task[None]]:
        """Drop the connection for a server shutdown; returns the calls still running."""
        self._end_streams()
        if self._transport is not None:
            # Also cuts short the grace period of a connection closing after a protocol error.
            self._transport.abort()
        return list(self._calls)

    def _end_streams(self) -> None:
        self.closing = True
        active, self._active = self._active, {}
        self._backlog.clear()
        for stream in active.values():
            if stream is not None:
                stream._peer_closed()

    # reading side: flow control

    def _block_reading(self, reason: str) -> None:
        if not self._read_blockers and self._transport is not None and not self.closing:
            self._transport.pause_reading()
        self._read_blockers.add(reason)

    def _unblock_reading(self, reason: str) -> None:
        self._read_blockers.discard(reason)
        if not self._read_blockers and self._transport is not None and not self.closing:
            self._transport.resume_reading()

    # dispatch

    def _dispatch(self, message: Message) -> None:
        headers = message.headers
        kind = _header(headers, MESSAGE_TYPE)
        stream_id = _header(headers, STREAM_ID)
        flags = _header(headers, MESSAGE_FLAGS)
        if flags is None:
            flags = 0
        if type(kind) is not int or type(stream_id) is not int or type(flags) is not int:
            self._protocol_error(
                f"{MESSAGE_TYPE}, {STREAM_ID} and {MESSAGE_FLAGS} must be int32 headers, "
                f"got {kind!r}, {stream_id!r} and {flags!r}"
            )
            return
        if self.component is None:
            self._handshake(message, kind, stream_id)
        elif stream_id == 0:
            self._connection_message(message, kind)
        elif stream_id < 0:
            self._protocol_error(f"stream id {stream_id} is negative")
        elif kind != MessageType.APPLICATION_MESSAGE and kind != MessageType.APPLICATION_ERROR:
            self._protocol_error(f"message type {kind} is not allowed on stream {stream_id}")
        elif stream_id > self._last_stream_id:
            self._open_stream(message, kind, stream_id)
        elif stream_id in self._active:
            if flags & MessageFlag.TERMINATE_STREAM:
                self._client_terminated(stream_id)
            # Otherwise a client event on an open stream: no Greengrass operation streams requests.
        elif not flags & MessageFlag.TERMINATE_STREAM:
            self._protocol_error(f"stream {stream_id} is not open")
        # A TERMINATE_STREAM for a stream that already ended crossed our own close: nothing to do.

    def _handshake(self, message: Message, kind: int, stream_id: int) -> None:
        if kind != MessageType.CONNECT or stream_id != 0:
            self._protocol_error(
                f"the first message must be CONNECT on stream 0, got type {kind} on {stream_id}"
            )
            return
        version = _header(message.headers, VERSION)
        if version != PROTOCOL_VERSION:
            self._reject(f"{VERSION} is {version!r}, expected {PROTOCOL_VERSION!r}")
            return
        try:
            body = jsoncodec.loads(message.payload)
        except (ValueError, RecursionError):
            self._reject("the CONNECT payload is not JSON")
            return
        token = body.get("authToken") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            self._reject("the CONNECT payload has no authToken string")
            return
        try:
            component = self.server.authenticate(token)
        except Exception:
            logger.exception("%s: the authenticator failed", self.describe())
            component = None
        if not component:
            self._reject("the authToken is not known")
            return
        self.component = component
        self._stop_handshake_timer()
        self.server._handshake_over(self)
        self._decoder.max_message_size = self.server.max_message_size
        self._send_control(MessageType.CONNECT_ACK, MessageFlag.CONNECTION_ACCEPTED)
        logger.info("IPC connection %d accepted for component %s", self.id, component)

    def _reject(self, reason: str) -> None:
        logger.warning("%s: connection refused: %s", self.describe(), reason)
        self._send_control(MessageType.CONNECT_ACK, MessageFlag.NONE)
        self._close(abort=False)

    def _connection_message(self, message: Message, kind: int) -> None:
        if kind == MessageType.PING:
            headers = {name: value for name, value in message.headers.items() if not name.startswith(":")}
            headers[MESSAGE_TYPE] = MessageType.PING_RESPONSE
            headers[MESSAGE_FLAGS] = MessageFlag.NONE
            headers[STREAM_ID] = 0
            self.write(encode_message(Message(headers, message.payload)))
        elif kind != MessageType.PING_RESPONSE:
            self._protocol_error(f"message type {kind} is not allowed on stream 0 after CONNECT")

    def _client_terminated(self, stream_id: int) -> None:
        stream = self._active.pop(stream_id)
        if stream is not None:
            self._backlog.pop(stream, None)
            stream._peer_closed()

    def _open_stream(self, message: Message, kind: int, stream_id: int) -> None:
        if stream_id != self._last_stream_id + 1:
            self._protocol_error(f"new stream id {stream_id} does not follow {self._last_stream_id}")
            return
        operation = _header(message.headers, OPERATION)
        if not isinstance(operation, str) or not operation:
            self._protocol_error(f"new stream {stream_id} has no {OPERATION!r} string header")
            return
        if kind != MessageType.APPLICATION_MESSAGE:
            self._protocol_error(f"new stream {stream_id} starts with message type {kind}")
            return
        self._last_stream_id = stream_id
        assert self.component is not None
        server = self.server
        nowait = server._unary_nowait.get(operation)
        unary = server._unary.get(operation) if nowait is None else None
        streaming = server._streaming.get(operation) if nowait is None and unary is None else None
        if nowait is None and unary is None and streaming is None:
            text = (
                "is not supported by Edgewise yet" if operation in OPERATIONS else "is not a known operation"
            )
            self._reply_error(stream_id, ServiceError(f"Operation {operation} {text}"))
            return
        if len(self._active) >= server.max_streams_per_connection:
            limit = server.max_streams_per_connection
            self._reply_error(stream_id, ServiceError(f"The connection already has {limit} open streams"))
            return
        try:
            request = _parse_request(operation, message.payload)
        except InvalidArgumentsError as exc:
            self._reply_error(stream_id, exc)
            return
        context = CallContext(self.component, operation, self.id, stream_id)
        if nowait is not None:
            self._call_unary_nowait(context, nowait, request)
        elif unary is not None:
            self._active[stream_id] = None
            self._spawn(self._call_unary(context, unary, request))
        else:
            assert streaming is not None
            stream = EventStream(self, stream_id, streaming.event_shape, server.max_queued_events)
            self.counters.streams += 1
            self._active[stream_id] = stream
            self._spawn(self._call_stream(context, streaming.handler, request, stream))

    def _spawn(self, call: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(call)
        self._calls.add(task)
        self.counters.calls += 1
        task.add_done_callback(self._call_done)

    def _call_done(self, task: asyncio.Task[None]) -> None:
        self._calls.discard(task)
        self.counters.calls -= 1
        self._process_inbox()

    # calls

    async def _call_unary(self, context: CallContext, handler: UnaryHandler, request: JsonObject) -> None:
        error: ModeledError | None = None
        try:
            body = _json_bytes(await handler(context, request))
        except ModeledError as exc:
            error = exc
        except Exception:
            logger.exception("IPC operation %s for %s failed", context.operation, context.component)
            error = _internal_error(context)
        # The client may have terminated the stream, or gone away, while the handler ran.
        if context.stream_id not in self._active:
            return
        del self._active[context.stream_id]
        if error is not None:
            self._reply_error(context.stream_id, error)
        else:
            shape = response_shape(context.operation)
            flags = MessageFlag.TERMINATE_STREAM
            self._reply(MessageType.APPLICATION_MESSAGE, context.stream_id, flags, shape, body)

    def _call_unary_nowait(self, context: CallContext, handler: NowaitHandler, request: JsonObject) -> None:
        try:
            body = _json_bytes(handler(context, request))
        except ModeledError as exc:
            self._reply_error(context.stream_id, exc)
            return
        except Exception:
            logger.exception("IPC operation %s for %s failed", context.operation, context.component)
            self._reply_error(context.stream_id, _internal_error(context))
            return
        shape = response_shape(context.operation)
        self._reply(
            MessageType.APPLICATION_MESSAGE, context.stream_id, MessageFlag.TERMINATE_STREAM, shape, body
        )

    async def _call_stream(
        self, context: CallContext, handler: StreamHandler, request: JsonObject, stream: EventStream
    ) -> None:
        try:
            body = _json_bytes(await handler(context, request, stream))
        except ModeledError as exc:
            self._fail_stream(context, stream, exc)
        except Exception:
            logger.exception("IPC operation %s for %s failed", context.operation, context.component)
            self._fail_stream(context, stream, _internal_error(context))
        else:
            if stream._peer_gone:
                return
            shape = response_shape(context.operation)
            if self._reply(MessageType.APPLICATION_MESSAGE, context.stream_id, MessageFlag.NONE, shape, body):
                stream._start()

    def _fail_stream(self, context: CallContext, stream: EventStream, error: ModeledError) -> None:
        if stream._peer_gone:
            return
        self.forget_stream(context.stream_id)
        self._reply_error(context.stream_id, error)
        stream._peer_closed()


def _rpc_headers(kind: MessageType, flags: MessageFlag, shape: str, stream_id: int) -> bytes:
    """The encoded headers of a JSON message on an operation stream."""
    key = (kind, flags, shape)
    prefix = _rpc_header_prefixes.get(key)
    if prefix is None:
        prefix = encode_headers(
            {
                CONTENT_TYPE: CONTENT_TYPE_JSON,
                SERVICE_MODEL_TYPE: shape,
                MESSAGE_TYPE: kind,
                MESSAGE_FLAGS: flags,
            }
        )
        if len(_rpc_header_prefixes) < _RPC_HEADER_PREFIXES_LIMIT:
            _rpc_header_prefixes[key] = prefix
    return prefix + _STREAM_ID_HEADER + _INT32.pack(stream_id)


def _header(headers: Mapping[str, HeaderValue], name: str) -> HeaderValue | None:
    """Header ``name``; reserved names match case-insensitively, as in the C library."""
    value = headers.get(name)
    if value is None:
        for key, candidate in headers.items():
            if key.lower() == name:
                return candidate
    return value


def _parse_request(operation: str, payload: bytes) -> JsonObject:
    if not payload:
        return {}
    try:
        request = jsoncodec.loads(payload)
    except (ValueError, RecursionError) as exc:
        msg = f"Request of {operation} is not valid JSON: {exc}"
        raise InvalidArgumentsError(msg) from None
    if not isinstance(request, dict):
        msg = f"Request of {operation} must be a JSON object, got {type(request).__name__}"
        raise InvalidArgumentsError(msg)
    return request


def _json_bytes(body: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON of a response or event; TypeError when it is not a JSON object."""
    if type(body) is dict and not body:
        return _EMPTY_OBJECT  # the response of every publish: skip the encoder
    if not isinstance(body, dict):
        if not isinstance(body, Mapping):
            msg = f"IPC responses and events must be mappings, got {type(body).__name__}"
            raise TypeError(msg)
        body = dict(body)
    return jsoncodec.dumps(body)


def _internal_error(context: CallContext) -> ServiceError:
    return ServiceError(f"Edgewise failed to handle {context.operation}; see the runtime log")

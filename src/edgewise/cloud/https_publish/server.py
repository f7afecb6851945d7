"""The HTTPS publish listener: HTTP/1.0 and 1.1 over mutual TLS, one asyncio task per connection, h11 for HTTP.

uvicorn does not hand the client certificate to the application, so this listener is asyncio's TLS server with
h11 on top: the certificate is read from the connection (``ssl_object``) and checked for every request. TLS
requires a client certificate signed by the cloud's CA (``cafile``); whether that certificate may still be used,
and for which topics, is the store's answer per request (the ``authorize`` callable), so one revoked a moment
ago is refused on a connection that is already open.

Each request is read whole before it is answered: the head up to ``max_header_bytes``, the body up to
``max_payload_bytes`` (a ``Content-Length`` over it is refused before any of the body is read, a chunked body
once it passes the limit, and the connection is then closed). Keep-alive requests follow one another on a
connection; a malformed request is answered with 400 and its connection closed; nothing one connection does
reaches another. Connections are capped (``max_connections``; more are closed at once), as are the time to wait
for a request (``idle_timeout``) and the time to read and answer one (``request_timeout``).

Object uploads (``PUT /streams/s3/<bucket>/<key>``, :mod:`.uploads`) go to ``upload`` when one is given: their
body is not read whole but handed on as it arrives, up to ``max_object_bytes``, each read bounded by
``request_timeout`` instead of the whole request.

Greengrass discovery (``GET /greengrass/discover/thing/<thing>``) goes to ``discover`` when one is given: it
checks that the certificate is one of the thing's and returns the JSON body of the answer (the same listener
serves both, as AWS serves discovery on its data endpoint); the body of a discovery request is read and ignored.

Answers have AWS IoT Core's shape: ``{"message": "OK", "traceId": "<uuid>"}`` with 200, or the error's message
and the trace id with its status, ``x-amzn-RequestId`` (the trace id) and, on errors, ``x-amzn-ErrorType``.

Usage::

    server = HttpsPublishServer(settings, authorize=authorize, publish=publish)
    await server.start()
    ...
    await server.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import ssl
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import unquote

import h11

from edgewise.cloud import listening
from edgewise.cloud.https_publish.authorization import Publisher
from edgewise.cloud.https_publish.errors import (
    HttpsPublishStartError,
    InvalidPublishRequestError,
    PublishForbiddenError,
    PublishMethodNotAllowedError,
    PublishPayloadTooLargeError,
    PublishRefusedError,
)
from edgewise.cloud.https_publish.request import PublishRequest, parse_publish_target
from edgewise.cloud.https_publish.uploads import (
    MAX_OBJECT_BYTES,
    BodyReader,
    ObjectUpload,
    is_upload_target,
    parse_upload,
)
from edgewise.names import THING_NAME

logger = logging.getLogger(__name__)

DEFAULT_PORT: Final = 8444
#: AWS IoT Core's largest message.
MAX_PAYLOAD_BYTES: Final = 128 * 1024
#: ``x-amzn-http-ca`` is what AWS's devices ask for on port 443; plain HTTP/1.1 clients ask for ``http/1.1``.
ALPN_PROTOCOLS: Final = ("x-amzn-http-ca", "http/1.1")
_READ_SIZE: Final = 64 * 1024
_UNSUPPORTED_HEADER_PREFIX: Final = b"x-amz-mqtt5-"
DISCOVERY_PREFIX: Final = "/greengrass/discover/thing/"

#: Checks that the certificate (DER) may publish on the topic; raises PublishForbiddenError otherwise.
Authorizer = Callable[[bytes, str], Awaitable[Publisher]]
#: The discovery answer (JSON) for the thing, asked with the certificate (DER); raises PublishRefusedError.
Discoverer = Callable[[bytes, str], Awaitable[bytes]]


class ObjectSink(Protocol):
    """Where uploads go: authorizes ``upload`` for the certificate (DER), then stores what ``body`` yields.

    Raises:
        PublishRefusedError: the upload is refused (403) or the store failed (503); nothing is stored.
    """

    def __call__(self, certificate: bytes, upload: ObjectUpload, body: BodyReader) -> Awaitable[None]: ...


class PublishSink(Protocol):
    """Where accepted messages go: returns once the message is handed over (QoS 0) or acknowledged (QoS 1).

    Raises:
        PublishUnavailableError: the message could not be handed over.
    """

    def __call__(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> Awaitable[None]: ...


@dataclass(frozen=True)
class HttpsPublishSettings:
    """Where the listener listens, its TLS files (``cafile``: the CA client certificates must chain to) and its
    limits."""

    host: str
    port: int
    cafile: Path
    certfile: Path
    keyfile: Path
    max_connections: int = 1024
    max_header_bytes: int = 8 * 1024
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    #: The largest object one upload may carry.
    max_object_bytes: int = MAX_OBJECT_BYTES
    #: Seconds a connection may wait for its next request (whole head included).
    idle_timeout: float = 60.0
    #: Seconds to read a request's body and answer it.
    request_timeout: float = 30.0
    handshake_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port: {self.port} is not between 0 (any free port) and 65535")
        for name in ("max_connections", "max_header_bytes", "max_payload_bytes", "max_object_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: {getattr(self, name)} is not a positive count")
        for name in ("idle_timeout", "request_timeout", "handshake_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: {getattr(self, name)} is not a positive number of seconds")


@dataclass(frozen=True)
class HttpsPublishStatistics:
    """What the listener has done since it started."""

    open_connections: int
    requests: int
    published: int
    refused: int


@dataclass(frozen=True)
class _Answer:
    status: int
    message: str
    trace_id: str
    error_type: str | None = None
    close: bool = False
    #: The JSON body, when it is not AWS IoT Core's ``{"message", "traceId"}``.
    body: bytes | None = None


class _PeerGone(Exception):
    """The client closed or broke the connection in the middle of a request."""


def server_context(settings: HttpsPublishSettings) -> ssl.SSLContext:
    """TLS 1.2 or later, a client certificate from ``settings.cafile`` required. Blocks (reads the files).

    Raises:
        HttpsPublishStartError: a TLS file cannot be read or used.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    # No session tickets: every connection presents its certificate, which is what each request is checked by.
    context.options |= ssl.OP_NO_TICKET
    context.set_alpn_protocols(list(ALPN_PROTOCOLS))
    try:
        context.load_cert_chain(settings.certfile, settings.keyfile)
        context.load_verify_locations(cafile=settings.cafile)
    except (OSError, ssl.SSLError) as exc:
        raise HttpsPublishStartError(f"HTTPS publish cannot use its TLS files: {exc}") from exc
    return context


class HttpsPublishServer:
    """Answers ``POST /topics/<topic>`` from devices: ``authorize`` decides, ``publish`` delivers; and, with
    ``upload``, ``PUT /streams/s3/<bucket>/<key>``."""

    def __init__(
        self,
        settings: HttpsPublishSettings,
        *,
        authorize: Authorizer,
        publish: PublishSink,
        upload: ObjectSink | None = None,
        discover: Discoverer | None = None,
    ) -> None:
        self.settings = settings
        self._authorize = authorize
        self._publish = publish
        self._upload = upload
        self._discover = discover
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._requests = 0
        self._published = 0
        self._refused = 0

    @property
    def port(self) -> int:
        """The port listened on (the one bound when settings asked for any free port)."""
        assert self._server is not None, "not started"
        return int(self._server.sockets[0].getsockname()[1])

    def statistics(self) -> HttpsPublishStatistics:
        return HttpsPublishStatistics(len(self._connections), self._requests, self._published, self._refused)

    async def start(self) -> None:
        """Listen, and return once connections are accepted.

        Raises:
            HttpsPublishStartError: the port is in use, or a TLS file cannot be used.
        """
        context = await asyncio.to_thread(server_context, self.settings)
        try:
            sock = listening.bind(self.settings.host, self.settings.port)
        except OSError as exc:
            raise HttpsPublishStartError(
                f"HTTPS publish cannot listen on {self.settings.host}:{self.settings.port}: {exc.strerror}"
            ) from exc
        self._server = await asyncio.start_server(
            self._connected, sock=sock, ssl=context, ssl_handshake_timeout=self.settings.handshake_timeout
        )
        logger.info("https-publish-ready host=%s port=%d", self.settings.host, self.port)

    async def close(self) -> None:
        """Stop listening and close every connection; requests in flight are abandoned."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        connections = list(self._connections)
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await server.wait_closed()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= self.settings.max_connections:
            logger.warning("https-publish-busy connections=%d: refused one", len(self._connections))
            writer.close()
            return
        self._connections.add(task)
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            certificate = None if ssl_object is None else ssl_object.getpeercert(binary_form=True)
            if certificate is not None:
                await self._serve(reader, writer, certificate)
        except (OSError, _PeerGone, TimeoutError):
            pass
        except Exception:
            logger.exception("https-publish-connection-failed")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1):
                    await writer.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, certificate: bytes
    ) -> None:
        """Answer the requests of one connection until it closes, breaks, idles out or must close."""
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=self.settings.max_header_bytes)
        while True:
            # An answer to HEAD has no body (h11 refuses one).
            head_only = False
            try:
                async with asyncio.timeout(self.settings.idle_timeout):
                    request = await _next_event(connection, reader, self.settings.max_header_bytes)
                if not isinstance(request, h11.Request):
                    return
                _check_head_size(request, self.settings.max_header_bytes)
                self._requests += 1
                head_only = request.method == b"HEAD"
                if self._discover is not None and request.target.startswith(DISCOVERY_PREFIX.encode()):
                    async with asyncio.timeout(self.settings.request_timeout):
                        answer = await self._answer_discovery(
                            connection, reader, writer, request, certificate
                        )
                elif self._upload is not None and is_upload_target(request.target):
                    # An upload may take long; each of its reads is bounded instead.
                    answer = await self._answer_upload(connection, reader, writer, request, certificate)
                else:
                    async with asyncio.timeout(self.settings.request_timeout):
                        answer = await self._answer(connection, reader, writer, request, certificate)
            except h11.RemoteProtocolError as exc:
                if connection.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
                    return
                self._refused += 1
                malformed = InvalidPublishRequestError("request", str(exc))
                answer = _Answer(
                    exc.error_status_hint,
                    malformed.message,
                    str(uuid.uuid4()),
                    malformed.error_type,
                    close=True,
                )
            async with asyncio.timeout(self.settings.request_timeout):
                await _send(connection, writer, answer, head_only=head_only)
            if answer.close or connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                return
            connection.start_next_cycle()

    async def _answer(
        self,
        connection: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: h11.Request,
        certificate: bytes,
    ) -> _Answer:
        trace_id = str(uuid.uuid4())
        try:
            payload = await self._read_body(connection, reader, writer, request)
            publish = _parse(request)
            publisher = await self._authorize(certificate, publish.topic)
            await self._publish(publish.topic, payload, qos=publish.qos, retain=publish.retain)
        except PublishRefusedError as exc:
            self._refused += 1
            logger.info(
                "https-publish-refused status=%d trace=%s: %s", exc.status, trace_id, exc.detail[:500]
            )
            return _refusal(exc, trace_id)
        except (_PeerGone, h11.RemoteProtocolError, OSError):
            raise
        except Exception:
            # The store or the broker failed in a way no rule covers: this request fails, the connection lives.
            self._refused += 1
            logger.exception("https-publish-failed trace=%s", trace_id)
            return _Answer(500, "Internal failure", trace_id, "InternalFailureException")
        self._published += 1
        logger.debug(
            "https-publish thing=%s topic=%s qos=%d bytes=%d trace=%s",
            publisher.thing_name,
            publish.topic,
            publish.qos,
            len(payload),
            trace_id,
        )
        return _Answer(200, "OK", trace_id)

    async def _answer_discovery(
        self,
        connection: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: h11.Request,
        certificate: bytes,
    ) -> _Answer:
        assert self._discover is not None
        trace_id = str(uuid.uuid4())
        try:
            await self._read_body(connection, reader, writer, request)
            thing = _discovery_thing(request)
            body = await self._discover(certificate, thing)
        except PublishRefusedError as exc:
            self._refused += 1
            logger.info("discovery-refused status=%d trace=%s: %s", exc.status, trace_id, exc.detail[:500])
            return _refusal(exc, trace_id)
        except (_PeerGone, h11.RemoteProtocolError, OSError):
            raise
        except Exception:
            self._refused += 1
            logger.exception("discovery-failed trace=%s", trace_id)
            return _Answer(500, "Internal failure", trace_id, "InternalFailureException")
        logger.info("discovery thing=%s trace=%s", thing, trace_id)
        return _Answer(200, "OK", trace_id, body=body)

    async def _answer_upload(
        self,
        connection: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: h11.Request,
        certificate: bytes,
    ) -> _Answer:
        assert self._upload is not None
        trace_id = str(uuid.uuid4())
        try:
            upload = _parse_upload(request, self.settings.max_object_bytes)
            body = BodyReader(
                asyncio.get_running_loop(),
                _BodyStream(connection, reader, writer, self.settings.request_timeout).receive,
                expected=upload.size,
            )
            await self._upload(certificate, upload, body)
            if body.received != upload.size:
                raise _PeerGone
            async with asyncio.timeout(self.settings.request_timeout):
                if not isinstance(await _next_event(connection, reader, 1), h11.EndOfMessage):
                    raise _PeerGone
        except PublishRefusedError as exc:
            self._refused += 1
            logger.info("https-upload-refused status=%d trace=%s: %s", exc.status, trace_id, exc.detail[:500])
            # The rest of the body was not read: the connection cannot carry another request.
            return dataclasses.replace(_refusal(exc, trace_id), close=True)
        except (_PeerGone, h11.RemoteProtocolError, OSError, TimeoutError):
            raise
        except Exception:
            self._refused += 1
            logger.exception("https-upload-failed trace=%s", trace_id)
            return _Answer(500, "Internal failure", trace_id, "InternalFailureException", close=True)
        self._published += 1
        logger.info(
            "https-upload bucket=%s key=%s bytes=%d trace=%s",
            upload.bucket,
            upload.key[:200],
            upload.size,
            trace_id,
        )
        return _Answer(200, "OK", trace_id)

    async def _read_body(
        self,
        connection: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: h11.Request,
    ) -> bytes:
        """The request's body, read only while it stays within the payload limit.

        Raises:
            PublishPayloadTooLargeError: ``Content-Length`` or the bytes sent pass the limit.
            _PeerGone: the client closed the connection before the end of the body.
        """
        limit = self.settings.max_payload_bytes
        declared = _header(request, b"content-length")
        if declared is not None and int(declared) > limit:
            raise PublishPayloadTooLargeError(limit)
        if connection.they_are_waiting_for_100_continue:
            data = connection.send(h11.InformationalResponse(status_code=100, headers=[]))
            writer.write(data or b"")
            await writer.drain()
        chunks: list[bytes] = []
        size = 0
        while True:
            # Never ask for more than one byte past the limit: a longer body is refused, not read.
            event = await _next_event(connection, reader, max(1, min(_READ_SIZE, limit + 1 - size)))
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > limit:
                    raise PublishPayloadTooLargeError(limit)
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            else:
                raise _PeerGone


def _parse(request: h11.Request) -> PublishRequest:
    try:
        method = request.method.decode("ascii")
        target = request.target.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidPublishRequestError(
            "target", "has bytes that are not ASCII; percent-encode them"
        ) from None
    for name, _value in request.headers:
        if name.startswith(_UNSUPPORTED_HEADER_PREFIX):
            raise InvalidPublishRequestError(
                name.decode("ascii", "replace"), "MQTT 5 message properties are not supported over HTTPS"
            )
    return parse_publish_target(method, target)


def _discovery_thing(request: h11.Request) -> str:
    """The thing a discovery request names (percent-decoded, query left out).

    Raises:
        PublishMethodNotAllowedError: the method is not GET.
        InvalidPublishRequestError: the path does not end in a thing name.
    """
    if request.method != b"GET":
        raise PublishMethodNotAllowedError(
            f"Method {request.method[:20].decode('ascii', 'replace')!r} is not allowed; discover with GET"
        )
    path = request.target.decode("ascii", "replace").partition("?")[0]
    thing = unquote(path[len(DISCOVERY_PREFIX) :])
    if THING_NAME.fullmatch(thing) is None:
        raise InvalidPublishRequestError("thingName", f"{thing[:130]!r} is not a thing name")
    return thing


def _parse_upload(request: h11.Request, max_object_bytes: int) -> ObjectUpload:
    try:
        method = request.method.decode("ascii")
        target = request.target.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidPublishRequestError(
            "target", "has bytes that are not ASCII; percent-encode them"
        ) from None
    return parse_upload(method, target, request.headers, max_object_bytes=max_object_bytes)


class _BodyStream:
    """The body of one request, read from the socket a piece at a time as the store asks for it."""

    def __init__(
        self,
        connection: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        timeout: float,
    ) -> None:
        self._connection = connection
        self._reader = reader
        self._writer = writer
        self._timeout = timeout
        self._pending = b""
        self._continued = False

    async def receive(self, size: int) -> bytes:
        """At most ``size`` bytes of the body; b"" at its end.

        Raises:
            _PeerGone: the client closed the connection or sent nothing for ``timeout`` seconds.
        """
        if not self._pending:
            if not self._continued and self._connection.they_are_waiting_for_100_continue:
                data = self._connection.send(h11.InformationalResponse(status_code=100, headers=[]))
                self._writer.write(data or b"")
                await self._writer.drain()
            self._continued = True
            try:
                async with asyncio.timeout(self._timeout):
                    event = await _next_event(self._connection, self._reader, min(size, _READ_SIZE))
            except (TimeoutError, h11.RemoteProtocolError) as exc:
                raise _PeerGone from exc
            if isinstance(event, h11.EndOfMessage):
                return b""
            if not isinstance(event, h11.Data):
                raise _PeerGone
            self._pending = bytes(event.data)
        data, self._pending = self._pending[:size], self._pending[size:]
        return data


def _refusal(error: PublishRefusedError, trace_id: str) -> _Answer:
    close = isinstance(error, PublishPayloadTooLargeError) or (
        isinstance(error, PublishForbiddenError) and error.identity_lost
    )
    return _Answer(error.status, error.message, trace_id, error.error_type, close)


def _check_head_size(request: h11.Request, limit: int) -> None:
    """h11 bounds only a head that arrives in pieces; one that arrives whole is measured here."""
    size = len(request.target) + sum(len(name) + len(value) + 4 for name, value in request.headers)
    if size > limit:
        raise h11.RemoteProtocolError(f"the request head is larger than {limit} bytes", error_status_hint=431)


def _header(request: h11.Request, name: bytes) -> bytes | None:
    for header, value in request.headers:
        if header == name:
            return bytes(value)
    return None


async def _next_event(connection: h11.Connection, reader: asyncio.StreamReader, read_size: int) -> object:
    """The next h11 event, reading at most ``read_size`` bytes at a time; ConnectionClosed at the end."""
    while True:
        event = connection.next_event()
        if event is not h11.NEED_DATA:
            return event
        connection.receive_data(await reader.read(read_size))


async def _send(
    connection: h11.Connection, writer: asyncio.StreamWriter, answer: _Answer, *, head_only: bool
) -> None:
    body = answer.body
    if body is None:
        body = json.dumps(
            {"message": answer.message, "traceId": answer.trace_id}, separators=(",", ":")
        ).encode()
    headers = [
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
        ("date", formatdate(usegmt=True)),
        ("x-amzn-RequestId", answer.trace_id),
    ]
    if answer.error_type is not None:
        headers.append(("x-amzn-ErrorType", answer.error_type))
    if answer.close:
        headers.append(("connection", "close"))
    parts = [connection.send(h11.Response(status_code=answer.status, headers=headers))]
    if not head_only:
        parts.append(connection.send(h11.Data(data=body)))
    parts.append(connection.send(h11.EndOfMessage()))
    writer.write(b"".join(part or b"" for part in parts))
    await writer.drain()

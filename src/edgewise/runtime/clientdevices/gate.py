"""The gate: the TLS front of the local broker, where client devices connect (port 8883 by default).

Each connection goes through, in order:

1. the TLS handshake, with the context of the moment (:meth:`Authority.context`): a client certificate is
   required and must be issued by the cloud CA, and not revoked by its CRL, or the handshake fails;
2. the certificate's SHA-256 must be an ACTIVE certificate of a client device associated with this core (the
   trust list), which names the device's thing; any other certificate is disconnected;
3. the first packet must be an MQTT 3.1.1 or 5 CONNECT whose client id the device's policies allow
   (``mqtt:connect`` on ``mqtt:clientId:``); if not, the gate answers CONNACK "not authorized" itself;
4. the CONNECT goes on to Mosquitto with the device's broker login in place of its user name and password, and
   from then on the gate copies bytes both ways; Mosquitto enforces the device's topics.

The gate keeps its connections by thing, and :meth:`Gate.recheck` closes those whose device is no longer
trusted or allowed to connect (the trust list or the policies changed).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from edgewise.runtime.clientdevices.connect_packet import (
    ConnectPacketError,
    connack_refused,
    packet_length,
    parse_connect,
    rewrite_connect,
)

if TYPE_CHECKING:
    from edgewise.runtime.clientdevices.authority import Authority

logger = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT: Final = 10.0
CONNECT_TIMEOUT: Final = 10.0
_CHUNK: Final = 64 * 1024
#: accept() errors that mean "too busy now", not "broken" (trio's list).
_OVERLOAD: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_OVERLOAD_PAUSE: Final = 0.1

#: Where the broker listens: its host and port (asked for at each connection).
BrokerAddress = Callable[[], tuple[str, int]]
#: The broker login of a thing, or None when the broker has none for it.
BrokerLogin = Callable[[str], Awaitable[tuple[str, str] | None]]


@dataclass(eq=False)
class _Connection:
    thing: str
    certificate: bytes
    client_id: str
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


class Gate:
    """Accepts client devices on ``host:port`` and hands the authorized ones to the broker. Must be used from
    the event loop."""

    def __init__(
        self,
        authority: Authority,
        *,
        host: str,
        port: int,
        broker_address: BrokerAddress,
        broker_login: BrokerLogin,
    ) -> None:
        self.authority = authority
        self.host = host
        self.port = port
        self._broker_address = broker_address
        self._broker_login = broker_login
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def connected_things(self) -> list[str]:
        """The things with an open connection, sorted (a thing may have several)."""
        return sorted({connection.thing for connection in self._connections})

    async def start(self) -> None:
        """Listen; returns once the port is bound.

        Raises:
            OSError: the port cannot be bound.
        """
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.create_server((self.host, self.port), family=family, backlog=128)
        listener.setblocking(False)
        self._listener = listener
        self._accepting = asyncio.create_task(self._accept(listener), name="client-device-gate")
        logger.info("Client devices connect to the local MQTT broker on %s:%d (TLS)", self.host, self.port)

    async def close(self) -> None:
        """Stop listening and close every connection."""
        accepting, self._accepting = self._accepting, None
        if accepting is not None:
            accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await accepting
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for connection in list(self._connections):
            connection.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def recheck(self) -> None:
        """Close the connections of devices that are no longer trusted or allowed to connect."""
        for connection in list(self._connections):
            thing = self.authority.identify(connection.certificate)
            if thing != connection.thing or not self.authority.may_connect(thing, connection.client_id):
                logger.info("Disconnecting client device %s: it is no longer authorized", connection.thing)
                connection.close()

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                accepted, _ = await loop.sock_accept(listener)
            except OSError as error:
                if error.errno not in _OVERLOAD:
                    raise
                logger.warning("Cannot accept client devices for a moment: %s", error)
                await asyncio.sleep(_OVERLOAD_PAUSE)
                continue
            task = asyncio.create_task(self._serve_socket(accepted), name="client-device")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve_socket(self, accepted: socket.socket) -> None:
        """Shake hands with the TLS context of the moment (it changes with the trust list), then serve."""
        loop = asyncio.get_running_loop()
        try:
            peer = accepted.getpeername()
        except OSError:  # gone before we looked
            accepted.close()
            return
        writer: asyncio.StreamWriter | None = None
        try:
            context = await self.authority.context()
            if context is None:
                logger.warning("Refusing client device %s: no client-device trust list is in force", peer)
                return
            reader = asyncio.StreamReader(limit=_CHUNK)
            protocol = asyncio.StreamReaderProtocol(reader)
            try:
                transport, _ = await loop.connect_accepted_socket(
                    lambda: protocol, accepted, ssl=context, ssl_handshake_timeout=HANDSHAKE_TIMEOUT
                )
            except (OSError, TimeoutError) as error:
                logger.info("TLS handshake with %s failed: %s", peer, error)
                return
            writer = asyncio.StreamWriter(transport, protocol, reader, loop)
            await self._serve(reader, writer, peer)
        except Exception:
            logger.exception("The connection of client device %s failed", peer)
        finally:
            if writer is None:  # the transport owns the socket once made
                accepted.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: object) -> None:
        connection: _Connection | None = None
        upstream: asyncio.StreamWriter | None = None
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            certificate = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
            thing = self.authority.identify(certificate) if certificate else None
            if thing is None or certificate is None:
                logger.warning(
                    "Refusing %s: its certificate is not an ACTIVE certificate of a client device of this core",
                    peer,
                )
                return
            packet, rest = await self._read_connect(reader)
            try:
                connect = parse_connect(packet)
            except ConnectPacketError as error:
                logger.info("Refusing client device %s: %s", thing, error)
                writer.write(connack_refused(error.level, not_authorized=False))
                await writer.drain()
                return
            login = await self._broker_login(thing)
            if login is None or not self.authority.may_connect(thing, connect.client_id):
                logger.info("Client device %s may not connect with client id %r", thing, connect.client_id)
                writer.write(connack_refused(connect.level))
                await writer.drain()
                return
            host, port = self._broker_address()
            broker_reader, upstream = await asyncio.open_connection(host, port, limit=_CHUNK)
            connection = _Connection(thing, certificate, connect.client_id, [writer, upstream])
            self._connections.add(connection)
            upstream.write(rewrite_connect(connect, *login) + rest)
            logger.info("Client device %s connected with client id %r", thing, connect.client_id)
            await asyncio.gather(_copy(reader, upstream), _copy(broker_reader, writer))
        except (ConnectPacketError, asyncio.IncompleteReadError, TimeoutError, ConnectionError) as error:
            logger.info("Closing the connection of %s: %s", peer, error or type(error).__name__)
        finally:
            if connection is not None:
                self._connections.discard(connection)
            for each in (writer, upstream):
                if each is not None:
                    each.close()

    async def _read_connect(self, reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
        """The first packet and what came after it. Raises ConnectPacketError, TimeoutError, EOF errors."""
        buffer = b""
        async with asyncio.timeout(CONNECT_TIMEOUT):
            while (total := packet_length(buffer)) is None or len(buffer) < total:
                chunk = await reader.read(_CHUNK)
                if not chunk:
                    raise asyncio.IncompleteReadError(buffer, None)
                buffer += chunk
        return buffer[:total], buffer[total:]


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of file (or a broken connection), then close the other side."""
    try:
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()

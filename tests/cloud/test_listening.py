"""The cloud's listening sockets: connections accepted on them send small writes at once (Nagle off)."""

from __future__ import annotations

import asyncio
import socket

from edgewise.cloud.listening import bind


async def test_connections_accepted_on_a_bound_socket_have_nagle_turned_off() -> None:
    listener = bind("127.0.0.1", 0)
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Record(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Record, sock=listener)
    try:
        _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        try:
            assert await asyncio.wait_for(accepted, 10) != 0
        finally:
            writer.close()
    finally:
        server.close()
        await server.wait_closed()

"""What the cloud's HTTP servers (the API and the data plane) share: a socket bound before uvicorn starts, so a
port in use is a clear error of ours rather than uvicorn's exit, and uvicorn without its own signal handling,
because the cloud's ``serve`` owns SIGTERM and SIGINT and stops its parts in stages."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn


def bind(host: str, port: int) -> socket.socket:
    """A non-blocking socket listening on ``host``:``port``.

    Raises:
        OSError: the address cannot be bound (in use, not local, not permitted).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP by name, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets whose proto
    # says TCP, and accepted sockets inherit it; with Nagle on, a response written in two parts waited for the
    # client's delayed ACK, about 40 ms on every keep-alive request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class ServerWithoutSignals(uvicorn.Server):
    """uvicorn that leaves SIGTERM and SIGINT to its caller."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

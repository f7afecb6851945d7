"""A TCP link between a device and its cloud that a test can cut and restore, as a network outage would.

:class:`CuttableLink` listens on a fixed local port and relays every connection to the target port. While cut,
every relayed connection is closed and the port refuses connections, so the device sees its broker go away and
cannot reach it again until :meth:`CuttableLink.restore` listens on the same port. The target keeps running.

Usage::

    with CuttableLink(cloud.mqtt_port) as link:
        ...  # point the device at localhost:link.port
        link.cut()
        link.restore()
"""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.support.ports import free_port

_CHUNK = 65536


class CuttableLink:
    """Relays ``127.0.0.1:port`` to ``127.0.0.1:target``; threads, one pair per connection."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.connections = 0  #: connections relayed so far, cuts included
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None

    def __enter__(self) -> CuttableLink:
        self.restore()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cut()

    @property
    def is_cut(self) -> bool:
        return self._listener is None

    def restore(self) -> None:
        """Listen again on the same port and relay new connections."""
        if self._listener is not None:
            return
        listener = socket.create_server(("127.0.0.1", self.port))
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._acceptor.start()

    def cut(self) -> None:
        """Close every relayed connection and stop listening: the port refuses connections until restored."""
        listener, self._listener = self._listener, None
        if listener is not None:
            # shutdown wakes the thread blocked in accept(); close alone does not on Linux.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if self._acceptor is not None:
            self._acceptor.join(5)
            self._acceptor = None
        with self._lock:
            relayed, self._sockets = self._sockets, set()
        for sock in relayed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                device, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                cloud = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            except OSError:
                device.close()
                continue
            cloud.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    device.close()
                    cloud.close()
                    return
                self._sockets |= {device, cloud}
                self.connections += 1
            for source, sink in ((device, cloud), (cloud, device)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        except OSError:
            pass  # the other side or a cut closed it
        finally:
            # One direction ended: end the other, as the connection is gone for both ends.
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._sockets -= {source, sink}
            source.close()

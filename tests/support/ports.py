"""Free TCP ports on the loopback interface for servers a test starts.

A port the kernel hands out for ``bind(0)`` lies in the ephemeral range, where it may be given to any process's
next outgoing connection between the probe and the server's own bind — with several test workers, each starting
clouds, brokers and runtimes, that race was seen in CI. So ports come from below the ephemeral range instead,
which the kernel never assigns by itself, and each pytest-xdist worker takes its own slice of it, so that two
workers never hand out the same port. Within a worker a port is handed out once.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading

_FIRST = 20_000
#: Ports per worker: 16 workers fit below the usual ephemeral range (32768).
_SLICE = 750
_lock = threading.Lock()


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    digits = worker.removeprefix("gw")
    return int(digits) % 16 if digits.isdigit() else 0


def _candidates() -> itertools.cycle[int]:
    start = _FIRST + _worker_index() * _SLICE
    return itertools.cycle(range(start, start + _SLICE))


_next = _candidates()


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback TCP port nothing listens on, not handed out before by this worker (until its slice wraps)."""
    with _lock:
        for _ in range(_SLICE):
            port = next(_next)
            if _bindable(port):
                return port
    raise RuntimeError(f"no free port in this worker's slice of {_SLICE} ports")

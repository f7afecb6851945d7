"""The process of a built-in component (``python -m edgewise.components.NAME``): logs for the runtime's
component log, the client of the runtime's IPC server, and a clean stop on SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import Executor
    from types import FrameType

    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

logger = logging.getLogger(__name__)


def configure_logging() -> None:
    """INFO to stdout, WARNING and above to stderr: the runtime writes both to the component's log."""
    formatter = logging.Formatter("%(levelname)s %(message)s")
    out = logging.StreamHandler(sys.stdout)
    out.setFormatter(formatter)
    out.addFilter(lambda record: record.levelno < logging.WARNING)
    err = logging.StreamHandler(sys.stderr)
    err.setFormatter(formatter)
    err.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.handlers[:] = [out, err]
    root.setLevel(logging.INFO)


def connect_ipc(executor: Executor | None = None) -> GreengrassCoreIPCClientV2 | None:
    """A client of the runtime's IPC server (handling messages on ``executor`` if given); None, logged, when the
    server cannot be reached."""
    from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

    try:
        if executor is None:
            return GreengrassCoreIPCClientV2()
        return GreengrassCoreIPCClientV2(executor=executor)
    except Exception as error:
        logger.error("cannot connect to the runtime's IPC server: %s", error)
        return None


def stop_on_signals(stop: Callable[[], None], *, thread_name: str) -> None:
    """Call ``stop`` on SIGTERM and SIGINT, in a thread named ``thread_name``."""

    def request_stop(signum: int, frame: FrameType | None) -> None:
        # Stopping takes locks (an event's) that the interrupted main thread may hold: another thread stops.
        threading.Thread(target=stop, name=thread_name).start()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

"""The runtime's event loop: asyncio's own unless ``EDGEWISE_EVENT_LOOP`` asks for uvloop.

uvloop (``pip install 'edgewise[fast]'``) runs the same asyncio code with its I/O loop in C (libuv), and every
runtime path (subprocesses, signals, Unix and TCP sockets, TLS) works on both. It is not the default because
it did not pay here: no change in the runtime's CPU per IPC message, against 20-50 ms more to start 20
components and 6-7 MiB more idle RSS, since uvloop loads ``ssl`` and OpenSSL, which the runtime otherwise loads
only for TLS (docs/benchmarks.md, issue 14). ``EDGEWISE_EVENT_LOOP=uvloop`` uses it
(an error when it is not installed), ``auto`` uses it where it is installed, ``asyncio`` (the default) never.

Usage::

    from edgewise.runtime import eventloop

    eventloop.run(kernel.run(), loop=eventloop.choose(os.environ))
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from typing import Any, Literal, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The variable that chooses the loop: ``asyncio`` (the default), ``uvloop``, or ``auto`` (uvloop when it can
#: be imported).
ENV_VARIABLE = "EDGEWISE_EVENT_LOOP"
EventLoopName = Literal["uvloop", "asyncio"]


def choose(environ: Mapping[str, str]) -> EventLoopName:
    """The loop ``run`` uses under ``environ``.

    Raises:
        ValueError: ``EDGEWISE_EVENT_LOOP`` is set to something other than ``auto``, ``asyncio`` or
            ``uvloop``, or to ``uvloop`` when uvloop is not installed.
    """
    wanted = environ.get(ENV_VARIABLE, "asyncio").strip().lower() or "asyncio"
    if wanted not in ("auto", "asyncio", "uvloop"):
        msg = f"{ENV_VARIABLE}: expected auto, asyncio or uvloop, got {wanted!r}"
        raise ValueError(msg)
    if wanted == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if wanted == "uvloop":
            msg = f"{ENV_VARIABLE}: uvloop was asked for but is not installed (pip install 'edgewise[fast]')"
            raise ValueError(msg) from None
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T], *, loop: EventLoopName) -> T:
    """Run ``main`` to completion on ``loop`` (from :func:`choose`), like :func:`asyncio.run`."""
    logger.debug("event loop: %s", loop)
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)

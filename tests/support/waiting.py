"""Waiting on a condition with a deadline, the one way tests synchronise with processes, brokers and loops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
TIMEOUT = 30.0
INTERVAL = 0.02


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float = TIMEOUT,
    what: str = "condition",
    interval: float = INTERVAL,
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
    return result


async def eventually(
    condition: Callable[[], T],
    *,
    timeout: float = TIMEOUT,
    what: str = "condition",
    interval: float = INTERVAL,
) -> T:
    """:func:`wait_until` without blocking the event loop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := condition()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)
    return result

"""Component sources: the cancellation-safe thread runner their blocking work goes through."""

from __future__ import annotations

import asyncio
import threading

import pytest

from edgewise.runtime.deployment import run_to_completion


async def test_a_cancelled_run_ends_only_once_its_thread_has() -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[bool] = []

    def work() -> None:
        started.set()
        release.wait(5)
        finished.append(True)

    task = asyncio.create_task(run_to_completion(work))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=0.05)
    assert not done  # still waiting for the thread, which a real source would have told to stop

    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished == [True]


async def test_a_run_returns_what_the_function_returns() -> None:
    assert await run_to_completion(sum, [1, 2, 3]) == 6

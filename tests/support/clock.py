"""A clock that moves only when the test says so, for code that takes an injected ``now`` and ``sleep``."""

from __future__ import annotations

import asyncio


class FakeClock:
    """Time starts at 0 and moves with :meth:`advance`; :meth:`sleep` returns once time has moved far enough.

    Must be used from the event loop.
    """

    def __init__(self) -> None:
        self.time = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        wake = self.time + seconds
        if wake <= self.time:
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()
        entry = (wake, future)
        self._sleepers.append(entry)
        try:
            await future
        finally:
            self._sleepers.remove(entry)

    @property
    def sleeping(self) -> list[float]:
        """The durations left of the sleeps in progress, shortest first."""
        return sorted(wake - self.time for wake, future in self._sleepers if not future.done())

    def advance(self, seconds: float) -> None:
        """Move time forward and wake the sleeps that are due."""
        self.time += seconds
        for wake, future in self._sleepers:
            if wake <= self.time and not future.done():
                future.set_result(None)

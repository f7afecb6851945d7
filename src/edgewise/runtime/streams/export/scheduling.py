"""Which export sends next: priority between exports, a bound on concurrent sends, and the bandwidth limit.

Every export of the stream manager asks the one :class:`ExportScheduler` before it sends a batch. Turns go by
priority (1 first, 10 last; first come, first served within one priority), at most ``concurrency`` sends run at
once (Greengrass's ``STREAM_MANAGER_EXPORTER_THREAD_POOL_SIZE``), and with ``max_bandwidth`` (Greengrass's
``STREAM_MANAGER_EXPORTER_MAX_BANDWIDTH``, bytes per second) a token bucket shared by every export holds one
second of bytes: a batch waits until the bucket holds its size (or is full, for a batch larger than a second's
worth, which then leaves the bucket in debt), so the long-run rate never exceeds the limit.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

DEFAULT_CONCURRENCY: Final = 5


@dataclass(frozen=True)
class ExportClock:
    """Time as exports see it, injectable for tests: ``now`` in seconds (monotonic), ``sleep`` in seconds,
    ``wall_millis`` since the epoch (the clock of the stream store's ``ingest_time``)."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    wall_millis: Callable[[], int] = lambda: time.time_ns() // 1_000_000


@dataclass(order=True)
class _Turn:
    priority: int
    order: int
    size: int = field(compare=False)
    wake: asyncio.Event = field(compare=False, default_factory=asyncio.Event)


class ExportScheduler:
    """Grants turns to send. Must be used from the event loop.

    Usage::

        async with scheduler.turn(priority=config.priority, size=len(payload)):
            await channel.send(batch)
    """

    def __init__(
        self,
        *,
        max_bandwidth: int | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        clock: ExportClock | None = None,
    ) -> None:
        if max_bandwidth is not None and max_bandwidth < 1:
            raise ValueError(f"max_bandwidth must be positive, got {max_bandwidth}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be positive, got {concurrency}")
        self._rate = max_bandwidth
        self._concurrency = concurrency
        self._clock = clock or ExportClock()
        self._tokens = float(max_bandwidth or 0)
        self._filled_at = self._clock.now()
        self._waiting: list[_Turn] = []
        self._order = itertools.count()
        self._sending = 0

    @property
    def max_bandwidth(self) -> int | None:
        return self._rate

    def turn(self, *, priority: int, size: int) -> _TurnContext:
        """An async context manager that waits for this send's turn and ends it on exit."""
        return _TurnContext(self, priority, size)

    async def _acquire(self, priority: int, size: int) -> None:
        turn = _Turn(priority, next(self._order), size)
        heapq.heappush(self._waiting, turn)
        try:
            while True:
                if self._waiting[0] is turn and self._sending < self._concurrency:
                    delay = self._delay(size)
                    if delay <= 0:
                        heapq.heappop(self._waiting)
                        self._take(size)
                        self._sending += 1
                        self._wake_first()
                        return
                    turn.wake.clear()
                    # Sleep for the tokens, but wake early if a more urgent send arrives and takes the lead.
                    await _first_of(self._clock.sleep(delay), turn.wake.wait())
                    continue
                turn.wake.clear()
                await turn.wake.wait()
        except BaseException:
            if turn in self._waiting:
                self._waiting.remove(turn)
                heapq.heapify(self._waiting)
                self._wake_first()
            raise

    def _release(self) -> None:
        self._sending -= 1
        self._wake_first()

    def _wake_first(self) -> None:
        if self._waiting:
            self._waiting[0].wake.set()

    def _refill(self) -> None:
        if self._rate is None:
            return
        now = self._clock.now()
        self._tokens = min(float(self._rate), self._tokens + (now - self._filled_at) * self._rate)
        self._filled_at = now

    def _delay(self, size: int) -> float:
        """Seconds until the bucket can pay for ``size`` bytes; 0 when it can now."""
        if self._rate is None:
            return 0.0
        self._refill()
        needed = min(float(size), float(self._rate))
        return max(0.0, (needed - self._tokens) / self._rate)

    def _take(self, size: int) -> None:
        if self._rate is not None:
            self._tokens -= size


class _TurnContext:
    def __init__(self, scheduler: ExportScheduler, priority: int, size: int) -> None:
        self._scheduler = scheduler
        self._priority = priority
        self._size = size

    async def __aenter__(self) -> None:
        await self._scheduler._acquire(self._priority, self._size)

    async def __aexit__(self, *exc_info: object) -> None:
        self._scheduler._release()


async def _first_of(*waits: Awaitable[object]) -> None:
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

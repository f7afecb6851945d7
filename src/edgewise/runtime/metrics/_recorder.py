"""The runtime's metric recorder: a registry kept in memory and written to a file shortly after it changes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from pathlib import Path

from edgewise.runtime.metrics._file import clear_metrics, save_metrics
from edgewise.runtime.metrics._registry import Metric, MetricRegistry, MetricStatistics

logger = logging.getLogger(__name__)

#: Seconds between a change and the write that records it; changes in between share one write.
DEFAULT_WRITE_DELAY = 1.0


class MetricsRecorder:
    """Records component metrics and keeps ``path`` at most ``write_delay`` seconds behind.

    The file holds the metrics of the current runtime run: :meth:`start` empties it. Must be used from the
    event loop thread.
    """

    def __init__(
        self, path: Path, *, registry: MetricRegistry | None = None, write_delay: float = DEFAULT_WRITE_DELAY
    ) -> None:
        self.path = path
        self._registry = registry or MetricRegistry()
        self._write_delay = write_delay
        self._dirty = False
        self._timer: asyncio.TimerHandle | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        """Empty the file left by an earlier run.

        On the loop's thread: the runtime is starting and serves nothing yet, and the file usually holds no
        metrics already (only a reading then), where a worker thread would cost more than the work.
        """
        clear_metrics(self.path)

    def record(self, component: str, metrics: Iterable[Metric]) -> None:
        """Add measurements of ``component``; the file follows within the write delay.

        Raises:
            MetricLimitError: the component would have too many series; nothing was recorded.
        """
        self._registry.record(component, metrics, now_ms=time.time_ns() // 1_000_000)
        self._dirty = True
        if self._timer is None and self._writer is None and not self._closed:
            self._timer = asyncio.get_running_loop().call_later(self._write_delay, self._start_write)

    def statistics(self) -> MetricStatistics:
        return self._registry.statistics()

    async def close(self) -> None:
        """Write what has not been written yet; later measurements stay in memory only."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer
        if self._dirty:
            await self._write()

    def _start_write(self) -> None:
        self._timer = None
        self._writer = asyncio.get_running_loop().create_task(self._write_then_reschedule())

    async def _write_then_reschedule(self) -> None:
        try:
            await self._write()
        finally:
            self._writer = None
        if self._dirty and not self._closed:
            self._timer = asyncio.get_running_loop().call_later(self._write_delay, self._start_write)

    async def _write(self) -> None:
        self._dirty = False
        summaries = self._registry.summaries()
        try:
            await asyncio.to_thread(save_metrics, self.path, summaries)
        except OSError as exc:
            logger.error("Could not write the metrics file %s: %s", self.path, exc)

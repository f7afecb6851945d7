"""Process 0's side of a cloud run as several processes: it starts processes 1..N-1 and keeps them running.

Each child is ``python -m edgewise.cli cloud worker --data DIR --process I --processes N --supervised``
(:mod:`edgewise.cloud.worker_process`). Its settings, the broker password among them, go through its standard
input as one JSON line, never on the command line; it answers ``ready`` on its standard output once its workers
run. A child runs in a session of its own, so a Ctrl-C in the terminal reaches process 0 alone, which then stops
the children; with ``--supervised`` a child also stops when process 0 dies.

:meth:`WorkerProcesses.start` returns once every child is ready; a child that exits before that is a start
error. Afterwards a child that exits is logged and started again after 1 s, then 2, 4... up to 30 s between
tries (back to 1 s once a child has run a minute). Closing sends SIGTERM to every child and SIGKILL to those
still running 10 s later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from pathlib import Path

from edgewise.cloud.errors import CloudStartError
from edgewise.cloud.worker_process import PartitionSettings

logger = logging.getLogger(__name__)

READY_LINE = b"ready\n"
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 10.0
_BACKOFF_FIRST = 1.0
_BACKOFF_MAX = 30.0
#: A child that ran this long before it exited is started again after the first delay.
_STABLE_SECONDS = 60.0


class WorkerProcesses:
    """Processes 1..``count``-1 of a cloud, each serving its partition, restarted when they exit."""

    #: What the cloud's logs call this worker.
    name = "worker-processes"

    def __init__(
        self, data_dir: Path, count: int, settings: PartitionSettings, *, log_level: str = "INFO"
    ) -> None:
        self._data_dir = data_dir
        self._count = count
        self._settings = settings
        self._log_level = log_level
        self._stop = asyncio.Event()
        self._running: dict[int, asyncio.subprocess.Process] = {}
        self._supervisors: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start every child and return once each says it is ready.

        Raises:
            CloudStartError: a child exited before it was ready, or was not ready within 60 s.
        """
        loop = asyncio.get_running_loop()
        readiness: list[asyncio.Future[None]] = []
        for index in range(1, self._count):
            ready = loop.create_future()
            readiness.append(ready)
            self._supervisors.append(
                asyncio.create_task(self._supervise(index, ready), name=f"worker-process-{index}")
            )
        try:
            async with asyncio.timeout(_START_TIMEOUT):
                outcomes = await asyncio.gather(*readiness, return_exceptions=True)
        except TimeoutError:
            raise CloudStartError(
                f"The worker processes were not ready within {_START_TIMEOUT:.0f} s; see the log above"
            ) from None
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def close(self) -> None:
        """SIGTERM every child, SIGKILL those still running after 10 s, and wait for all of them."""
        self._stop.set()
        if not self._supervisors:
            return
        logger.info("cloud-stopping stage=worker-processes count=%d", len(self._running))
        for process in list(self._running.values()):
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        _done, slow = await asyncio.wait(self._supervisors, timeout=_STOP_TIMEOUT)
        if slow:
            for index, process in list(self._running.items()):
                logger.warning("worker-process-stop-slow process=%d pid=%d: killed", index, process.pid)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            await asyncio.wait(slow)
        self._supervisors.clear()

    async def _supervise(self, index: int, ready: asyncio.Future[None]) -> None:
        loop = asyncio.get_running_loop()
        delay = _BACKOFF_FIRST
        while not self._stop.is_set():
            started = loop.time()
            try:
                process = await self._spawn(index)
            except OSError as exc:
                if not ready.done():
                    ready.set_exception(CloudStartError(f"Worker process {index} cannot start: {exc}"))
                    return
                logger.error("worker-process-start-failed process=%d: %s", index, exc)
            else:
                code = await self._run(index, process, ready)
                if self._stop.is_set():
                    return
                if not ready.done():
                    ready.set_exception(
                        CloudStartError(
                            f"Worker process {index} exited with code {code} before it was ready; see the log above"
                        )
                    )
                    return
                if loop.time() - started >= _STABLE_SECONDS:
                    delay = _BACKOFF_FIRST
                logger.warning(
                    "worker-process-exited process=%d pid=%d code=%s; restarting in %.0f s",
                    index,
                    process.pid,
                    code,
                    delay,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, _BACKOFF_MAX)

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edgewise.cli",
            "cloud",
            "worker",
            "--data",
            str(self._data_dir),
            "--process",
            str(index),
            "--processes",
            str(self._count),
            "--log-level",
            self._log_level,
            "--supervised",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self._running[index] = process
        if self._stop.is_set():
            process.terminate()
        assert process.stdin is not None
        process.stdin.write(self._settings.to_json().encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await process.stdin.drain()
        process.stdin.close()
        return process

    async def _run(self, index: int, process: asyncio.subprocess.Process, ready: asyncio.Future[None]) -> int:
        """Wait for ``process`` to say it is ready, then to exit; its exit code."""
        assert process.stdout is not None
        try:
            if await process.stdout.readline() == READY_LINE:
                logger.info("worker-process-ready process=%d pid=%d", index, process.pid)
                if not ready.done():
                    ready.set_result(None)
            return await process.wait()
        finally:
            del self._running[index]

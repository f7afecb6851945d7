"""The drift worker: runs each enabled drift monitor's check every ``interval``.

One asyncio task finds the monitors due (never checked, or last checked ``interval`` ago), runs their checks one
after the other in the thread pool (a check reads the database and the model registry), and then waits until the
next one falls due, at most :data:`MAX_WAIT_S`, or until :meth:`DriftWorker.wake` (an API write under
``/models``: a monitor set or an alias moved) or :meth:`DriftWorker.close`. A check that fails (the alias points
nowhere, the version has no reference) is logged and tried again an interval later. A check that queues a
retraining job calls ``on_retraining`` (the training worker's ``wake``), so the job starts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable
from typing import Final

from edgewise.cloud.db import utcnow
from edgewise.cloud.drift import service
from edgewise.cloud.drift.check import run_check
from edgewise.cloud.errors import CloudError
from edgewise.cloud.models.service import model_registry
from edgewise.cloud.services import CloudServices

logger = logging.getLogger(__name__)

#: The longest the worker sleeps between looks at the monitors (a monitor set by another cloud process).
MAX_WAIT_S: Final = 60.0


class DriftWorker:
    """Checks due drift monitors (see the module docstring) until closed."""

    #: What the cloud's logs call this worker.
    name = "drift"

    def __init__(
        self,
        services: CloudServices,
        *,
        on_retraining: Callable[[], None] | None = None,
        max_wait: float = MAX_WAIT_S,
    ) -> None:
        self._services = services
        self._on_retraining = on_retraining
        self._max_wait = max_wait
        self._woken = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        """Start checking due monitors."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def close(self) -> None:
        """Stop after the check under way, if any."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._woken.set()
        await task

    def wake(self) -> None:
        """Look at the monitors again soon; safe to call from any thread."""
        if self._loop is None or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._woken.set)

    async def _run(self) -> None:
        while not self._stopping:
            self._woken.clear()
            wait = self._max_wait
            try:
                wait = await self._pass()
            except Exception:
                logger.exception("drift-worker-pass-failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), wait)

    async def _pass(self) -> float:
        """Run the due checks; the seconds until the next one is due (at most max_wait)."""
        due, upcoming = await asyncio.to_thread(self._due)
        for name in due:
            if self._stopping:
                break
            try:
                queued = await asyncio.to_thread(self._check, name)
            except CloudError as exc:
                logger.warning("drift-check-failed model=%s: %s", name, exc)
                continue
            except Exception:
                logger.exception("drift-check-error model=%s", name)
                continue
            if queued and self._on_retraining is not None:
                self._on_retraining()
        if upcoming is None:
            return self._max_wait
        return min(self._max_wait, max(0.0, (upcoming - utcnow()).total_seconds()))

    def _due(self) -> tuple[list[str], datetime.datetime | None]:
        with self._services.sessions() as session:
            return service.due_monitors(session, utcnow())

    def _check(self, name: str) -> bool:
        """Check model ``name``; whether the check queued a retraining job."""
        registry = model_registry(self._services.settings)
        with self._services.sessions() as session:
            event = run_check(session, registry, self._services.artifact_store, self._services.settings, name)
            return event.retraining_job_id is not None

"""Following built-in components in the services tree.

A built-in whose lifecycle never runs (the log manager, the shadow sync, the client-device components) does its
work while its node is in the services tree, with the configuration the node holds. :class:`BuiltinFollower`
calls the built-in's ``apply`` once at start and again after each change of the nodes it follows (changes that
come while ``apply`` runs are folded into one more call). ``apply`` failing is logged: a built-in that cannot use
its configuration must stop neither the runtime nor the following.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgewise.runtime.config import ConfigChange, ConfigStore

logger = logging.getLogger(__name__)


class BuiltinFollower:
    """Calls ``apply`` for the services-tree nodes of ``names``. Must be used from the event loop thread."""

    def __init__(
        self, store: ConfigStore, names: Sequence[str], apply: Callable[[], Awaitable[None]], *, what: str
    ) -> None:
        self._store = store
        self._names = tuple(names)
        self._apply_configuration = apply
        self._what = what
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribes: list[Callable[[], None]] = []

    async def start(self) -> None:
        """Apply what the services tree holds now, then follow its changes.

        Raises:
            RuntimeError: already started.
        """
        if self._task is not None:
            raise RuntimeError(f"{self._what} is already followed")
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()

        def changed(_: ConfigChange) -> None:
            if threading.get_ident() == loop_thread:
                self._changed.set()
            else:
                loop.call_soon_threadsafe(self._changed.set)

        self._unsubscribes = [self._store.subscribe(("services", name), changed) for name in self._names]
        await self._apply()
        self._task = asyncio.create_task(self._follow(), name=f"follow {self._what}")

    async def close(self) -> None:
        """Stop following; an ``apply`` in progress is cancelled."""
        for unsubscribe in self._unsubscribes:
            unsubscribe()
        self._unsubscribes.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def reapply(self) -> None:
        """Call ``apply`` again soon, as after a change (a part of the built-in stopped and must be restarted)."""
        self._changed.set()

    async def _follow(self) -> None:
        while True:
            await self._changed.wait()
            await self._apply()

    async def _apply(self) -> None:
        self._changed.clear()
        try:
            await self._apply_configuration()
        except Exception:
            logger.exception("%s could not apply its configuration", self._what)

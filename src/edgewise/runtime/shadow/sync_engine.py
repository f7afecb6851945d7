"""The shadow sync: keeps the configured local shadows and the cloud's in step, both ways, across outages.

:class:`ShadowSync` runs while ``aws.greengrass.ShadowManager``'s configuration has a ``synchronize`` section and the
runtime has a cloud link (:class:`~edgewise.runtime.shadow.sync.ShadowSyncComponent` follows the configuration and
starts, restarts or stops it; it imports this module only then).

One task works through a queue of shadows to sync, one shadow at a time. A shadow is queued

- for all of them, with a fresh ``get`` from the cloud, when the sync starts and on every (re)connection — this is
  how changes made on either side while offline meet;
- when a component changes it locally (IPC ``UpdateThingShadow``/``DeleteThingShadow``);
- when another client changes it in the cloud (``update/documents`` or ``delete/accepted``; the document comes
  with the message, so no ``get`` is needed).
- again after a delay (1 s, doubling to 60 s) when the cloud did not answer for it while the link was up, so a
  slow answer or a shadow the cloud does not serve never holds up the others nor waits for the next change.

Syncing a shadow reads the local shadow and its sync state, takes the freshest view of the cloud's that it has
(the last message or answer, else the last synced document, else a ``get``), decides with
:func:`~edgewise.runtime.shadow.sync_decision.decide`, and writes: the cloud with an update naming the cloud
version it decided on (optimistic locking: a 409 means the cloud moved, so it fetches and decides again), the local
shadow in one transaction with the new sync state, publishing the local topics a local update publishes
(``update/accepted``, ``update/delta``, ``update/documents``, ``delete/accepted``), so components hear cloud
changes as they hear local ones. A write applied from the cloud is not a local change and is never sent back.

With ``strategy.type: periodic`` queued shadows are synced every ``strategy.delay`` seconds instead of at once (the
full sync on connecting still runs at once). ``rateLimits.maxOutboundSyncUpdatesPerSecond`` paces requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgewise.protocol.shadow.errors import ShadowError
from edgewise.runtime.shadow.settings import SHADOW_MANAGER, ShadowKey, ShadowSyncSettings
from edgewise.runtime.shadow.sync_cloud import (
    CloudShadowRejectedError,
    CloudShadows,
    CloudShadowUnavailableError,
)
from edgewise.runtime.shadow.sync_decision import (
    SideView,
    SyncDecision,
    SyncRecord,
    decide,
    replacement_patch,
)
from edgewise.runtime.shadow.sync_state import read_local, record_agreement, write_local

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink import CloudLink
    from edgewise.runtime.shadow._service import ShadowService

logger = logging.getLogger(__name__)

#: Decisions tried on one shadow before it goes back to the end of the queue (each retry follows a conflict).
_ATTEMPTS = 3
#: Seconds before a shadow the cloud did not answer for is tried again: doubled after each miss up to the last.
_RETRY_DELAYS = (1.0, 60.0)


@dataclass(frozen=True)
class ShadowSyncStatistics:
    """Counters since the sync started."""

    pushed: int  #: cloud writes (updates and deletes)
    pulled: int  #: local writes from the cloud
    conflicts: int  #: cloud updates refused for a stale version (then fetched and decided again)
    full_syncs: int  #: times every shadow was queued with a fresh ``get`` (start and reconnections)
    queued: int  #: shadows waiting now
    unanswered: int  #: requests the cloud did not answer while connected (each shadow is tried again later)


class ShadowSync:
    """Syncs the shadows ``settings.synchronize`` names. :meth:`start`, then :meth:`close`; event loop only."""

    def __init__(
        self,
        settings: ShadowSyncSettings,
        *,
        shadows: ShadowService,
        cloud: CloudLink,
        core_thing: str,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if settings.synchronize is None:
            raise ValueError("ShadowSync needs settings with a synchronize section")
        self.settings = settings
        self.keys = settings.synchronize.shadows(core_thing)
        self._watched = frozenset(self.keys)
        self._direction = settings.synchronize.direction
        self._shadows = shadows
        self._cloud = cloud
        self._clock = clock
        self._client = CloudShadows(
            cloud, rate=settings.rate_limits.outbound_updates, on_change=self._cloud_changed, timeout=timeout
        )
        #: Queued shadows, oldest first; True: fetch the cloud's shadow before deciding.
        self._queue: dict[ShadowKey, bool] = {}
        #: The newest view of each cloud shadow heard since the last connection.
        self._known: dict[ShadowKey, SideView] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._removers: list[Callable[[], None]] = []
        #: Shadows the cloud did not answer for: the delay before the next try, and the timer that queues it.
        self._retry_delays: dict[ShadowKey, float] = {}
        self._retries: dict[ShadowKey, asyncio.TimerHandle] = {}
        self._pushed = self._pulled = self._conflicts = self._full_syncs = self._unanswered = 0

    async def start(self) -> None:
        """Listen to both sides, then start syncing (at once if connected). A shadow whose topics the broker
        refuses is left out (logged)."""
        self._removers.append(self._shadows.add_change_listener(self._local_changed))
        self._removers.append(self._cloud.add_status_listener(self._status_changed))
        try:
            refused = await self._client.watch(self.keys)
        except BaseException:
            await self.close()
            raise
        if refused:
            self.keys = tuple(key for key in self.keys if key not in refused)
            self._watched = frozenset(self.keys)
        if self._cloud.connected:
            self._queue_all()
        self._tasks.append(asyncio.create_task(self._work(), name="shadow-sync"))
        if self.settings.periodic:
            self._tasks.append(asyncio.create_task(self._tick(), name="shadow-sync-period"))
        logger.info(
            "%s syncs %d shadow(s) (%s, %s): %s",
            SHADOW_MANAGER,
            len(self.keys),
            self._direction.value,
            f"every {self.settings.delay:g} s" if self.settings.periodic else "real time",
            ", ".join(f"{key.thing}/{key.shadow or 'classic'}" for key in self.keys) or "none",
        )

    async def close(self) -> None:
        """Stop syncing; a shadow being synced is left for the next start (its sync state is not written)."""
        for remove in self._removers:
            remove()
        self._removers.clear()
        for retry in self._retries.values():
            retry.cancel()
        self._retries.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._client.close()

    def statistics(self) -> ShadowSyncStatistics:
        return ShadowSyncStatistics(
            self._pushed, self._pulled, self._conflicts, self._full_syncs, len(self._queue), self._unanswered
        )

    # -- what queues a shadow ------------------------------------------------------------------------------

    def _queue_all(self) -> None:
        self._full_syncs += 1
        self._known.clear()
        for key in self.keys:
            self._queue[key] = True
        self._wake.set()

    def _status_changed(self, connected: bool) -> None:
        if connected:
            self._queue_all()
        else:
            self._client.fail_pending("the cloud link went down")

    def _enqueue(self, key: ShadowKey) -> None:
        self._queue.setdefault(key, False)
        if not self.settings.periodic:
            self._wake.set()

    def _local_changed(self, thing: str, shadow: str) -> None:
        key = ShadowKey(thing, shadow)
        if key in self._watched and self._direction.pushes:
            self._enqueue(key)

    def _cloud_changed(self, key: ShadowKey, view: SideView) -> None:
        known = self._known.get(key)
        if known is not None and view.version < known.version:
            return  # an older message overtaken by a newer answer
        self._known[key] = view
        if self._direction.pulls:
            self._enqueue(key)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.settings.delay)
            if self._queue:
                self._wake.set()

    # -- the work ------------------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue and self._cloud.connected:
                key, fetch = next(iter(self._queue.items()))
                del self._queue[key]
                try:
                    done = await self._sync(key, fetch=fetch)
                except CloudShadowUnavailableError as exc:
                    if not self._cloud.connected:
                        logger.info("Shadow sync paused until the cloud link is back: %s", exc)
                        self._queue[key] = True
                        break
                    # Connected, yet no answer: the cloud is slow or does not serve this shadow. The others go
                    # on; this one is tried again later (sooner if it changes or the link reconnects).
                    self._unanswered += 1
                    delay = self._retry_later(key)
                    logger.warning("%s; it is tried again in %g s", exc, delay)
                    continue
                except Exception:
                    logger.exception("Could not sync %s's %s shadow", key.thing, key.shadow or "classic")
                    continue
                if done:
                    self._answered(key)
                else:
                    self._queue[key] = True

    def _retry_later(self, key: ShadowKey) -> float:
        """Queue ``key`` with a fresh ``get`` after a delay that doubles with each miss in a row; returns it."""
        first, most = _RETRY_DELAYS
        delay = self._retry_delays.get(key, first)
        self._retry_delays[key] = min(delay * 2, most)
        previous = self._retries.pop(key, None)
        if previous is not None:
            previous.cancel()
        self._retries[key] = asyncio.get_running_loop().call_later(delay, self._retry, key)
        return delay

    def _answered(self, key: ShadowKey) -> None:
        """``key`` synced: a try planned after an earlier miss is no longer needed, nor its longer delay."""
        self._retry_delays.pop(key, None)
        retry = self._retries.pop(key, None)
        if retry is not None:
            retry.cancel()

    def _retry(self, key: ShadowKey) -> None:
        del self._retries[key]
        self._queue[key] = True
        self._wake.set()

    def _cloud_view(self, key: ShadowKey, record: SyncRecord | None) -> SideView | None:
        known = self._known.get(key)
        if known is not None:
            return known
        if record is not None:
            return SideView(record.cloud_version, record.state)
        return None

    async def _sync(self, key: ShadowKey, *, fetch: bool) -> bool:
        """Decide and write until one decision is carried out; False when conflicts kept it from it."""
        for _ in range(_ATTEMPTS):
            snapshot = await self._shadows.run_in_store(functools.partial(read_local, key=key))
            cloud = None if fetch else self._cloud_view(key, snapshot.record)
            fresh = cloud is None
            if cloud is None:
                cloud = self._known[key] = await self._client.get(key)
            decision = decide(snapshot.view, cloud, snapshot.record, self._direction)
            if decision is None:
                return True
            if decision.write_cloud and decision.target is None and not fresh:
                fetch = True  # a delete names no version: decide it on what the cloud holds now
                continue
            try:
                cloud_version = (
                    await self._write_cloud(key, cloud, decision) if decision.write_cloud else cloud.version
                )
            except CloudShadowRejectedError as exc:
                if exc.code != 409:
                    logger.warning("%s; the shadow stays as it is until it changes again", exc)
                    return True
                self._conflicts += 1
                fetch = True
                continue
            if not decision.write_local:
                record = SyncRecord(snapshot.view.version, cloud_version, decision.target)
                await self._shadows.run_in_store(functools.partial(record_agreement, key=key, record=record))
                return True
            try:
                messages = await self._shadows.run_in_store(
                    functools.partial(
                        write_local,
                        key=key,
                        expected=snapshot.view,
                        target=decision.target,
                        cloud_version=cloud_version,
                        now=self._clock(),
                        size_limit=self.settings.size_limit,
                    )
                )
            except ShadowError as exc:
                logger.warning(
                    "Could not apply the cloud's %s/%s shadow locally: %s",
                    key.thing,
                    key.shadow or "classic",
                    exc.message,
                )
                return True
            if messages is None:
                fetch = False  # a component changed it meanwhile: decide again on the cloud view just written
                continue
            self._pulled += 1
            for topic, document in messages:
                self._shadows.announce(topic, document)
            return True
        return False

    async def _write_cloud(self, key: ShadowKey, cloud: SideView, decision: SyncDecision) -> int:
        """Make the cloud hold the decision's target; the cloud's version afterwards."""
        self._pushed += 1
        if decision.target is None:
            await self._client.delete(key)
            self._known[key] = SideView(cloud.version, None)
            return cloud.version
        patch = replacement_patch(cloud.state or {}, decision.target)
        version = await self._client.update(
            key, patch, version=cloud.version if cloud.state is not None else None
        )
        self._known[key] = SideView(version, decision.target)
        return version

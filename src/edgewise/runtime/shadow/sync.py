"""The shadow sync's component: follows ``aws.greengrass.ShadowManager``'s configuration and runs the sync
(:class:`~edgewise.runtime.shadow.sync_engine.ShadowSync`, where the sync itself is described) while it has a
``synchronize`` section and the runtime has a cloud link.

The sync's code is imported only when a sync starts: a runtime without a cloud, or whose ShadowManager
synchronizes nothing, never loads it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from edgewise.runtime.builtin_follower import BuiltinFollower
from edgewise.runtime.shadow.settings import SHADOW_MANAGER, ShadowConfigurationError, parse_shadow_settings

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink import CloudLink
    from edgewise.runtime.config import ConfigStore
    from edgewise.runtime.shadow._service import ShadowService
    from edgewise.runtime.shadow.sync_engine import ShadowSync, ShadowSyncStatistics

__all__ = ["ShadowSync", "ShadowSyncComponent", "ShadowSyncStatistics"]

logger = logging.getLogger(__name__)

_UNSEEN = object()


def __getattr__(name: str) -> Any:
    # The sync's classes, still reachable here, loaded on first use.
    if name in ("ShadowSync", "ShadowSyncStatistics"):
        from edgewise.runtime.shadow import sync_engine

        return getattr(sync_engine, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


class ShadowSyncComponent:
    """Follows ``aws.greengrass.ShadowManager`` in the services tree and runs a :class:`ShadowSync` while its
    configuration asks for one. A configuration that cannot be used is logged naming its key, and whatever sync
    ran keeps running. Must be used from the event loop thread."""

    def __init__(
        self,
        store: ConfigStore,
        shadows: ShadowService,
        *,
        cloud: CloudLink | None,
        thing: str,
        timeout: float = 10.0,
    ) -> None:
        self._store = store
        self._shadows = shadows
        self._cloud = cloud
        self._thing = thing
        self._timeout = timeout
        self._seen: Any = _UNSEEN
        self.sync: ShadowSync | None = None
        self._follower = BuiltinFollower(store, (SHADOW_MANAGER,), self._apply_tree, what=SHADOW_MANAGER)
        self._told_offline = False

    async def start(self) -> None:
        """Serve what the services tree holds now, then follow its changes."""
        await self._follower.start()

    async def close(self) -> None:
        """Stop following and stop the sync."""
        await self._follower.close()
        await self._stop()

    async def _apply_tree(self) -> None:
        configuration = None
        if self._store.contains(("services", SHADOW_MANAGER)):
            configuration = self._store.get(("services", SHADOW_MANAGER, "configuration"))
        if configuration == self._seen:
            return
        self._seen = configuration
        try:
            settings = parse_shadow_settings(configuration)
        except ShadowConfigurationError as error:
            kept = "the running sync keeps its settings" if self.sync else "shadows stay local"
            logger.error("%s; %s", error, kept)
            return
        if self.sync is not None and self.sync.settings == settings:
            return
        await self._stop()
        if settings.synchronize is None:
            return
        if self._cloud is None:
            if not self._told_offline:
                logger.error(
                    "%s cannot sync shadows: this device has no cloud connection (no cloud section in its "
                    "configuration file); shadows stay local",
                    SHADOW_MANAGER,
                )
                self._told_offline = True
            return
        from edgewise.runtime.shadow.sync_engine import ShadowSync

        sync = ShadowSync(
            settings, shadows=self._shadows, cloud=self._cloud, core_thing=self._thing, timeout=self._timeout
        )
        await sync.start()
        self.sync = sync

    async def _stop(self) -> None:
        sync, self.sync = self.sync, None
        if sync is not None:
            await sync.close()
            logger.info("%s stopped syncing shadows", SHADOW_MANAGER)

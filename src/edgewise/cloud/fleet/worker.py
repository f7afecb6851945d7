"""Records what devices publish about themselves: fleet status messages and presence.

Nothing is answered (the device expects no reply); a message that fails its checks is logged with the field that is
wrong and dropped, and the stored status stays as it was. Presence is retained on the broker, so a worker that
starts after the devices still learns who is connected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker.connection import BrokerConnection
from edgewise.cloud.errors import CloudError
from edgewise.cloud.fleet import status
from edgewise.cloud.workerlink import WorkerLink

logger = logging.getLogger(__name__)

HEALTH_FILTER = "$aws/things/+/greengrassv2/health/json"
PRESENCE_FILTER = "$aws/things/+/edgewise/presence"
_CLIENT_ID = "edgewise-fleet-status"

#: Called on the loop with the thing name and whether it is now connected, after a presence change is stored.
PresenceListener = Callable[[str, bool], None]


def _thing_and_kind(topic: str) -> tuple[str, str] | None:
    parts = topic.split("/")
    if (
        len(parts) == 6
        and parts[:2] == ["$aws", "things"]
        and parts[3:] == ["greengrassv2", "health", "json"]
    ):
        return parts[2], "health"
    if len(parts) == 5 and parts[:2] == ["$aws", "things"] and parts[3:] == ["edgewise", "presence"]:
        return parts[2], "presence"
    return None


class FleetStatusWorker:
    """Stores every device's fleet status and presence until closed."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        connection: BrokerConnection,
        *,
        on_presence: PresenceListener | None = None,
    ) -> None:
        self._sessions = sessions
        self._on_presence = on_presence
        self._link = WorkerLink(
            connection,
            client_id=_CLIENT_ID,
            filters=(HEALTH_FILTER, PRESENCE_FILTER),
            on_message=self._record,
        )

    async def start(self) -> None:
        """Connect and subscribe.

        Raises:
            OSError: the broker cannot be reached.
            ConnectionError: the broker refused or did not answer.
        """
        await self._link.start()

    async def close(self) -> None:
        """Disconnect."""
        await self._link.close()

    async def _record(self, topic: str, payload: bytes) -> None:
        route = _thing_and_kind(topic)
        if route is None:
            return
        thing, kind = route
        try:
            if kind == "health":
                await asyncio.to_thread(self._store_health, thing, payload)
                return
            presence = status.parse_presence(payload)
            stored = await asyncio.to_thread(self._store_presence, thing, presence)
        except CloudError as exc:
            logger.warning("fleet-status-dropped thing=%s kind=%s: %s", thing, kind, exc)
            return
        if stored and self._on_presence is not None:
            self._on_presence(thing, presence.connected)

    def _store_health(self, thing: str, payload: bytes) -> None:
        report = status.parse_health(payload)
        with self._sessions() as session:
            status.record_health(session, thing, report)

    def _store_presence(self, thing: str, presence: status.PresenceReport) -> bool:
        with self._sessions() as session:
            return status.record_presence(session, thing, presence)

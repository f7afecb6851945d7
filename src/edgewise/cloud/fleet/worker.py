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

from edgewise.cloud.broker import BrokerConnection
from edgewise.cloud.errors import CloudError
from edgewise.cloud.fleet import status
from edgewise.cloud.workerlink import WorkerLink
from edgewise.protocol import health
from edgewise.protocol.health import PresenceMessage

logger = logging.getLogger(__name__)

_CLIENT_ID = "edgewise-fleet-status"

#: Called on the loop with the thing name and whether it is now connected, after a presence change is stored.
PresenceListener = Callable[[str, bool], None]


class FleetStatusWorker:
    """Stores every device's fleet status and presence until closed."""

    #: What the cloud's logs call this worker.
    name = "fleet-status"

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
            filters=(health.HEALTH_TOPIC_FILTER, health.PRESENCE_TOPIC_FILTER),
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
        if (thing := health.health_thing(topic)) is not None:
            kind = "health"
        elif (thing := health.presence_thing(topic)) is not None:
            kind = "presence"
        else:
            return
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

    def _store_presence(self, thing: str, presence: PresenceMessage) -> bool:
        with self._sessions() as session:
            return status.record_presence(session, thing, presence)

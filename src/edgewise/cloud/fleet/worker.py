"""Records what devices publish about themselves: fleet status messages and presence.

Nothing is answered (the device expects no reply); a message that fails its checks is logged with the field that is
wrong and dropped, and the stored status stays as it was. Presence is retained on the broker, so a worker that
starts after the devices still learns who is connected.

Messages are stored in batches: those that arrive while a batch is being written wait for the next one, and a
batch of up to :data:`BATCH_MAX` messages is one transaction (a fleet deployment makes every device report at
once; one commit each cost more than the rest of the work). A message whose thing does not exist is dropped on
its own; should the batch's transaction fail, its messages are stored one by one, so one bad row never costs the
others theirs. Messages are stored in the order they arrived.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.broker import BrokerConnection
from edgewise.cloud.errors import CloudError
from edgewise.cloud.fleet import status
from edgewise.cloud.partition import Partition
from edgewise.cloud.workerlink import WorkerLink
from edgewise.protocol import health
from edgewise.protocol.health import HealthMessage, PresenceMessage

logger = logging.getLogger(__name__)

_CLIENT_ID = "edgewise-fleet-status"

#: Called on the loop with the thing name and whether it is now connected, after a presence change is stored.
PresenceListener = Callable[[str, bool], None]
#: The most messages one transaction stores.
BATCH_MAX = 500


@dataclass(frozen=True)
class _Report:
    """A checked message waiting to be stored."""

    thing: str
    message: HealthMessage | PresenceMessage


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
        partition: Partition | None = None,
    ) -> None:
        self._sessions = sessions
        self._on_presence = on_presence
        self._waiting: list[_Report] = []
        self._writing: asyncio.Task[None] | None = None
        self._link = WorkerLink(
            connection,
            client_id=_CLIENT_ID,
            filters=(health.HEALTH_TOPIC_FILTER, health.PRESENCE_TOPIC_FILTER),
            on_message=self._record,
            partition=partition,
        )

    async def start(self) -> None:
        """Connect and subscribe.

        Raises:
            OSError: the broker cannot be reached.
            ConnectionError: the broker refused or did not answer.
        """
        await self._link.start()

    async def close(self) -> None:
        """Disconnect; messages not stored yet are dropped (QoS 1 and retained presence bring them back)."""
        await self._link.close()
        if self._writing is not None:
            self._writing.cancel()
            await asyncio.gather(self._writing, return_exceptions=True)

    async def _record(self, topic: str, payload: bytes) -> None:
        parse: Callable[[bytes], HealthMessage | PresenceMessage]
        if (thing := health.health_thing(topic)) is not None:
            kind, parse = "health", status.parse_health
        elif (thing := health.presence_thing(topic)) is not None:
            kind, parse = "presence", status.parse_presence
        else:
            return
        try:
            message = parse(payload)
        except CloudError as exc:
            logger.warning("fleet-status-dropped thing=%s kind=%s: %s", thing, kind, exc)
            return
        self._waiting.append(_Report(thing, message))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.get_running_loop().create_task(self._write(), name="fleet-status-write")

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:BATCH_MAX], self._waiting[BATCH_MAX:]
            try:
                stored = await asyncio.to_thread(self._store, batch)
            except Exception:
                logger.exception("fleet-status-batch-failed messages=%d", len(batch))
                continue
            if self._on_presence is None:
                continue
            for report in stored:
                if isinstance(report.message, PresenceMessage):
                    self._on_presence(report.thing, report.message.connected)

    def _store(self, batch: Sequence[_Report]) -> list[_Report]:
        """Store ``batch`` in one transaction, or one by one should that fail; the reports stored. Blocks."""
        try:
            with self._sessions() as session:
                rows = status.status_rows(session, (report.thing for report in batch))
                stored = [report for report in batch if self._apply(session, report, rows)]
                session.commit()
            return stored
        except Exception:
            if len(batch) == 1:
                raise
            logger.warning("fleet-status-batch-retried messages=%d: storing them one by one", len(batch))
        stored = []
        for report in batch:
            try:
                stored += self._store([report])
            except Exception:
                logger.exception("fleet-status-failed thing=%s", report.thing)
        return stored

    @staticmethod
    def _apply(session: Session, report: _Report, rows: status.StatusRows) -> bool:
        try:
            if isinstance(report.message, PresenceMessage):
                return status.apply_presence(session, report.thing, report.message, rows)
            return status.apply_health(session, report.thing, report.message, rows)
        except CloudError as exc:
            logger.warning("fleet-status-dropped thing=%s: %s", report.thing, exc)
            return False

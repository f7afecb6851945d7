"""Keeps the managed broker's authorization equal to the store: ACL file, CRL, and who stays connected.

The API calls :meth:`AuthorizationSync.notify` after every successful write; bursts are coalesced, then one
sync reads the store in a worker thread, rewrites the ACL (from :func:`all_device_permissions`) and the CRL
(REVOKED certificates for good, INACTIVE ones on hold) atomically, has Mosquitto reload them, and finally
disconnects every device that lost its standing since the last sync. Mosquitto checks the CRL only during
the TLS handshake, so a device already connected with a certificate just revoked would otherwise stay
connected; after the reload it cannot come back.

A device "loses its standing" when one of its certificates stopped being ACTIVE (or was deleted) or when it
no longer has any permissions at all. A failed sync is logged and retried; the files on disk are then the
last good ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edgewise.cloud.broker.acl import THING_NAME, DevicePermissions, render_acl
from edgewise.cloud.broker.config import write_file_atomically
from edgewise.cloud.broker.errors import BrokerConfigError
from edgewise.cloud.broker.process import MosquittoBroker
from edgewise.cloud.identity.ca import CertificateAuthority
from edgewise.cloud.identity.certificates import CertificateStatus
from edgewise.cloud.identity.models import Certificate
from edgewise.cloud.identity.permissions import all_device_permissions
from edgewise.cloud.identity.service import held_serials, revoked_serials

logger = logging.getLogger(__name__)

#: How long a burst of changes may go on before one sync covers all of them.
DEFAULT_DEBOUNCE = 0.2
#: How long to wait before trying a failed sync again.
DEFAULT_RETRY_DELAY = 5.0


@dataclass(frozen=True)
class AuthorizationSnapshot:
    """What the store said at one sync: the broker's files, and who was in good standing."""

    acl: str
    crl: str
    #: Certificate id to (common name, status) of every certificate.
    certificates: dict[str, tuple[str, CertificateStatus]]
    #: Things that had permissions.
    permitted: frozenset[str]

    def dropped_since(self, previous: AuthorizationSnapshot) -> list[str]:
        """Thing names whose certificate left ACTIVE, or who lost every permission, since ``previous``."""
        dropped = set(previous.permitted - self.permitted)
        for certificate_id, (common_name, status) in previous.certificates.items():
            now = self.certificates.get(certificate_id)
            if status is CertificateStatus.ACTIVE and (now is None or now[1] is not CertificateStatus.ACTIVE):
                dropped.add(common_name)
        # Certificates made for no thing have a CN no client id can be; the broker never knows them by it.
        return sorted(name for name in dropped if THING_NAME.fullmatch(name))


def read_snapshot(session: Session, authority: CertificateAuthority) -> AuthorizationSnapshot:
    """The authorization the store holds now, rendered. Blocks (database and signing)."""
    permissions: list[DevicePermissions] = all_device_permissions(session)
    rows = session.execute(sa.select(Certificate.certificate_id, Certificate.common_name, Certificate.status))
    certificates = {certificate_id: (name, status) for certificate_id, name, status in rows}
    crl = authority.build_crl(revoked_serials(session), held_serials=held_serials(session))
    return AuthorizationSnapshot(
        acl=render_acl(permissions),
        crl=crl,
        certificates=certificates,
        permitted=frozenset(device.thing_name for device in permissions),
    )


class AuthorizationSync:
    """Renders the store's authorization into ``broker``'s files and keeps them current.

    Usage::

        sync = AuthorizationSync(sessions, broker, authority)
        await sync.start()      # first render, then the broker starts (or reloads)
        ...
        sync.notify()           # after each committed change to certificates, policies or groups
        ...
        await sync.close()
    """

    def __init__(
        self,
        session_factory: Callable[[], Session],
        broker: MosquittoBroker,
        authority: CertificateAuthority,
        *,
        debounce: float = DEFAULT_DEBOUNCE,
        retry_delay: float = DEFAULT_RETRY_DELAY,
    ) -> None:
        crl_file = broker.settings.devices.crlfile
        if crl_file is None:
            raise BrokerConfigError("devices.crlfile", "must be set for the broker to refuse revoked devices")
        self._sessions = session_factory
        self._broker = broker
        self._authority = authority
        self._crl_file: Path = crl_file
        self._debounce = debounce
        self._retry_delay = retry_delay
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last: AuthorizationSnapshot | None = None
        self._syncs = 0

    @property
    def syncs(self) -> int:
        """How many syncs have completed, the first one included."""
        return self._syncs

    async def start(self) -> None:
        """Write the ACL and CRL from the store, then start the broker (or reload it if it runs already).

        Raises:
            BrokerStartError: Mosquitto did not start.
            BrokerReloadError: Mosquitto refused the new files.
        """
        if self._task is not None:
            raise RuntimeError("the authorization sync is already started")
        snapshot = await asyncio.to_thread(self._render)
        if self._broker.statistics().state.is_running:
            await self._broker.reload()
        else:
            await self._broker.start()
        self._last = snapshot
        self._syncs += 1
        self._task = asyncio.create_task(self._run(), name="authorization-sync")
        logger.info("authorization-synced devices=%d", len(snapshot.permitted))

    def notify(self) -> None:
        """Note that authorization may have changed; a sync follows shortly. Call from the event loop."""
        self._changed.set()

    async def close(self) -> None:
        """Stop syncing; a sync under way is abandoned (the files on disk stay whole)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await self._changed.wait()
            await asyncio.sleep(self._debounce)
            self._changed.clear()
            try:
                await self._sync()
            except Exception:
                logger.exception("authorization-sync-failed retry_s=%.1f", self._retry_delay)
                await asyncio.sleep(self._retry_delay)
                self._changed.set()

    async def _sync(self) -> None:
        snapshot = await asyncio.to_thread(self._render)
        previous = self._last
        await self._broker.reload()
        dropped = snapshot.dropped_since(previous) if previous is not None else []
        for thing_name in dropped:
            await self._broker.disconnect(thing_name)
        # Only now: a sync that fails part-way is retried against the older snapshot, so no one is missed.
        self._last = snapshot
        self._syncs += 1
        logger.info("authorization-synced devices=%d disconnected=%d", len(snapshot.permitted), len(dropped))

    def _render(self) -> AuthorizationSnapshot:
        """Read the store and write both files atomically. Blocks."""
        with self._sessions() as session:
            snapshot = read_snapshot(session, self._authority)
        settings = self._broker.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_file_atomically(settings.acl_file, snapshot.acl)
        write_file_atomically(self._crl_file, snapshot.crl, mode=0o644)
        return snapshot

"""Keeps the managed broker's authorization equal to the store: ACL file, CRL, and who stays connected.

The API calls :meth:`AuthorizationSync.notify` after every successful write; bursts are coalesced, then one
sync reads the store in a worker thread, rewrites the ACL (from :func:`all_device_permissions`) and the CRL
(every certificate the CA issued that is not ACTIVE: REVOKED and deleted ones for good, INACTIVE ones on
hold) atomically, has Mosquitto reload them, and finally disconnects every device that lost its standing
since the last sync. Mosquitto checks the CRL only during the TLS handshake, so a device already connected
with a certificate just revoked would otherwise stay connected; after the reload it cannot come back.

A name the ACL cannot give (reserved for the cloud's own clients, claimed twice, or whose policies do not
render) is left out rather than failing the sync for everyone: it is logged as a warning when it first
appears and listed in :attr:`SyncStatistics.skipped` for as long as it lasts. The cloud's own client ids
are never disconnected on a device's behalf.

A device "loses its standing" when one of its certificates stopped being ACTIVE (or was deleted) or when it
no longer has any permissions at all.

A failed sync (the database briefly unavailable, Mosquitto refusing or missing the reload) is retried with
capped exponential back-off (:class:`SyncRetryPolicy`); the files on disk are then the last good ones. The
first failure of a streak is logged with its traceback, the rest only at DEBUG, and the recovery once.

OpenSSL refuses *every* client once the CRL's nextUpdate has passed, so the sync also re-renders when less
than ``crl_renew_before`` of the CRL's life is left, checked every ``crl_check_interval`` seconds against
an injectable clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from cryptography import x509
from sqlalchemy.orm import Session

from edgewise.cloud.broker.acl import render_acl
from edgewise.cloud.broker.config import write_file_atomically
from edgewise.cloud.broker.errors import BrokerConfigError
from edgewise.cloud.broker.permissions import SkippedIdentity, all_device_permissions
from edgewise.cloud.broker.process import MosquittoBroker
from edgewise.cloud.identity import (
    Certificate,
    CertificateAuthority,
    CertificateStatus,
    held_serials,
    revoked_serials,
)
from edgewise.cloud.registry import is_reserved
from edgewise.names import THING_NAME

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime.datetime]

#: How long a burst of changes may go on before one sync covers all of them.
DEFAULT_DEBOUNCE = 0.2
#: Re-render the CRL when less than this is left before its nextUpdate.
DEFAULT_CRL_RENEW_BEFORE = datetime.timedelta(days=30)
#: How often (seconds) to compare the CRL's nextUpdate with the clock.
DEFAULT_CRL_CHECK_INTERVAL = 3600.0


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class SyncRetryPolicy:
    """Wait ``min(base_delay * 2**(n-1), max_delay)`` plus up to 10 % jitter after the n-th failure in a row."""

    base_delay: float = 1.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.base_delay <= self.max_delay:
            raise BrokerConfigError(
                "retry", f"need 0 < base_delay <= max_delay, got {self.base_delay} and {self.max_delay}"
            )

    def delay(self, failures: int) -> float:
        """Seconds to wait before the next try, after ``failures`` failures in a row (at least 1)."""
        # The exponent is capped as well: 2.0**n overflows a float long before a streak could end.
        delay = min(self.base_delay * 2.0 ** min(max(failures - 1, 0), 64), self.max_delay)
        return delay * (1 + random.uniform(0, 0.1))


@dataclass(frozen=True)
class SyncStatistics:
    """Counters of one :class:`AuthorizationSync`."""

    #: Syncs that completed, the first one included.
    syncs: int
    #: Failed syncs, all together.
    failures: int
    #: Failed syncs since the last one that completed (0 when the last one completed).
    failing: int
    #: When the CRL on disk expires; None before the first sync.
    crl_next_update: datetime.datetime | None
    #: Names the last completed sync left out of the ACL, and why.
    skipped: tuple[SkippedIdentity, ...] = ()


@dataclass(frozen=True)
class AuthorizationSnapshot:
    """What the store said at one sync: the broker's files, and who was in good standing."""

    acl: str
    crl: str
    #: Certificate id to (common name, status) of every certificate.
    certificates: dict[str, tuple[str, CertificateStatus]]
    #: Things that had permissions.
    permitted: frozenset[str]
    #: Names left out of the ACL, and why.
    skipped: tuple[SkippedIdentity, ...] = ()

    @property
    def crl_next_update(self) -> datetime.datetime:
        """When OpenSSL stops accepting the CRL (and with it every client)."""
        next_update = x509.load_pem_x509_crl(self.crl.encode("ascii")).next_update_utc
        if next_update is None:
            raise BrokerConfigError("crl", "has no nextUpdate")
        return next_update

    def dropped_since(self, previous: AuthorizationSnapshot) -> list[str]:
        """Thing names whose certificate left ACTIVE, or who lost every permission, since ``previous``."""
        dropped = set(previous.permitted - self.permitted)
        for certificate_id, (common_name, status) in previous.certificates.items():
            now = self.certificates.get(certificate_id)
            if status is CertificateStatus.ACTIVE and (now is None or now[1] is not CertificateStatus.ACTIVE):
                dropped.add(common_name)
        # Certificates made for no thing have a CN no client id can be; the broker never knows them by it.
        # A reserved name is a worker's client id: taking over its session would cut the worker off.
        return sorted(name for name in dropped if THING_NAME.fullmatch(name) and not is_reserved(name))


def read_snapshot(session: Session, authority: CertificateAuthority) -> AuthorizationSnapshot:
    """The authorization the store holds now, rendered. Blocks (database and signing)."""
    permissions = all_device_permissions(session)
    rows = session.execute(sa.select(Certificate.certificate_id, Certificate.common_name, Certificate.status))
    certificates = {certificate_id: (name, status) for certificate_id, name, status in rows}
    crl = authority.build_crl(revoked_serials(session), held_serials=held_serials(session))
    return AuthorizationSnapshot(
        acl=render_acl(permissions.devices),
        crl=crl,
        certificates=certificates,
        permitted=frozenset(device.thing_name for device in permissions.devices),
        skipped=tuple(permissions.skipped),
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
        retry: SyncRetryPolicy | None = None,
        clock: Clock = _utc_now,
        crl_renew_before: datetime.timedelta = DEFAULT_CRL_RENEW_BEFORE,
        crl_check_interval: float = DEFAULT_CRL_CHECK_INTERVAL,
    ) -> None:
        crl_file = broker.settings.devices.crlfile
        if crl_file is None:
            raise BrokerConfigError("devices.crlfile", "must be set for the broker to refuse revoked devices")
        if crl_check_interval <= 0:
            raise BrokerConfigError("crl_check_interval", f"must be positive, not {crl_check_interval}")
        self._sessions = session_factory
        self._broker = broker
        self._authority = authority
        self._crl_file: Path = crl_file
        self._debounce = debounce
        self._retry = retry or SyncRetryPolicy()
        self._clock = clock
        self._crl_renew_before = crl_renew_before
        self._crl_check_interval = crl_check_interval
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last: AuthorizationSnapshot | None = None
        self._crl_next_update: datetime.datetime | None = None
        self._syncs = 0
        self._failures = 0
        self._failing = 0

    @property
    def syncs(self) -> int:
        """How many syncs have completed, the first one included."""
        return self._syncs

    def statistics(self) -> SyncStatistics:
        """The sync's counters, and what the last completed sync left out of the ACL."""
        skipped = self._last.skipped if self._last is not None else ()
        return SyncStatistics(self._syncs, self._failures, self._failing, self._crl_next_update, skipped)

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
        self._completed(snapshot)
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
            await self._wait_for_work()
            await asyncio.sleep(self._debounce)
            self._changed.clear()
            try:
                await self._sync()
            except Exception:
                self._failures += 1
                self._failing += 1
                delay = self._retry.delay(self._failing)
                if self._failing == 1:
                    logger.exception("authorization-sync-failed retry_s=%.2f (retrying with back-off)", delay)
                else:
                    logger.debug(
                        "authorization-sync-failed failures=%d retry_s=%.2f",
                        self._failing,
                        delay,
                        exc_info=True,
                    )
                await asyncio.sleep(delay)
                self._changed.set()

    def crl_renewal_due(self) -> bool:
        """Whether less than ``crl_renew_before`` is left before the CRL on disk expires."""
        next_update = self._crl_next_update
        return next_update is not None and next_update - self._clock() < self._crl_renew_before

    async def _wait_for_work(self) -> None:
        """Until a change is noted or the CRL is due for renewal."""
        while not self._changed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self._crl_check_interval)
            if self.crl_renewal_due():
                logger.info("crl-renewal-due next_update=%s", self._crl_next_update)
                self._changed.set()

    async def _sync(self) -> None:
        snapshot = await asyncio.to_thread(self._render)
        previous = self._last
        await self._broker.reload()
        dropped = snapshot.dropped_since(previous) if previous is not None else []
        for thing_name in dropped:
            await self._broker.disconnect(thing_name)
        # Only now: a sync that fails part-way is retried against the older snapshot, so no one is missed.
        self._completed(snapshot)
        logger.info("authorization-synced devices=%d disconnected=%d", len(snapshot.permitted), len(dropped))

    def _completed(self, snapshot: AuthorizationSnapshot) -> None:
        if self._failing:
            logger.info("authorization-sync-recovered failures=%d", self._failing)
        known = set(self._last.skipped) if self._last is not None else set()
        for entry in snapshot.skipped:
            if entry not in known:
                logger.warning("authorization-skipped name=%s: %s", entry.name, entry.reason)
        self._last = snapshot
        self._crl_next_update = snapshot.crl_next_update
        self._syncs += 1
        self._failing = 0

    def _render(self) -> AuthorizationSnapshot:
        """Read the store and write both files atomically. Blocks."""
        with self._sessions() as session:
            snapshot = read_snapshot(session, self._authority)
        settings = self._broker.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_file_atomically(settings.acl_file, snapshot.acl)
        write_file_atomically(self._crl_file, snapshot.crl, mode=0o644)
        return snapshot

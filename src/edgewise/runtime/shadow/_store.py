"""Durable storage of local shadows: one SQLite database in WAL mode at ``ROOT/shadows/shadows.db``.

One row per (thing, shadow) in table ``shadows``; the classic shadow has ``shadow_name = ''``. A row keeps
the shadow's ``version``, its ``state`` and ``metadata`` (JSON text), ``updated_at`` (epoch seconds of the last
local change) and ``deleted``. A deleted shadow keeps its row, with its state cleared, so that a shadow created
again continues the version numbering (as AWS IoT does within 48 hours; we keep it forever).

The cloud sync (:mod:`edgewise.runtime.shadow.sync`) keeps its state in three more columns, like the Greengrass
shadow manager's sync table: ``synced_version`` is the local version when the two sides last agreed (NULL: never
synced), ``cloud_version`` the cloud's version at that time, and ``synced_document`` the state (``desired`` and
``reported``, JSON) both held then, NULL when neither had the shadow. A sync that writes the local shadow sets
them in the same transaction; local updates never touch them. Schema version 2 added ``synced_document``; a
version 1 database is migrated when opened.

Every method blocks and must be called from the one thread that opened the store; each public operation of
:class:`~edgewise.runtime.shadow.ShadowService` runs as one transaction.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edgewise.protocol.shadow.document import Shadow, encode_document
from edgewise.runtime.shadow.sync_decision import SyncRecord

#: ``PRAGMA user_version`` of the schema below; :data:`_MIGRATIONS` steps an older database up to it.
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS shadows (
    thing_name     TEXT    NOT NULL,
    shadow_name    TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    state          TEXT    NOT NULL,
    metadata       TEXT    NOT NULL,
    deleted        INTEGER NOT NULL DEFAULT 0,
    updated_at     REAL    NOT NULL,
    synced_version INTEGER,
    cloud_version  INTEGER,
    synced_document TEXT,
    PRIMARY KEY (thing_name, shadow_name)
) WITHOUT ROWID
"""
#: The statements that bring a database from version N-1 to N, by N.
_MIGRATIONS: dict[int, tuple[str, ...]] = {2: ("ALTER TABLE shadows ADD COLUMN synced_document TEXT",)}


@dataclass(frozen=True)
class StoredShadow:
    """A row: the shadow (empty when deleted), whether it is deleted, and when it last changed."""

    shadow: Shadow
    deleted: bool
    updated_at: float


class ShadowStore:
    """The shadows table. Not thread-safe: one thread opens, uses and closes it."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    @classmethod
    def open(cls, path: Path) -> ShadowStore:
        """Open (creating if needed) the database at ``path``. Blocks (file system)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            # FULL: an update acknowledged to a component survives a power cut, not just a crash.
            connection.execute("PRAGMA synchronous=FULL")
            _migrate(connection)
        except BaseException:
            connection.close()
            raise
        return cls(connection)

    def close(self) -> None:
        self._db.close()

    def read_synced(self, thing_name: str, shadow_name: str) -> SyncRecord | None:
        """The shadow's sync state; None when it was never synced (or has no row)."""
        row = self._db.execute(
            "SELECT synced_version, cloud_version, synced_document FROM shadows "
            "WHERE thing_name = ? AND shadow_name = ?",
            (thing_name, shadow_name),
        ).fetchone()
        if row is None or row[0] is None:
            return None
        local_version, cloud_version, document = row
        return SyncRecord(
            local_version, cloud_version or 0, None if document is None else json.loads(document)
        )

    def set_synced(self, thing_name: str, shadow_name: str, record: SyncRecord) -> None:
        """Record that both sides agree on ``record`` (nothing happens when the shadow has no row)."""
        document = None if record.state is None else encode_document(record.state).decode()
        self._db.execute(
            "UPDATE shadows SET synced_version = ?, cloud_version = ?, synced_document = ? "
            "WHERE thing_name = ? AND shadow_name = ?",
            (record.local_version, record.cloud_version, document, thing_name, shadow_name),
        )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together, or not at all when it raises."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def read(self, thing_name: str, shadow_name: str) -> StoredShadow | None:
        row = self._db.execute(
            "SELECT version, state, metadata, deleted, updated_at FROM shadows "
            "WHERE thing_name = ? AND shadow_name = ?",
            (thing_name, shadow_name),
        ).fetchone()
        if row is None:
            return None
        version, state, metadata, deleted, updated_at = row
        return StoredShadow(
            Shadow(json.loads(state), json.loads(metadata), version), bool(deleted), updated_at
        )

    def write(self, thing_name: str, shadow_name: str, shadow: Shadow, *, updated_at: float) -> None:
        """Store the shadow's new content (creating or reviving it)."""
        self._db.execute(
            "INSERT INTO shadows (thing_name, shadow_name, version, state, metadata, deleted, updated_at) "
            "VALUES (?, ?, ?, ?, ?, 0, ?) "
            "ON CONFLICT (thing_name, shadow_name) DO UPDATE SET version = excluded.version, "
            "state = excluded.state, metadata = excluded.metadata, deleted = 0, updated_at = excluded.updated_at",
            (
                thing_name,
                shadow_name,
                shadow.version,
                encode_document(shadow.state).decode(),
                encode_document(shadow.metadata).decode(),
                updated_at,
            ),
        )

    def mark_deleted(self, thing_name: str, shadow_name: str, *, updated_at: float) -> None:
        """Clear the shadow's content and flag it deleted; its version is kept."""
        self._db.execute(
            "UPDATE shadows SET state = '{}', metadata = '{}', deleted = 1, updated_at = ? "
            "WHERE thing_name = ? AND shadow_name = ?",
            (updated_at, thing_name, shadow_name),
        )

    def named_shadows(self, thing_name: str, *, after: str, limit: int) -> list[str]:
        """Names of the thing's named shadows that exist, sorted, starting after ``after``."""
        rows = self._db.execute(
            "SELECT shadow_name FROM shadows WHERE thing_name = ? AND shadow_name > ? AND deleted = 0 "
            "ORDER BY shadow_name LIMIT ?",
            (thing_name, after, limit),
        ).fetchall()
        return [name for (name,) in rows]


def _migrate(connection: sqlite3.Connection) -> None:
    """Create the schema, or step an older database up to :data:`SCHEMA_VERSION` in one transaction."""
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    exists = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'shadows'"
    ).fetchone()
    if exists and version >= SCHEMA_VERSION:
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        if not exists:
            connection.execute(_SCHEMA)
        else:
            for step in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[step]:
                    connection.execute(statement)
        connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")

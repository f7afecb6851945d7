"""The spool: outgoing messages kept on disk until the broker has them, oldest first, bounded in bytes.

SQLite in WAL mode (``ROOT/spool/spool.db``) with ``synchronous=NORMAL``: a committed message survives a
crash or ``kill -9`` of the runtime (not necessarily a power cut). An in-memory index mirrors the table,
so sending never reads the disk; its size is bounded by the same byte limit. SQLite runs on one worker
thread and jobs run in the order they were submitted, which keeps the table in the order of the index.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from edgewise.runtime.cloudlink._message import CloudMessage, MessageProperties
from edgewise.runtime.cloudlink.errors import MessageTooLargeError

logger = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    properties TEXT,
    created REAL NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class SpooledMessage:
    """A message in the spool; ``id`` orders the spool, ``created`` is wall-clock time (for expiry)."""

    id: int
    message: CloudMessage
    created: float
    size: int


def message_size(message: CloudMessage) -> int:
    """The bytes a message counts against the spool limit: topic, payload and properties."""
    properties = message.properties.to_json()
    return len(message.topic.encode()) + len(message.payload) + (len(properties) if properties else 0)


class _Database:
    """The SQLite side; every method blocks and runs on the spool's worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.connection: sqlite3.Connection | None = None

    def open(self) -> list[SpooledMessage]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._open()
        except sqlite3.DatabaseError as exc:
            if self.connection is not None:
                self.connection.close()
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            logger.error(
                "Spool %s cannot be read (%s); moved it to %s and started empty", self.path, exc, aside
            )
            self.path.replace(aside)
            for suffix in ("-wal", "-shm"):
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
            return self._open()

    def _open(self) -> list[SpooledMessage]:
        connection = self.connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(_SCHEMA)
        loaded: list[SpooledMessage] = []
        unreadable: list[int] = []
        rows = connection.execute(
            "SELECT id, topic, payload, qos, retain, properties, created FROM messages ORDER BY id"
        )
        for row_id, topic, payload, qos, retain, properties, created in rows:
            try:
                message = CloudMessage(
                    topic, bytes(payload), int(qos), bool(retain), MessageProperties.from_json(properties)
                )
            except (ValueError, KeyError, TypeError) as exc:
                logger.error("Spool %s: dropping unreadable message %d: %s", self.path, row_id, exc)
                unreadable.append(row_id)
                continue
            loaded.append(SpooledMessage(row_id, message, float(created), message_size(message)))
        self.delete(unreadable)
        return loaded

    def insert(self, message: CloudMessage, created: float, drop: list[int]) -> int:
        assert self.connection is not None
        with self.connection:
            self.connection.execute("BEGIN")
            self._delete(drop)
            cursor = self.connection.execute(
                "INSERT INTO messages (topic, payload, qos, retain, properties, created) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    message.topic,
                    message.payload,
                    message.qos,
                    int(message.retain),
                    message.properties.to_json(),
                    created,
                ),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def delete(self, ids: list[int]) -> None:
        if not ids:
            return
        assert self.connection is not None
        with self.connection:
            self.connection.execute("BEGIN")
            self._delete(ids)

    def _delete(self, ids: list[int]) -> None:
        assert self.connection is not None
        self.connection.executemany("DELETE FROM messages WHERE id = ?", [(row_id,) for row_id in ids])

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class Spool:
    """A bounded FIFO of outgoing messages on disk. Use from the event loop thread only."""

    def __init__(self, path: Path, *, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.dropped = 0  #: messages dropped to make room since the spool was opened
        self._database = _Database(path)
        self._executor: ThreadPoolExecutor | None = None
        self._messages: collections.OrderedDict[int, SpooledMessage] = collections.OrderedDict()
        self._bytes = 0  # of the messages in the index, plus those being inserted
        self._deletes: list[int] = []
        self._flush_scheduled = False

    async def _run(self, job: Callable[..., T], *args: object) -> T:
        assert self._executor is not None, "the spool is not open"
        return await asyncio.get_running_loop().run_in_executor(self._executor, job, *args)

    async def open(self) -> None:
        """Open (or create) the file and load what an earlier run left, oldest first."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgewise-spool")
        loaded = await self._run(self._database.open)
        for entry in loaded:
            self._messages[entry.id] = entry
            self._bytes += entry.size
        if loaded:
            logger.info(
                "Spool %s: %d message(s) (%d bytes) left from an earlier run", self.path, *self._usage()
            )

    def _usage(self) -> tuple[int, int]:
        return len(self._messages), self._bytes

    async def close(self) -> None:
        """Write pending removals and close the file; what is still spooled stays for the next run."""
        if self._executor is None:
            return
        self._flush_deletes()
        await self._run(self._database.close)
        self._executor.shutdown(wait=True)
        self._executor = None

    def __len__(self) -> int:
        return len(self._messages)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._messages

    def __iter__(self) -> Iterator[SpooledMessage]:
        return iter(list(self._messages.values()))

    @property
    def size_bytes(self) -> int:
        """Bytes of the messages in the spool (and of those being added)."""
        return self._bytes

    def get(self, message_id: int) -> SpooledMessage | None:
        return self._messages.get(message_id)

    async def add(self, message: CloudMessage) -> SpooledMessage:
        """Store ``message`` at the end, dropping the oldest messages if it would not fit otherwise.

        Returns once the message is committed to disk.

        Raises:
            MessageTooLargeError: the message alone is bigger than the spool.
        """
        size = message_size(message)
        if size > self.max_bytes:
            raise MessageTooLargeError(message.topic, size, self.max_bytes)
        victims: list[int] = []
        while self._bytes + size > self.max_bytes and self._messages:
            victim_id, victim = self._messages.popitem(last=False)
            self._bytes -= victim.size
            victims.append(victim_id)
        if victims:
            self.dropped += len(victims)
            logger.warning(
                "Spool full (%d bytes): dropped the %d oldest message(s) (%d dropped since start)",
                self.max_bytes,
                len(victims),
                self.dropped,
            )
        self._bytes += size
        created = time.time()
        try:
            message_id = await self._run(self._database.insert, message, created, victims)
        except BaseException:
            self._bytes -= size
            raise
        entry = SpooledMessage(message_id, message, created, size)
        self._messages[message_id] = entry
        return entry

    def remove(self, message_id: int) -> bool:
        """Forget a message (sent, or acknowledged); False when it was not in the spool any more."""
        entry = self._messages.pop(message_id, None)
        if entry is None:
            return False
        self._bytes -= entry.size
        self._deletes.append(message_id)
        if not self._flush_scheduled:
            # Acknowledgements come in bursts: delete them from the file in one transaction.
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_deletes)
        return True

    def _flush_deletes(self) -> None:
        self._flush_scheduled = False
        deletes, self._deletes = self._deletes, []
        if deletes and self._executor is not None:
            future = asyncio.get_running_loop().run_in_executor(
                self._executor, self._database.delete, deletes
            )
            future.add_done_callback(_log_failure)


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and (exc := future.exception()) is not None:
        logger.error("Spool: removing sent messages from the file failed: %s", exc)

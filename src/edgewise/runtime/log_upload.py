"""Sending the runtime's log files to the cloud: tailing them with a checkpoint, batching their lines, and the
channel that publishes a batch and waits for the cloud's answer (:mod:`edgewise.protocol.logs`).

A log *source* is one live file (``logs/edgewise.log`` or ``logs/<component>.log``) and its rotated copies
``<file>.1`` (newest) ... ``<file>.N`` (oldest); rotation renames them, so a file is known by its ``fileId``: its
inode and a digest of its first line, which survive a rename and tell a new file from an old one whose inode was
reused. The checkpoint maps each fileId to the byte offset up to which the cloud has acknowledged its lines; it is
written atomically after each accepted batch, so that after a restart the upload resumes there and never resends
an acknowledged line. A file shorter than its checkpoint was truncated and is read again from its start.

Only complete lines (ending with a newline) are read. A line's timestamp and level are read when it has the
runtime's formats (component logs ``2026-12-07T10:12:37.031Z [INFO] (Run) text``, the system log
``2026-12-07 10:12:37,031 INFO edgewise.x: text``); a line without a level (a traceback's) takes the level of the
line above it. Lines below the source's minimum level are skipped, and acknowledged with the batch after them.
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from edgewise.errors import EdgewiseError
from edgewise.protocol import logs
from edgewise.protocol.logs import LogEntry, LogLevel
from edgewise.runtime.files import write_atomically

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink import CloudLink, CloudMessage, CloudSubscription

logger = logging.getLogger(__name__)

DEFAULT_ANSWER_TIMEOUT: Final = 30.0
#: Most rotated copies looked at per source.
_MAX_BACKUPS: Final = 50
#: The bytes of a file's start that name it (with its inode).
_HEAD_BYTES: Final = 256
_READ_CHUNK: Final = 64 * 1024
_COMPONENT_LINE = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z \[([A-Z]+)\] ")
_SYSTEM_LINE = re.compile(rb"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ([A-Z]+) ")
_LEVEL_NAMES: Final[dict[str, LogLevel]] = {
    "TRACE": "TRACE",
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARN": "WARN",
    "WARNING": "WARN",
    "ERROR": "ERROR",
    "CRITICAL": "ERROR",
    "FATAL": "ERROR",
}

Answer = logs.BatchAccepted | logs.BatchRejection


class LogDeliveryError(EdgewiseError):
    """A log batch that got no answer (offline, timed out, link closed); it is sent again later."""


def level_rank(level: LogLevel) -> int:
    """Where ``level`` stands among the levels, lowest first."""
    return logs.LEVELS.index(level)


def read_line(line: bytes) -> tuple[int | None, LogLevel | None]:
    """The timestamp (ms) and level a runtime log line carries, each None when the line does not say."""
    match = _COMPONENT_LINE.match(line)
    utc = True
    if match is None:
        match = _SYSTEM_LINE.match(line)
        utc = False  # logging's asctime is local time
    if match is None:
        return None, None
    level = _LEVEL_NAMES.get(match.group(3).decode())
    try:
        parsed = time.strptime(match.group(1).decode().replace("T", " "), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None, level
    seconds = calendar.timegm(parsed) if utc else time.mktime(parsed)
    return int(seconds) * 1000 + int(match.group(2)), level


@dataclass(frozen=True)
class LogSource:
    """One log file and its rotated copies, uploaded as ``component`` at or above ``minimum_level``."""

    component: str
    path: Path
    minimum_level: LogLevel = "INFO"

    def files(self) -> list[Path]:
        """The files that exist, oldest first: ``<file>.N`` ... ``<file>.1``, then the live one."""
        found = [
            backup
            for index in range(_MAX_BACKUPS, 0, -1)
            if (backup := self.path.with_name(f"{self.path.name}.{index}")).is_file()
        ]
        if self.path.is_file():
            found.append(self.path)
        return found


def file_id(path: Path) -> str | None:
    """The identifier of the file at ``path`` across renames, or None while it has no complete first line."""
    try:
        with path.open("rb") as file:
            inode = os.fstat(file.fileno()).st_ino
            head = file.read(_HEAD_BYTES)
    except OSError:
        return None
    if b"\n" not in head and len(head) < _HEAD_BYTES:
        return None
    first = head.split(b"\n", 1)[0]
    return f"{inode}-{hashlib.sha256(first).hexdigest()[:16]}"


class Checkpoint:
    """Acknowledged offsets per fileId, kept in a JSON file replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offsets: dict[str, int] = {}
        try:
            body = json.loads(path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as error:
            logger.warning(
                "Log upload checkpoint %s cannot be read (%s); uploading from the start", path, error
            )
            return
        if isinstance(body, dict):
            self.offsets = {
                str(key): value
                for key, value in body.items()
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0
            }

    def offset(self, identifier: str) -> int:
        """Where the unacknowledged lines of that file start."""
        return self.offsets.get(identifier, 0)

    def save(self, offsets: dict[str, int], keep: set[str] | None = None) -> None:
        """Record ``offsets`` (and forget fileIds not in ``keep``, when given), then write the file."""
        self.offsets.update(offsets)
        if keep is not None:
            self.offsets = {key: value for key, value in self.offsets.items() if key in keep}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, json.dumps(self.offsets, sort_keys=True).encode())


@dataclass
class Batch:
    """Entries to send, and where each file's checkpoint moves once the cloud accepts them."""

    entries: list[LogEntry] = field(default_factory=list)
    offsets: dict[str, int] = field(default_factory=dict)
    size: int = logs.EMPTY_BATCH_BYTES


def collect(sources: list[LogSource], checkpoint: Checkpoint) -> Batch:
    """The next batch: unacknowledged lines of ``sources`` (each source's files oldest first), as many as fit
    in :data:`~edgewise.protocol.logs.MAX_BATCH_BYTES`. A batch with offsets but no entries skipped only lines
    below the minimum level."""
    batch = Batch()
    for source in sources:
        for path in source.files():
            if not _collect_file(source, path, checkpoint, batch):
                return batch
    return batch


def _collect_file(source: LogSource, path: Path, checkpoint: Checkpoint, batch: Batch) -> bool:
    """Add ``path``'s lines to ``batch``; False once the batch is full."""
    identifier = file_id(path)
    if identifier is None:
        return True
    start = checkpoint.offset(identifier)
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size < start:
                logger.info("%s was truncated; uploading it from its start", path)
                start = 0
            if size == start:
                return True
            file.seek(start)
            minimum = level_rank(source.minimum_level)
            level: LogLevel | None = None
            for offset, line in _lines(file, start):
                timestamp, line_level = read_line(line)
                level = line_level or level
                end = offset + len(line)
                if level is not None and level_rank(level) < minimum:
                    batch.offsets[identifier] = end
                    continue
                text = line.rstrip(b"\r\n").decode("utf-8", errors="replace").replace("\r", " ")
                entry = LogEntry(
                    component=source.component,
                    file=path.name,
                    file_id=identifier,
                    offset=offset,
                    timestamp_ms=timestamp,
                    level=line_level,
                    message=logs.cut_message(text),
                )
                size_of = logs.encoded_entry_size(entry)
                if batch.size + size_of > logs.MAX_BATCH_BYTES:
                    return False
                batch.entries.append(entry)
                batch.size += size_of
                batch.offsets[identifier] = end
    except OSError as error:
        logger.warning("Cannot read log file %s: %s", path, error)
    return True


def _lines(file: Any, start: int) -> Iterator[tuple[int, bytes]]:
    """Complete lines from the file's position ``start``, with their offsets."""
    offset, pending = start, b""
    while chunk := file.read(_READ_CHUNK):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield offset, line + b"\n"
            offset += len(line) + 1


def clean_up(
    source: LogSource, checkpoint: Checkpoint, *, delete_uploaded: bool, disk_space_limit: int | None
) -> list[Path]:
    """Delete rotated files of ``source`` whose lines were all acknowledged: each of them when
    ``delete_uploaded``, else the oldest while the source's files take more than ``disk_space_limit`` bytes. The
    live file is never deleted. Returns what was deleted."""
    files = source.files()
    sizes = {path: _size(path) for path in files}
    total = sum(sizes.values())
    deleted: list[Path] = []
    for path in files:
        if path == source.path:
            break
        identifier = file_id(path)
        uploaded = identifier is not None and checkpoint.offset(identifier) >= sizes[path]
        over = disk_space_limit is not None and total > disk_space_limit
        if uploaded and (delete_uploaded or over):
            try:
                path.unlink()
            except OSError as error:
                logger.warning("Cannot delete uploaded log file %s: %s", path, error)
                continue
            total -= sizes[path]
            deleted.append(path)
    return deleted


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def live_file_ids(sources: list[LogSource]) -> set[str]:
    """The fileIds of every file the sources have now: the checkpoint keeps only these."""
    return {identifier for source in sources for path in source.files() if (identifier := file_id(path))}


class LogChannel(Protocol):
    """Sends log batches to one destination."""

    async def send(self, client_token: str, entries: list[LogEntry]) -> Answer:
        """The destination's answer.

        Raises:
            LogDeliveryError: no answer came; the batch may or may not have been stored.
        """
        ...


class CloudLogChannel:
    """Log batches to the Edgewise cloud over the runtime's cloud link: published at QoS 1 once connected, the
    answer matched by client token. Must be used from the event loop."""

    def __init__(self, link: CloudLink, thing: str, *, timeout: float = DEFAULT_ANSWER_TIMEOUT) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self._link = link
        self._thing = thing
        self._timeout = timeout
        self._waiting: dict[str, asyncio.Future[Answer]] = {}
        self._subscriptions: list[CloudSubscription] = []
        self._subscribing = asyncio.Lock()

    async def send(self, client_token: str, entries: list[LogEntry]) -> Answer:
        """Publish the batch once connected and wait for the cloud's answer.

        Raises:
            LogDeliveryError: the cloud did not answer in time, or the link refused the publish.
        """
        from edgewise.runtime.cloudlink import CloudLinkError, MessageProperties

        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting[client_token] = future
        try:
            await self._subscribe()
            await self._link.wait_connected()
            await self._link.publish(
                logs.batch_topic(self._thing),
                logs.build_batch(client_token, entries),
                qos=1,
                # A copy the spool still holds once the answer is given up on is dropped, not sent late.
                properties=MessageProperties(message_expiry_interval=max(1, int(self._timeout))),
            )
            async with asyncio.timeout(self._timeout):
                return await future
        except TimeoutError:
            msg = f"The cloud did not answer log batch {client_token} within {self._timeout:.0f} s"
            raise LogDeliveryError(msg) from None
        except CloudLinkError as error:
            raise LogDeliveryError(
                f"The cloud link did not take log batch {client_token}: {error}"
            ) from error
        finally:
            self._waiting.pop(client_token, None)

    def close(self) -> None:
        """Stop listening for answers."""
        for subscription in self._subscriptions:
            subscription.unsubscribe()
        self._subscriptions.clear()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(LogDeliveryError("The log channel to the cloud was closed"))

    async def _subscribe(self) -> None:
        async with self._subscribing:
            if self._subscriptions:
                return
            for outcome in (logs.ACCEPTED, logs.REJECTED):
                topic = logs.reply_topic(self._thing, outcome)
                self._subscriptions.append(await self._link.subscribe(topic, self._received, qos=1))

    def _received(self, message: CloudMessage) -> None:
        answer = logs.read_reply(message.topic, message.payload)
        if answer is None:
            logger.warning("Ignoring a log batch answer on %r that cannot be read", message.topic)
            return
        future = None if answer.client_token is None else self._waiting.get(answer.client_token)
        if future is not None and not future.done():
            future.set_result(answer)


@dataclass(frozen=True)
class UploadRule:
    """How one source is uploaded and cleaned up."""

    source: LogSource
    delete_uploaded: bool = False
    disk_space_limit: int | None = None  #: bytes


class LogUploader:
    """Uploads the sources' new lines batch after batch, then waits ``interval`` seconds (or :meth:`wake`).

    A batch that gets no answer, or is refused as Throttled or InternalError, is sent again after
    ``retry_delay``; one refused as InvalidPayload is logged and skipped, since resending it cannot help.
    """

    def __init__(
        self,
        rules: list[UploadRule],
        checkpoint: Checkpoint,
        channel: LogChannel,
        *,
        interval: float,
        retry_delay: float = 5.0,
        token: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.rules = rules
        self.checkpoint = checkpoint
        self._channel = channel
        self._interval = interval
        self._retry_delay = retry_delay
        self._token = token
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Upload now instead of at the end of the interval."""
        self._wake.set()

    async def run(self) -> None:
        """Upload until cancelled."""
        while True:
            # Cleared before reading the files, not after: a wake that comes while a round uploads starts the
            # next round at once instead of being lost until the interval ends.
            self._wake.clear()
            delay = self._interval
            try:
                while await self.upload_once():
                    pass
            except LogDeliveryError as error:
                logger.warning("Log upload waits %.0f s to send again: %s", self._retry_delay, error)
                delay = min(self._interval, self._retry_delay)
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def upload_once(self) -> bool:
        """Send one batch and move the checkpoint; False when there was nothing to send.

        Raises:
            LogDeliveryError: the batch is to be sent again later.
        """
        sources = [rule.source for rule in self.rules]
        batch = await asyncio.to_thread(collect, sources, self.checkpoint)
        if not batch.offsets:
            await asyncio.to_thread(self._clean_up)
            return False
        if batch.entries:
            answer = await self._channel.send(self._token(), batch.entries)
            if isinstance(answer, logs.BatchRejection):
                if answer.code != logs.INVALID_PAYLOAD:
                    raise LogDeliveryError(f"The cloud refused a log batch ({answer.code}): {answer.message}")
                logger.error(
                    "The cloud refused a log batch as invalid; its lines are skipped: %s", answer.message
                )
        keep = await asyncio.to_thread(live_file_ids, sources)
        await asyncio.to_thread(self.checkpoint.save, batch.offsets, keep | set(batch.offsets))
        return True

    def _clean_up(self) -> None:
        for rule in self.rules:
            clean_up(
                rule.source,
                self.checkpoint,
                delete_uploaded=rule.delete_uploaded,
                disk_space_limit=rule.disk_space_limit,
            )

"""A component's log file: its processes' output lines and its state changes, rotated by size.

Lines look like ``2026-11-25T19:00:00.123Z [INFO] (Run) hello``: the UTC time, the level (stdout is
INFO, stderr WARN), the lifecycle step (or ``lifecycle`` for the supervisor's own notes) and the text.

Writes happen on the event loop, synchronously: each line is one small append to a file that stays
open, which the page cache absorbs in microseconds, while handing every line to a thread would cost
more than the write and could reorder lines. Each line is flushed so ``tail -f`` sees it at once.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Literal

logger = logging.getLogger(__name__)

#: Log levels a component log line can carry.
Level = Literal["INFO", "WARN", "ERROR"]


def format_line(step: str, level: Level, text: str, *, now: float | None = None) -> str:
    """One log line (with its newline) for ``text`` written by ``step`` at ``now`` (default: the time now)."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    when = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
    flat = text.replace("\r", " ").replace("\n", " ")
    return f"{when} [{level}] ({step}) {flat}\n"


class ComponentLog:
    """Appends lines to one component's log file, rotating it to ``<file>.1`` ... before it gets too big.

    The file is opened on the first write. Must be used from the event loop thread.
    """

    def __init__(self, path: Path, *, max_bytes: int, backups: int) -> None:
        self.path = path
        self._max_bytes = max_bytes
        self._backups = backups
        self._file: BinaryIO | None = None
        self._size = 0
        self._failing = False

    def write(self, step: str, level: Level, text: str) -> None:
        """Append one line. A file system error is logged once and the line dropped: output must never
        stop a component."""
        data = format_line(step, level, text).encode("utf-8", errors="replace")
        try:
            file = self._file or self._open()
            if self._size and self._size + len(data) > self._max_bytes:
                self._rotate()
                file = self._open()
            file.write(data)
            file.flush()
            self._size += len(data)
            self._failing = False
        except OSError as exc:
            if not self._failing:
                logger.warning("component-log-write-failed: cannot write %s: %s", self.path, exc)
            self._failing = True
            self.close()

    def close(self) -> None:
        """Close the file; a later write opens it again."""
        if self._file is not None:
            file, self._file = self._file, None
            file.close()

    def _open(self) -> BinaryIO:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = self._file = self.path.open("ab")
        self._size = file.tell()
        return file

    def _rotate(self) -> None:
        self.close()
        if self._backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            self._backup(self._backups).unlink(missing_ok=True)
            for index in range(self._backups - 1, 0, -1):
                older = self._backup(index)
                if older.exists():
                    older.rename(self._backup(index + 1))
            self.path.rename(self._backup(1))

    def _backup(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")

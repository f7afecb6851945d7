"""How far each export of a stream got, kept on disk so that export resumes exactly after a restart.

A ``File`` stream's checkpoints live in its directory (``exports/<sha256 of kind and identifier>.json``), so they
go when the stream is deleted. Each is replaced atomically (temporary file, fsync, rename, fsync of the
directory) after the cloud acknowledged a batch: a crash leaves the previous checkpoint or the new one, never a
torn one, and at worst the last batch is sent again, which the cloud stores once. A ``Memory`` stream loses its
messages at a restart, so its checkpoints stay in memory (``directory`` None).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from edgewise.runtime.streams.export.definitions import MAX_SEQUENCE_NUMBER, ExportConfig
from edgewise.runtime.streams.segments import fsync_directory

logger = logging.getLogger(__name__)

CHECKPOINT_DIRECTORY: Final = "exports"
_MAX_CHECKPOINT_BYTES: Final = 4096


@dataclass(frozen=True)
class Checkpoint:
    """The last sequence number the cloud acknowledged for one export, and what was exported so far."""

    last_sequence_number: int
    exported_messages: int = 0
    exported_bytes: int = 0
    #: Milliseconds since the epoch of the last acknowledged batch.
    last_export_time: int = 0


class CheckpointFile:
    """One export's checkpoint: :meth:`load` once, :meth:`save` after each acknowledged batch."""

    def __init__(self, directory: Path | None, config: ExportConfig) -> None:
        self._path: Path | None = None
        if directory is not None:
            digest = hashlib.sha256(f"{config.kind.value}\0{config.identifier}".encode()).hexdigest()
            self._path = directory / CHECKPOINT_DIRECTORY / f"{digest}.json"
        self._memory: Checkpoint | None = None

    @property
    def path(self) -> Path | None:
        return self._path

    async def load(self) -> Checkpoint | None:
        """The saved checkpoint, or None if there is none (or it cannot be read: logged, export starts over)."""
        if self._path is None:
            return self._memory
        return await asyncio.to_thread(_read, self._path)

    async def save(self, checkpoint: Checkpoint) -> None:
        """Replace the checkpoint durably."""
        self._memory = checkpoint
        if self._path is not None:
            await asyncio.to_thread(_write, self._path, checkpoint)


def _read(path: Path) -> Checkpoint | None:
    try:
        data = path.read_bytes()[: _MAX_CHECKPOINT_BYTES + 1]
    except FileNotFoundError:
        return None
    try:
        if len(data) > _MAX_CHECKPOINT_BYTES:
            raise ValueError(f"larger than {_MAX_CHECKPOINT_BYTES} bytes")
        body = json.loads(data)
        checkpoint = Checkpoint(**body)
        for value in asdict(checkpoint).values():
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not -1 <= value <= MAX_SEQUENCE_NUMBER
            ):
                raise ValueError(f"{value!r} is not a count")
    except (ValueError, TypeError) as error:
        # Starting over sends acknowledged messages again, which the cloud stores once: nothing is lost.
        logger.error("Ignoring export checkpoint %s, which cannot be read: %s", path, error)
        return None
    return checkpoint


def _write(path: Path, checkpoint: Checkpoint) -> None:
    path.parent.mkdir(mode=0o700, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    with temporary.open("w", encoding="utf-8") as file:
        json.dump(asdict(checkpoint), file)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)
    fsync_directory(path.parent)

"""Crash-safe file replacement, shared by every part of the runtime that persists a whole file."""

from __future__ import annotations

import os
from pathlib import Path


def sync_directory(directory: Path) -> None:
    """Make a rename or a file creation in ``directory`` durable. Blocks."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomically(path: Path, data: bytes, *, mode: int = 0o644, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file.

    Blocks: writes a temporary file beside it (created with ``mode``, so a secret is never readable by others
    even for a moment), fsyncs it, renames it over ``path``, fsyncs the folder. With ``durable=False`` there
    is no fsync: readers still see the old or the new file whole, but after a power loss the file may be
    either, or empty; for what is worthless after a restart anyway (a token of this run).
    """
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        if durable:
            file.flush()
            os.fsync(file.fileno())
    os.replace(temporary, path)
    if durable:
        sync_directory(path.parent)


def write_if_changed(path: Path, data: bytes, *, mode: int = 0o644) -> bool:
    """:func:`write_atomically`, unless ``path`` already holds ``data``; True when it wrote. Blocks.

    A file the runtime refreshes at every start usually holds the same bytes as before: reading it back is
    far cheaper than the two fsyncs of rewriting it.
    """
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    write_atomically(path, data, mode=mode)
    return True

"""Extracting ZIP artifacts within limits: expanded size, compression ratio and the disk's free space.

A ZIP's header says how big its entries are, but a hostile or broken archive can say anything, so the limits
are checked twice: against the declared sizes before anything is written (cheap refusal of an honest bomb),
and against the bytes actually written, counted as they are written. Entries are written only as regular files
and directories inside a fresh staging directory; an entry naming a place outside it is refused. Whatever
goes wrong, the staging directory and everything extracted into it are removed. Blocks (file system).
"""

from __future__ import annotations

import os
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from edgewise.runtime.deployment.errors import PackageError
from edgewise.runtime.settings import ArtifactLimits

if TYPE_CHECKING:
    import zipfile

#: How much free space the file system holding a path has, in bytes; injectable so tests need no full disk.
FreeSpace = Callable[[Path], int]

_CHUNK = 1 << 20
#: An archive expanding to no more than this is never refused for its ratio: a few kilobytes of zeros or
#: repeated text compress a thousand times without being a threat.
_RATIO_GRACE_BYTES = 1 << 20


def disk_free(path: Path) -> int:
    """The bytes available to this process on the file system holding ``path``. Blocks."""
    return shutil.disk_usage(path).free


def describe_size(size: int) -> str:
    """``size`` for people: ``"1 GiB (1073741824 bytes)"``."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.3g} {unit} ({size} bytes)"
    return f"{size} bytes"


def check_free_space(
    needed: int, directory: Path, *, limits: ArtifactLimits, free_space: FreeSpace, what: str
) -> int:
    """Raise unless ``needed`` bytes fit in ``directory`` with ``limits.min_free_bytes`` left over; return how
    many bytes may be written there. Blocks.

    Raises:
        PackageError: naming ``what``, what it needs and what is free.
    """
    available = free_space(directory) - limits.min_free_bytes
    if needed > available:
        raise PackageError(
            f"{what} needs {describe_size(needed)} but {directory} has only "
            f"{describe_size(max(available, 0))} free beyond the {describe_size(limits.min_free_bytes)} "
            "kept free (artifacts.minFreeBytes); it was not installed"
        )
    return available


class _Budget:
    """Counts the bytes written and refuses the ones beyond a limit."""

    def __init__(self, archive_size: int, limits: ArtifactLimits, available: int, what: str) -> None:
        self._archive_size = max(archive_size, 1)
        self._limits = limits
        self._available = available
        self._what = what
        self.written = 0

    def check(self, total: int) -> None:
        """Raise if ``total`` expanded bytes break a limit."""
        limits = self._limits
        if total > limits.max_expanded_bytes:
            raise PackageError(
                f"{self._what} expands to more than {describe_size(limits.max_expanded_bytes)}, the limit set "
                "by artifacts.maxExpandedBytes; it was not installed"
            )
        ratio = total / self._archive_size
        if total > _RATIO_GRACE_BYTES and ratio > limits.max_compression_ratio:
            raise PackageError(
                f"{self._what} expands at least {ratio:.0f} times its size of {describe_size(self._archive_size)}, "
                f"more than the {limits.max_compression_ratio} times allowed by artifacts.maxCompressionRatio; "
                "it was not installed"
            )
        if total > self._available:
            raise PackageError(
                f"{self._what} expands to more than the {describe_size(max(self._available, 0))} free on the "
                f"disk beyond the {describe_size(limits.min_free_bytes)} kept free (artifacts.minFreeBytes); "
                "it was not installed"
            )

    def add(self, count: int) -> None:
        self.written += count
        self.check(self.written)


def _entry_path(member: zipfile.ZipInfo, staging: Path, what: str) -> Path:
    name = member.filename
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or ".." in parts or "\x00" in name:
        raise PackageError(f"{what} has an entry outside its directory: {name!r}; it was not installed")
    return staging.joinpath(*parts)


def _extract_all(bundle: zipfile.ZipFile, staging: Path, budget: _Budget, file_mode: int, what: str) -> None:
    members = bundle.infolist()
    # The declared sizes first: an archive that admits to breaking a limit is refused before any write.
    budget.check(sum(member.file_size for member in members))
    for member in members:
        path = _entry_path(member, staging, what)
        if member.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_NOFOLLOW: nothing here creates links, and nothing may be written through one.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "wb") as out, bundle.open(member) as entry:
            while chunk := entry.read(_CHUNK):
                budget.add(len(chunk))
                out.write(chunk)
        path.chmod(file_mode)


def extract_zip(
    archive: Path,
    destination: Path,
    *,
    file_mode: int,
    limits: ArtifactLimits,
    free_space: FreeSpace = disk_free,
    what: str,
) -> None:
    """Make ``destination`` the contents of the ZIP ``archive``: files get ``file_mode``, directories 0755.

    Extracts into a staging directory beside ``destination`` and renames it into place, so ``destination`` is
    either the old contents or the complete new ones. Blocks.

    Raises:
        PackageError: naming ``what`` (the artifact): the archive is not a ZIP or is corrupt, an entry points
            outside the directory, a limit of ``limits`` is exceeded, or the disk is full. Nothing extracted
            is left behind.
    """
    staging = destination.with_name(f".{destination.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _extract_into(archive, staging, file_mode=file_mode, limits=limits, free_space=free_space, what=what)
        shutil.rmtree(destination, ignore_errors=True)
        staging.replace(destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _extract_into(
    archive: Path, staging: Path, *, file_mode: int, limits: ArtifactLimits, free_space: FreeSpace, what: str
) -> None:
    # Imported here: zipfile keeps about 1 MiB resident, and only a deployment with a ZIP artifact needs it.
    import zipfile

    try:
        staging.mkdir(parents=True)
        with zipfile.ZipFile(archive) as bundle:
            available = free_space(staging) - limits.min_free_bytes
            budget = _Budget(archive.stat().st_size, limits, available, what)
            _extract_all(bundle, staging, budget, file_mode, what)
        for directory, _dirs, _files in os.walk(staging):
            Path(directory).chmod(0o755)
    # zipfile reports damage as BadZipFile, zlib.error or EOFError, encryption as RuntimeError and an unknown
    # compression method as NotImplementedError (a RuntimeError too).
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError) as exc:
        raise PackageError(f"{what} is not a valid ZIP archive: {exc}; it was not installed") from exc
    except OSError as exc:
        raise PackageError(f"{what} could not be extracted: {exc}; it was not installed") from exc

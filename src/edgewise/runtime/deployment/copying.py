"""Reading one component version's folder of a local artifact directory, ``<dir>/<name>/<version>/``.

``greengrass-cli deployment create --artifactDir`` copies that whole folder into the component store, listed
artifacts or not, so recipes without an ``Artifacts`` section still find their scripts at ``{artifacts:path}``.
:class:`ArtifactFolder` does the same without ever following a link out of the folder: the runtime often runs
as root, and a link to its private key must not come back as a readable artifact. A link that stays inside is
copied as a link (relative, so it points into the store's copy); one that leaves the folder is refused. Blocks
(file system).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from edgewise.runtime.deployment.errors import PackageError

_TMP_SUFFIX = ".edgewise-tmp"


@dataclass
class FolderCopy:
    """What copying a folder takes, gathered (and every link checked) before anything is written."""

    source: Path
    directories: list[tuple[Path, int]] = field(default_factory=list)
    files: list[tuple[Path, int]] = field(default_factory=list)
    links: list[tuple[Path, str]] = field(default_factory=list)
    size: int = 0  #: bytes of the files

    def write(self, target: Path) -> None:
        """Copy into ``target``; files already there that the folder does not have are kept. Blocks."""
        for relative, mode in self.directories:
            path = target / relative
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                path.unlink()
            path.mkdir(exist_ok=True)
            path.chmod(mode | stat.S_IRWXU)
        for relative, mode in self.files:
            copy_file(self.source / relative, target / relative, mode)
        for relative, link in self.links:
            path = target / relative
            tmp = path.with_name(path.name + _TMP_SUFFIX)
            tmp.unlink(missing_ok=True)
            os.symlink(link, tmp)
            _clear_directory(path)
            tmp.replace(path)


class ArtifactFolder:
    """``<base>/<name>/<version>``, read without following links out of it."""

    def __init__(self, base: Path, name: str, version: str) -> None:
        self.path = Path(os.path.realpath(base)) / name / version
        real = Path(os.path.realpath(self.path))
        if real != self.path:
            raise PackageError(
                f"The artifact folder {base / name / version} is a link to {real}; it must be a directory inside "
                f"the artifact directory {base}"
            )

    def exists(self) -> bool:
        return self.path.is_dir()

    def file(self, name: str) -> Path | None:
        """The regular file ``name`` at the top of the folder, read through a link only if the link stays inside;
        None when there is no such file.

        Raises:
            PackageError: ``name`` is a link that leaves the folder.
        """
        candidate = self.path / name
        real = self._inside(candidate) if candidate.is_symlink() else candidate
        return real if real.is_file() else None

    def gather(self, *, skip: Collection[str]) -> FolderCopy:
        """Everything in the folder but the top-level names in ``skip``, with modes (less set-user-ID,
        set-group-ID and sticky bits), ready to copy.

        Raises:
            PackageError: a link leaves the folder, or an entry is not a file, directory or link.
        """
        copy = FolderCopy(self.path)
        self._gather(self.path, Path(), skip, copy)
        return copy

    def _gather(self, directory: Path, relative: Path, skip: Collection[str], copy: FolderCopy) -> None:
        with os.scandir(directory) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if not relative.parts and entry.name in skip:
                    continue
                path = Path(entry.path)
                inner = relative / entry.name
                if entry.is_symlink():
                    real = self._inside(path)
                    copy.links.append((inner, os.path.relpath(real, path.parent)))
                elif entry.is_dir(follow_symlinks=False):
                    copy.directories.append((inner, stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)))
                    self._gather(path, inner, skip, copy)
                elif entry.is_file(follow_symlinks=False):
                    status = entry.stat(follow_symlinks=False)
                    copy.files.append((inner, status.st_mode & 0o777))
                    copy.size += status.st_size
                else:
                    raise PackageError(
                        f"{path} in the artifact folder {self.path} is not a file, directory or link"
                    )

    def _inside(self, link: Path) -> Path:
        real = Path(os.path.realpath(link))
        if real != self.path and self.path not in real.parents:
            raise PackageError(
                f"{link} is a link to {real}, outside the artifact folder {self.path}; links in an artifact "
                "folder may only point inside it"
            )
        return real


def _clear_directory(path: Path) -> None:
    """Make room for a file or link at ``path`` where a directory was."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)


def copy_file(source: Path, destination: Path, mode: int) -> None:
    """Copy the regular file ``source`` (never through a link) to ``destination`` with ``mode``, replacing it
    at once, so a reader sees the old file or the whole new one. Blocks."""
    tmp = destination.with_name(destination.name + _TMP_SUFFIX)
    try:
        # O_NOFOLLOW: a file swapped for a link after it was checked is refused, not followed.
        with (
            open(os.open(source, os.O_RDONLY | os.O_NOFOLLOW), "rb") as reader,
            open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600), "wb") as writer,
        ):
            shutil.copyfileobj(reader, writer, 1 << 20)
        tmp.chmod(mode)
        _clear_directory(destination)
        tmp.replace(destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

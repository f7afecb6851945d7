"""Finding and ending component processes left behind by a runtime that was killed (``kill -9``).

Every component process carries ``AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH=<root>/ipc.socket`` in its
environment, so on start the runtime can recognise the processes of its own root in ``/proc`` — no
bookkeeping file that a crash could leave stale — and kill their process groups before starting anew.
Linux only; elsewhere nothing is found.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

logger = logging.getLogger(__name__)


def find_orphans(socket_path: Path, *, proc: Path = Path("/proc")) -> set[int]:
    """Process group ids of processes started by a runtime on ``socket_path``. Blocks (reads /proc)."""
    marker = f"AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH={socket_path}".encode()
    own_group = os.getpgrp()
    groups: set[int] = set()
    try:
        entries = os.listdir(proc)
    except OSError:
        return groups
    # Every start reads the environment of every process on the machine: plain os calls, and the cheap
    # substring test before the exact one, keep that to a few milliseconds.
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(proc, name, "environ"), "rb") as file:
                environment = file.read()
            if marker not in environment or marker not in environment.split(b"\0"):
                continue
            group = os.getpgid(int(name))
        except (OSError, ProcessLookupError):
            continue
        if group != own_group:
            groups.add(group)
    return groups


def kill_orphans(socket_path: Path) -> int:
    """SIGKILL the process groups of a previous run on the same root; returns how many. Blocks."""
    groups = find_orphans(socket_path)
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            continue
        except PermissionError as exc:
            logger.warning("Cannot end leftover component process group %d: %s", group, exc)
    if groups:
        logger.warning("Ended %d component process group(s) left by a previous run", len(groups))
    return len(groups)

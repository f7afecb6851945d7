"""A Mosquitto left running by an earlier start on the same data directory: recorded, found and stopped.

The cloud starts Mosquitto with a parent-death signal (see :mod:`.process`), so a cloud killed with SIGKILL
takes its broker with it. What that signal cannot cover (a Mosquitto that switched to another user, which
clears the signal) is found through the pid file written next to Mosquitto's configuration,
``{"pid": <broker>, "owner": <the process that started it>}``, and stopped before the next start, which would
otherwise find its ports taken and its devices served with the old ACL. A broker with no pid file (one started
before there were pid files) is never stopped, only named by :func:`processes_running` when a start finds its
port taken.

A pid from the file is signalled only when it is provably our broker:

- a pidfd pins the process first, then its command line must be exactly the one we start (the executable,
  ``-c`` and this data directory's configuration file); a pid recycled by then is a different process, which
  the pidfd refers to no longer, so it is never signalled;
- its parent must no longer be the recorded owner: a broker whose owner still runs belongs to a live cloud on
  the same data directory, and stopping it would break that cloud; that is an error instead.

Linux only (pidfds, ``/proc``), like the parent-death signal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgewise.cloud.broker.config import write_file_atomically
from edgewise.cloud.broker.errors import BrokerStartError

logger = logging.getLogger(__name__)

#: In the broker's data directory, next to ``mosquitto.conf``.
PID_FILE_NAME = "mosquitto.pid"


@dataclass(frozen=True)
class BrokerRecord:
    """What the pid file says: the broker's pid and the pid of the process that started it."""

    pid: int
    owner: int


def write_pid_file(path: Path, record: BrokerRecord) -> None:
    """Record a broker just started. Blocks (file I/O)."""
    write_file_atomically(path, json.dumps({"pid": record.pid, "owner": record.owner}) + "\n", mode=0o644)


def remove_pid_file(path: Path, pid: int) -> None:
    """Remove the pid file if it still names ``pid``. Blocks (file I/O)."""
    record = _read_pid_file(path)
    if record is not None and record.pid == pid:
        path.unlink(missing_ok=True)


def stop_leftover_broker(path: Path, argv: Sequence[str], *, grace: float) -> int | None:
    """Stop the broker that pid file ``path`` names if it is a leftover running exactly ``argv``: SIGTERM,
    then SIGKILL after ``grace`` seconds. Removes the pid file. Returns the pid stopped, or None if there was
    nothing of ours to stop. Blocks (waits for the process to exit).

    Raises:
        BrokerStartError: the broker belongs to a process that still runs (another cloud on the same data
            directory), runs as another user, or did not exit after SIGKILL.
    """
    record = _read_pid_file(path)
    if record is None:
        path.unlink(missing_ok=True)
        return None
    with _pidfd(record.pid) as pidfd:
        if pidfd is None or not _runs(record.pid, argv):
            # Gone, or the pid now belongs to another process, which is left alone.
            logger.info(
                "broker-pid-file-stale pid=%d path=%s; no broker of ours runs there", record.pid, path
            )
            path.unlink(missing_ok=True)
            return None
        if _parent(record.pid) == record.owner:
            raise BrokerStartError(
                f"Another process (pid {record.owner}) is running the broker (pid {record.pid}) of this data "
                f"directory; stop that cloud before starting another on {path.parent}",
                exit_code=None,
                log_tail="",
            )
        logger.warning(
            "broker-leftover-stopping pid=%d owner=%d (no longer running)", record.pid, record.owner
        )
        _signal(pidfd, record.pid, signal.SIGTERM)
        if not _wait_exit(pidfd, grace):
            logger.warning("broker-leftover-kill pid=%d grace_s=%.1f", record.pid, grace)
            _signal(pidfd, record.pid, signal.SIGKILL)
            if not _wait_exit(pidfd, grace):
                raise BrokerStartError(
                    f"The broker left by an earlier run (pid {record.pid}) did not exit after SIGKILL",
                    exit_code=None,
                    log_tail="",
                )
    path.unlink(missing_ok=True)
    return record.pid


def processes_running(argv: Sequence[str]) -> list[int]:
    """The pids of the processes running exactly ``argv``, other than this one, by ``/proc``. Blocks."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and _runs(int(entry.name), argv):
            pids.append(int(entry.name))
    return sorted(pids)


def _read_pid_file(path: Path) -> BrokerRecord | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return BrokerRecord(pid=int(data["pid"]), owner=int(data["owner"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        logger.warning("broker-pid-file-unreadable path=%s; ignored", path)
        return None


@contextlib.contextmanager
def _pidfd(pid: int) -> Iterator[int | None]:
    """A pidfd for ``pid``, or None if no such process runs."""
    try:
        descriptor = os.pidfd_open(pid)
    except ProcessLookupError:
        yield None
        return
    try:
        yield descriptor
    finally:
        os.close(descriptor)


def _runs(pid: int, argv: Sequence[str]) -> bool:
    """Whether process ``pid`` runs exactly ``argv`` (False once it has exited: a zombie has no command line)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return [os.fsdecode(part) for part in raw.split(b"\0")[:-1]] == list(argv)


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # "pid (comm) state ppid ...": comm may contain spaces and parentheses, so split after the last ")".
    return int(stat.rsplit(")", 1)[1].split()[1])


def _signal(pidfd: int, pid: int, number: signal.Signals) -> None:
    """Send ``number`` through the pidfd; a process that has exited meanwhile needs nothing.

    Raises:
        BrokerStartError: this user may not signal it (it runs as another user).
    """
    try:
        signal.pidfd_send_signal(pidfd, number)
    except ProcessLookupError:
        return
    except PermissionError as exc:
        raise BrokerStartError(
            f"The broker left by an earlier run (pid {pid}) runs as another user and cannot be stopped by this "
            f"one: {exc.strerror}",
            exit_code=None,
            log_tail="",
        ) from exc


def _wait_exit(pidfd: int, timeout: float) -> bool:
    """Whether the process exits within ``timeout`` seconds (a pidfd turns readable when it does)."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))

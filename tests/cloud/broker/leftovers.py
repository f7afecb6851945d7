"""Processes a start must find in the broker's data directory: a Mosquitto whose starter died (as a cloud killed
before brokers had a parent-death signal left it), and the pid file pointing at it or at something else."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.support.waiting import wait_until

from edgewise.cloud.broker import MOSQUITTO


def running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not exited (a zombie has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def write_pid_file(path: Path, *, pid: int, owner: int) -> None:
    path.write_text(json.dumps({"pid": pid, "owner": owner}) + "\n")


def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on ``port`` of 127.0.0.1."""
    with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


@contextmanager
def orphan_mosquitto(config: Path, *ports: int) -> Iterator[tuple[int, int]]:
    """Mosquitto on ``config``, started by a shell that exits at once, listening on ``ports``: yields its pid
    and the dead shell's pid. Killed on the way out if it still runs that configuration."""
    shell = subprocess.Popen(
        ["sh", "-c", '"$0" -c "$1" </dev/null >/dev/null 2>&1 & echo $!', str(MOSQUITTO), str(config)],
        stdout=subprocess.PIPE,
        text=True,
    )
    output, _ = shell.communicate(timeout=10)
    pid = int(output)
    try:
        for port in ports:
            wait_until(lambda port=port: accepts(port), what=f"the orphan Mosquitto to listen on {port}")
        yield pid, shell.pid
    finally:
        kill_if_it_runs(pid, config)


def kill_if_it_runs(pid: int, config: Path) -> None:
    """SIGKILL ``pid`` if it is a Mosquitto running ``config``: a test's cleanup when the code under test failed
    to stop it. Pinned by a pidfd before /proc is read, since the pid may have been reused."""
    with suppress(FileNotFoundError, ProcessLookupError):
        pidfd = os.pidfd_open(pid)
        try:
            if str(config) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        finally:
            os.close(pidfd)

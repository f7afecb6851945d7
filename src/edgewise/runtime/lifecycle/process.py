"""One lifecycle step's OS processes: spawn ``sh -c`` in its own process group, pass its output on line
by line, notice its exit, and terminate the whole group (SIGTERM, grace, SIGKILL, reap).

Exit is taken from the shell's own exit, not from its pipes closing: a Run script that starts
``daemon &`` hands its stdout to the daemon, and asyncio's ``Process.wait()`` (3.11) would wait for
the daemon as well. So this module talks to the event loop through a ``SubprocessProtocol``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: A line longer than this is passed on in pieces, so a process writing without newlines cannot
#: make the runtime buffer without bound.
MAX_LINE_BYTES = 65_536

#: How long to wait for a process group to vanish after SIGKILL before giving up on it.
KILL_WAIT = 2.0

#: Called with (is_stderr, text) for every output line.
LineSink = Callable[[bool, str], None]


@contextlib.contextmanager
def reaping_through_pidfds(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """While inside, asyncio's subprocesses on ``loop`` are reaped through pidfds, not a thread each.

    Python 3.11's default child watcher starts a thread per child process and waits for it to start: with
    20 components that is 20 more threads (each with its stack and, often, its own malloc arena) and a
    slower start. From 3.12 asyncio uses pidfds itself where the kernel has them (Linux 5.3+), and other
    loops (uvloop) reap children their own way, so this does something only for 3.11's own loop on such a
    kernel. On the way out 3.11's default watcher comes back, for whatever runs on a later loop.
    """
    if sys.version_info >= (3, 12) or not isinstance(loop, asyncio.SelectorEventLoop) or not _has_pidfds():
        yield
        return
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(loop)
    asyncio.set_child_watcher(watcher)
    try:
        yield
    finally:
        asyncio.set_child_watcher(asyncio.ThreadedChildWatcher())


def _has_pidfds() -> bool:
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


def _switch_user(loop: asyncio.AbstractEventLoop, identity: Identity) -> dict[str, Any]:
    """The ``subprocess_exec`` options that start a child as ``identity``.

    asyncio's own loop takes subprocess's ``user``, ``group`` and ``extra_groups``. uvloop has none of them
    (it refuses even ``user=None``), so on it the child switches in ``preexec_fn``: three system calls, in
    subprocess's order, that take no lock a thread of ours could hold at the fork. uvloop runs it before it
    changes to ``cwd``, so the user must be able to enter ``cwd``, as a step's work directory (its own) is.
    """
    if isinstance(loop, asyncio.BaseEventLoop):
        return {"user": identity.uid, "group": identity.gid, "extra_groups": list(identity.groups)}
    groups, gid, uid = list(identity.groups), identity.gid, identity.uid

    def switch() -> None:
        os.setgroups(groups)
        os.setgid(gid)
        os.setuid(uid)

    return {"preexec_fn": switch}


@dataclass(frozen=True)
class Identity:
    """The POSIX user a step runs as, resolved to ids."""

    user: str
    uid: int
    gid: int
    home: str
    groups: tuple[int, ...] = field(default=())


class _StepProtocol(asyncio.SubprocessProtocol):
    """Splits the child's output into lines and reports its exit."""

    def __init__(self, on_line: LineSink, on_exit: Callable[[], None]) -> None:
        self._on_line = on_line
        self._on_exit = on_exit
        self._partial: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
        self.exited = asyncio.get_running_loop().create_future()
        self.open_pipes = {1, 2}
        #: Done once both output pipes closed (all output read).
        self.drained = asyncio.get_running_loop().create_future()
        #: The last non-blank stderr line: why a failed step failed, for its state reason.
        self.last_error_line = ""

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        buffer = self._partial[fd]
        buffer += data.encode() if isinstance(data, str) else data
        while (end := buffer.find(b"\n")) >= 0 or len(buffer) >= MAX_LINE_BYTES:
            cut = end if 0 <= end < MAX_LINE_BYTES else MAX_LINE_BYTES
            line = bytes(buffer[:cut])
            del buffer[: cut + 1 if cut == end else cut]
            self._emit(fd, line)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        buffer = self._partial.get(fd)
        if buffer:
            self._emit(fd, bytes(buffer))
            buffer.clear()
        self.open_pipes.discard(fd)
        if not self.open_pipes and not self.drained.done():
            self.drained.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)
        self._on_exit()

    def _emit(self, fd: int, line: bytes) -> None:
        text = line.rstrip(b"\r").decode("utf-8", errors="replace")
        if fd == 2 and text.strip():
            self.last_error_line = text.strip()
        self._on_line(fd == 2, text)


class StepProcess:
    """A running ``sh -c <script>`` and its process group. Must be used from the event loop thread."""

    def __init__(self, step: str, transport: asyncio.SubprocessTransport, protocol: _StepProtocol) -> None:
        self.step = step
        self.pid = transport.get_pid()
        self._transport = transport
        self._protocol = protocol
        self._closed = False

    @classmethod
    async def spawn(
        cls,
        step: str,
        script: str,
        *,
        cwd: Path,
        env: Mapping[str, str],
        identity: Identity | None,
        on_line: LineSink,
        on_exit: Callable[[], None],
    ) -> StepProcess:
        """Start ``sh -c script`` as the leader of a new session (so of a new process group).

        ``on_exit`` is called when the shell exits, even if processes it started live on.

        Raises:
            OSError: the process could not be started (missing directory, permissions, ...).
        """
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_exec(
            lambda: _StepProtocol(on_line, on_exit),
            "/bin/sh",
            "-c",
            script,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
            **({} if identity is None else _switch_user(loop, identity)),
        )
        return cls(step, transport, protocol)

    @property
    def returncode(self) -> int | None:
        """The shell's exit code (negative: killed by that signal), or None while it runs."""
        return self._transport.get_returncode()

    @property
    def last_error_line(self) -> str:
        """The last non-blank line the step wrote to stderr so far ("" when none)."""
        return self._protocol.last_error_line

    async def drain(self, timeout: float) -> None:
        """Wait until the output pipes closed, at most ``timeout`` seconds (a process the step left running
        may hold them open)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._protocol.drained), timeout)

    @property
    def finished(self) -> bool:
        """True when the shell has exited and nothing holds its output pipes any more."""
        return self.returncode is not None and not self._protocol.open_pipes

    async def terminate(self, grace: float) -> None:
        """Stop every process of the group: SIGTERM, up to ``grace`` seconds, then SIGKILL; reap the shell.

        Idempotent. A group that is already empty costs nothing.
        """
        if self._closed:
            return
        if _signal_group(self.pid, signal.SIGTERM) and not await _wait_group_gone(self.pid, grace):
            logger.warning(
                "component-step-killed: %s (pid %d) did not stop within %.1fs of SIGTERM; sending SIGKILL",
                self.step,
                self.pid,
                grace,
            )
            _signal_group(self.pid, signal.SIGKILL)
            if not await _wait_group_gone(self.pid, KILL_WAIT):
                logger.warning("component-step-unkillable: process group %d survived SIGKILL", self.pid)
        try:
            async with asyncio.timeout(KILL_WAIT):
                await asyncio.shield(self._protocol.exited)
        except TimeoutError:
            logger.warning("component-step-unreaped: %s (pid %d) has not been reaped", self.step, self.pid)
        self.close()

    def close(self) -> None:
        """Release the pipes. Call only once the shell has exited or been killed."""
        self._closed = True
        self._transport.close()


def _signal_group(pgid: int, signum: signal.Signals) -> bool:
    """Send ``signum`` to the group; False when the group no longer exists."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


async def _wait_group_gone(pgid: int, timeout: float) -> bool:
    """Poll until no live process is left in the group; False if some still are after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    interval = 0.005
    while group_alive(pgid):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(min(interval, max(deadline - loop.time(), 0.0)))
        interval = min(interval * 2, 0.1)
    return True


def group_alive(pgid: int) -> bool:
    """True while the process group has a member that is not a zombie.

    Zombies do not count: an orphan that died waits for init to reap it, and on some systems init
    takes its time. Reading ``/proc`` is an in-memory walk, cheap enough for the event loop while a
    component is being stopped; without ``/proc`` any member counts.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        entries = os.scandir("/proc")
    except OSError:
        return True
    with entries:
        for entry in entries:
            if entry.name.isdigit() and _is_live_member(entry.name, pgid):
                return True
    return False


def _is_live_member(pid: str, pgid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return False
    # After the command name: state, ppid, pgrp, ...
    return int(fields[2]) == pgid and fields[0] not in (b"Z", b"X")

"""The demo's folder and the processes ``edgewise demo`` starts: it owns both from start to clean stop.

The folder (``--root``, ``.demo`` by default) holds::

    ROOT/
      .edgewise-demo     marks the folder as the demo's, so that a later run may use it
      demo.pids          the demo's processes while it runs (pid and start time of each)
      ports.json         the cloud's ports, kept for the next run (the devices' configuration names them)
      logs/              each child's stderr (the cloud's log, each runtime's start-up errors), this run's
      cloud/             the cloud's data directory (edgewise cloud up --data)
      claim/             the claim certificate the hubs provision themselves with
      devices/<thing>/   each hub's runtime root, with its identity (certificate, key, edgewise.yaml)
                         in identity/
      runtime/           the one runtime of ``edgewise demo --runtime-only``

A later run reuses the cloud's data and the hubs' roots, and clears the logs and the runtime-only root, but
only once no process recorded in ``demo.pids`` still runs. Children start in their own sessions, so a Ctrl-C in the terminal reaches the demo
alone, which then stops them in order (runtimes first, then the cloud). Linux only (``/proc``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from rich.console import Console

from edgewise.cli.connection import fail

MARKER = ".edgewise-demo"
PIDS_FILE = "demo.pids"
#: What a run clears of the previous one's (the cloud's data and the hubs' roots are reused).
CLEARED = ("logs", "runtime")
#: How long a child may take to stop after SIGTERM before it is killed.
GRACE_SECONDS = 30.0
_POLL = 0.1


@dataclass(frozen=True)
class ProcessRecord:
    """One process of a demo, as ``demo.pids`` keeps it."""

    name: str
    pid: int
    #: The start time in /proc (clock ticks since boot): tells the demo's process from a later one with the
    #: same pid.
    started: str

    def is_running(self) -> bool:
        return start_time(self.pid) == self.started


def start_time(pid: int) -> str | None:
    """When the process ``pid`` started (``/proc/PID/stat`` field 22); ``None`` when none runs (zombies count
    as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces; count the fields after it.
    fields = stat.rpartition(")")[2].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]
    record: ProcessRecord
    stop_order: int


class DemoSupervisor:
    """The demo folder and the children started in it; ``stop`` stops them all, in order."""

    def __init__(self, root: Path, console: Console) -> None:
        self.root = root.absolute()
        self.logs_dir = self.root / "logs"
        self._console = console
        self._children: list[_Child] = []

    def prepare(self) -> None:
        """Refuse a folder the demo did not make or where a previous demo still runs; clear what a previous
        run left, and record this process."""
        if self.root.exists() and not self.root.is_dir():
            fail(f"--root: {self.root} is not a folder")
        if self.root.is_dir() and any(self.root.iterdir()) and not (self.root / MARKER).is_file():
            fail(f"--root: {self.root} holds files the demo did not make; give a new or empty folder")
        running = [record for record in self._recorded() if record.is_running()]
        if running:
            pids = " ".join(str(record.pid) for record in running)
            names = ", ".join(f"{record.name} (pid {record.pid})" for record in running)
            fail(
                f"A demo still runs from {self.root}: {names}. Stop it (Ctrl-C in its terminal, or "
                f"kill {pids}) and start again"
            )
        for name in CLEARED:
            if (self.root / name).exists():
                shutil.rmtree(self.root / name)
        self.logs_dir.mkdir(parents=True)
        (self.root / MARKER).write_text(
            "A folder of `edgewise demo`; each run reuses it.\n", encoding="utf-8"
        )
        self._write_records()

    def _recorded(self) -> list[ProcessRecord]:
        try:
            saved = json.loads((self.root / PIDS_FILE).read_text(encoding="utf-8"))
            return [ProcessRecord(str(p["name"]), int(p["pid"]), str(p["started"])) for p in saved]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            fail(f"Cannot read {self.root / PIDS_FILE} ({exc}); check that no demo runs, then delete it")

    def _write_records(self) -> None:
        me = ProcessRecord("edgewise demo", os.getpid(), start_time(os.getpid()) or "")
        records = [me, *(child.record for child in self._children)]
        staged = self.root / f"{PIDS_FILE}.tmp"
        staged.write_text(json.dumps([asdict(record) for record in records]), encoding="utf-8")
        staged.replace(self.root / PIDS_FILE)

    def log_file(self, name: str) -> Path:
        """Where the child ``name`` writes its stderr."""
        return self.logs_dir / f"{name}.log"

    def start(
        self, name: str, command: list[str], *, stop_order: int = 0, stdout: int | IO[bytes] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``command`` in its own session with its stderr in ``log_file(name)``; children stop by
        ``stop_order``, lowest first."""
        with self.log_file(name).open("ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL if stdout is None else stdout,
                stderr=log,
                start_new_session=True,
            )
        record = ProcessRecord(name, process.pid, start_time(process.pid) or "")
        self._children.append(_Child(name, process, record, stop_order))
        self._write_records()
        return process

    def check_children(self) -> None:
        """Exit with a message when a child has ended on its own."""
        for child in self._children:
            if child.process.poll() is not None:
                code, log = child.process.returncode, self.log_file(child.name)
                fail(f"{child.name} exited with code {code}; see {log}")

    def stop(self) -> None:
        """Stop every child, the lowest ``stop_order`` first, the children of one order together: SIGTERM,
        then SIGKILL to its process group after ``GRACE_SECONDS``. Signals that would interrupt this are
        ignored meanwhile."""
        with _signals_ignored():
            for order in sorted({child.stop_order for child in self._children}):
                self._stop_together([child for child in self._children if child.stop_order == order])
            (self.root / PIDS_FILE).unlink(missing_ok=True)

    def _stop_together(self, children: list[_Child]) -> None:
        running = [child for child in children if child.process.poll() is None]
        if not running:
            return
        self._console.print(f"Stopping {', '.join(child.name for child in running)}", highlight=False)
        for child in running:
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        while any(child.process.poll() is None for child in running) and time.monotonic() < deadline:
            time.sleep(_POLL)
        for child in running:
            if child.process.poll() is None:
                self._console.print(
                    f"[yellow]{child.name} did not stop within {GRACE_SECONDS:.0f} s; killing it[/]"
                )
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def interrupts_stop_the_demo() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the demo as Ctrl-C does (as ``KeyboardInterrupt``). Main thread only."""
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

"""Component resource limits (``runWith.systemResourceLimits``) through cgroups v2.

Each limited component gets a cgroup ``<cgroup root>/<component>`` with ``memory.max`` (the limit in KB,
written in bytes) and ``cpu.max`` (``cpus`` cores' worth of each period), and every process of its steps is
moved into it as soon as it is spawned. The cgroup root's parent must be a cgroup v2 directory that offers
the ``memory`` and ``cpu`` controllers and may enable them for its children: the hierarchy's top
(``/sys/fs/cgroup``) on a device that boots with cgroups v2, or a subtree delegated to the runtime by its
service manager (systemd ``Delegate=yes``). Where that is not so, the limit cannot be enforced; the caller
warns and runs the component without it.

A process is moved by the runtime right after the spawn (the step's user may not write to the cgroup, so
the child cannot move itself), so a child that a step forks in its very first instant could stay outside.

Every function here blocks on small writes to the cgroup file system, which lives in memory and answers at
once; they are called from the event loop on purpose, so that the move follows the spawn without a gap.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgewise.errors import EdgewiseError

logger = logging.getLogger(__name__)

#: ``cpu.max`` period in microseconds (the kernel's default).
CPU_PERIOD_US = 100_000
CONTROLLERS = ("cpu", "memory")


class CgroupError(EdgewiseError):
    """A limit cannot be enforced with cgroups v2 here; the message says why."""


@dataclass(frozen=True)
class ResourceLimits:
    """``systemResourceLimits``: memory in KB, cpus in cores (0.5 = half of one core's time)."""

    memory_kb: int | None = None
    cpus: float | None = None

    @classmethod
    def from_json(cls, value: Any) -> ResourceLimits | None:
        """Read ``{"memory": <KB>, "cpus": <cores>}``; None when it sets neither.

        Raises:
            ValueError: a value is not a positive number (or ``memory`` not a whole number).
        """
        if value is None:
            return None
        if not isinstance(value, Mapping):
            msg = f"systemResourceLimits must be an object, not {type(value).__name__}"
            raise ValueError(msg)
        memory = value.get("memory")
        cpus = value.get("cpus")
        if memory is not None and (
            isinstance(memory, bool)
            or not isinstance(memory, int | float)
            or memory <= 0
            or memory != int(memory)
        ):
            msg = f"systemResourceLimits.memory must be a positive whole number of KB, not {memory!r}"
            raise ValueError(msg)
        if cpus is not None and (
            isinstance(cpus, bool)
            or not isinstance(cpus, int | float)
            or not math.isfinite(cpus)
            or cpus <= 0
        ):
            msg = f"systemResourceLimits.cpus must be a positive number of cores, not {cpus!r}"
            raise ValueError(msg)
        if memory is None and cpus is None:
            return None
        return cls(
            memory_kb=None if memory is None else int(memory), cpus=None if cpus is None else float(cpus)
        )

    def describe(self) -> str:
        """``memory 65536 KB, cpus 0.5``: the limits as a log sentence names them."""
        parts = []
        if self.memory_kb is not None:
            parts.append(f"memory {self.memory_kb} KB")
        if self.cpus is not None:
            parts.append(f"cpus {self.cpus:g}")
        return ", ".join(parts)


class CgroupLimiter:
    """The cgroups of the components under one cgroup root. Blocks briefly (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._prepared = False

    def cgroup_of(self, component: str) -> Path:
        """Where the component's cgroup is (or would be)."""
        return self.root / component

    def apply(self, component: str, limits: ResourceLimits | None) -> Path:
        """Create the component's cgroup if needed and write its limits (``max`` where ``limits`` sets none).

        Raises:
            CgroupError: no writable cgroup v2 hierarchy with the memory and cpu controllers is there.
        """
        self._prepare()
        cgroup = self.cgroup_of(component)
        memory = "max" if limits is None or limits.memory_kb is None else str(limits.memory_kb * 1024)
        quota = (
            "max"
            if limits is None or limits.cpus is None
            else str(max(1000, round(limits.cpus * CPU_PERIOD_US)))
        )
        try:
            cgroup.mkdir(exist_ok=True)
            (cgroup / "memory.max").write_text(memory)
            (cgroup / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
        except OSError as exc:
            msg = f"cannot write the limits of cgroup {cgroup}: {exc}"
            raise CgroupError(msg) from exc
        return cgroup

    def place(self, cgroup: Path, pid: int) -> None:
        """Move process ``pid`` into ``cgroup``.

        Raises:
            CgroupError: the move failed (the process may already have exited).
        """
        try:
            (cgroup / "cgroup.procs").write_text(str(pid))
        except OSError as exc:
            msg = f"cannot move process {pid} into cgroup {cgroup}: {exc}"
            raise CgroupError(msg) from exc

    def release(self, component: str) -> None:
        """Remove the component's cgroup once its processes are gone; a cgroup that cannot go stays."""
        cgroup = self.cgroup_of(component)
        try:
            cgroup.rmdir()
        except FileNotFoundError:
            return
        except OSError as exc:
            logger.debug("cgroup-not-removed: %s: %s", cgroup, exc)

    def _prepare(self) -> None:
        if self._prepared:
            return
        parent = self.root.parent
        try:
            available = (parent / "cgroup.controllers").read_text().split()
        except OSError as exc:
            msg = f"{parent} is not a cgroup v2 hierarchy: cannot read its cgroup.controllers ({exc.strerror or exc})"
            raise CgroupError(msg) from exc
        missing = [name for name in CONTROLLERS if name not in available]
        if missing:
            msg = f"the cgroup v2 hierarchy at {parent} offers no {' or '.join(missing)} controller"
            raise CgroupError(msg)
        enable = " ".join(f"+{name}" for name in CONTROLLERS)
        try:
            enabled = (parent / "cgroup.subtree_control").read_text().split()
            if any(name not in enabled for name in CONTROLLERS):
                (parent / "cgroup.subtree_control").write_text(enable)
            self.root.mkdir(exist_ok=True)
            (self.root / "cgroup.subtree_control").write_text(enable)
        except OSError as exc:
            msg = f"cannot set up the cgroup root {self.root}: {exc}"
            raise CgroupError(msg) from exc
        self._prepared = True

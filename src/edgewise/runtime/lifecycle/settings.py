"""How the lifecycle supervisor runs components: directories, error policy, kill grace, log rotation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_CGROUP_ROOT = Path("/sys/fs/cgroup/edgewise")


@dataclass(frozen=True)
class LifecycleSettings:
    """Settings of a :class:`~edgewise.runtime.lifecycle.LifecycleSupervisor`.

    The first restart after an error is immediate (restarts are benchmarked); the n-th one after that
    waits ``min(restart_backoff_base * 2**(n-1), restart_backoff_cap)`` seconds plus up to 10% jitter.
    """

    work_dir: Path  #: ROOT/work; each component runs in ``work_dir/<name>``
    log_dir: Path  #: ROOT/logs; component output goes to ``log_dir/<name>.log``
    error_threshold: int = 3  #: errors per originating state within the window before BROKEN
    error_window: float = 3600.0  #: seconds; a recipe's ``errorResetTime`` overrides it
    grace_period: float = 5.0  #: seconds between SIGTERM and SIGKILL of a component's process groups
    restart_backoff_base: float = 1.0  #: seconds before the second consecutive retry
    restart_backoff_cap: float = 30.0  #: longest wait between retries, before jitter
    run_as: str | None = None  #: "user[:group]" for components without ``posix_user`` when running as root
    log_max_bytes: int = 1_048_576  #: a component log is rotated before it grows past this size
    log_backups: int = 5  #: rotated files kept: ``<name>.log.1`` (newest) .. ``<name>.log.<n>``
    #: Where components with ``systemResourceLimits`` get their cgroup (``<cgroup_root>/<name>``); its parent
    #: must be a cgroup v2 directory the runtime may write (see :mod:`edgewise.runtime.lifecycle.cgroups`).
    cgroup_root: Path = DEFAULT_CGROUP_ROOT

    def __post_init__(self) -> None:
        problems = []
        if self.error_threshold < 1:
            problems.append(f"error_threshold must be at least 1, not {self.error_threshold}")
        if self.error_window <= 0:
            problems.append(f"error_window must be positive, not {self.error_window}")
        if self.grace_period < 0:
            problems.append(f"grace_period must not be negative, not {self.grace_period}")
        if self.restart_backoff_base < 0:
            problems.append(f"restart_backoff_base must not be negative, not {self.restart_backoff_base}")
        if self.restart_backoff_cap < self.restart_backoff_base:
            problems.append(
                f"restart_backoff_cap ({self.restart_backoff_cap}) must not be below "
                f"restart_backoff_base ({self.restart_backoff_base})"
            )
        if self.run_as is not None and not _is_identity(self.run_as):
            problems.append(f"run_as must be 'user' or 'user:group', not {self.run_as!r}")
        if self.log_max_bytes < 1:
            problems.append(f"log_max_bytes must be positive, not {self.log_max_bytes}")
        if self.log_backups < 0:
            problems.append(f"log_backups must not be negative, not {self.log_backups}")
        if problems:
            raise ValueError("Invalid lifecycle settings: " + "; ".join(problems))


def _is_identity(text: str) -> bool:
    """True for "user" or "user:group" with neither part empty."""
    user, colon, group = text.partition(":")
    return bool(user) and (not colon or bool(group))

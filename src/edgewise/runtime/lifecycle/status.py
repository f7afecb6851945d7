"""A snapshot of one supervised component, for the CLI, IPC and deployment status reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from edgewise.runtime.lifecycle.states import ComponentState


@dataclass(frozen=True)
class ComponentStatus:
    """Where one component stands, as :meth:`LifecycleSupervisor.status` reports it."""

    name: str
    version: str  #: the version in effect (the one installed or being installed)
    state: ComponentState
    pids: tuple[int, ...] = ()  #: leaders of the component's step processes still running
    error_counts: Mapping[ComponentState, int] = field(default_factory=dict)  #: per originating state
    last_exit_code: int | None = None  #: of the last Install, Startup or Run process that exited
    last_failure: str | None = None  #: why the component last entered ERRORED or BROKEN
    paused: bool = False  #: its processes are stopped by PauseComponent (the state stays RUNNING)

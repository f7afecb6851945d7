"""Component lifecycle states and their predicates.

The states are Greengrass's, described under "Component lifecycle" at
https://docs.aws.amazon.com/greengrass/v2/developerguide/develop-greengrass-components.html.
"""

from __future__ import annotations

from enum import StrEnum


class ComponentState(StrEnum):
    """Where a component is in its lifecycle. Names and values match Greengrass ``LifecycleState``."""

    NEW = "NEW"  #: created; Install runs next
    INSTALLED = "INSTALLED"  #: Install done; waiting for HARD dependencies to be ready
    STARTING = "STARTING"  #: Startup or Run being launched
    RUNNING = "RUNNING"  #: up
    STOPPING = "STOPPING"  #: Shutdown in progress
    ERRORED = "ERRORED"  #: a step failed; Recover runs, then a retry
    BROKEN = "BROKEN"  #: too many errors in the window; only a deployment brings it back
    FINISHED = "FINISHED"  #: done, not running (Run exited 0, or stopped)

    @property
    def is_ready(self) -> bool:
        """True when HARD dependents may start: RUNNING or FINISHED."""
        return self in (ComponentState.RUNNING, ComponentState.FINISHED)

    @property
    def is_settled(self) -> bool:
        """True when a deployment may stop waiting for this component (success or BROKEN)."""
        return self in (ComponentState.RUNNING, ComponentState.FINISHED, ComponentState.BROKEN)

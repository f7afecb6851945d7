"""Component lifecycle: the Greengrass component state machine and the supervision of component processes.

The deployment engine hands a :class:`LifecycleSupervisor` the set of :class:`ComponentSpec` to run;
the supervisor installs, starts, restarts and stops them, and reports their :class:`ComponentState`.
"""

from edgewise.runtime.lifecycle.errors import ComponentNotSupervisedError, LifecycleError, StepError
from edgewise.runtime.lifecycle.settings import LifecycleSettings
from edgewise.runtime.lifecycle.spec import ComponentSpec
from edgewise.runtime.lifecycle.states import ComponentState
from edgewise.runtime.lifecycle.status import ComponentStatus
from edgewise.runtime.lifecycle.supervisor import LifecycleSupervisor, StateCallback

__all__ = [
    "ComponentNotSupervisedError",
    "ComponentSpec",
    "ComponentState",
    "ComponentStatus",
    "LifecycleError",
    "LifecycleSettings",
    "LifecycleSupervisor",
    "StateCallback",
    "StepError",
]

"""Errors of the lifecycle supervisor:

LifecycleError (EdgewiseError)    the supervisor cannot do what was asked
 ├── ComponentNotSupervisedError  no component of that name is supervised
 └── StepError                    a step could not be started (bad user, bad Skipif, spawn failure)
"""

from __future__ import annotations

from edgewise.errors import EdgewiseError


class LifecycleError(EdgewiseError):
    """The supervisor cannot do what was asked."""


class ComponentNotSupervisedError(LifecycleError, LookupError):
    """A request named a component the supervisor does not run."""

    def __init__(self, component: str) -> None:
        super().__init__(f"Component {component!r} is not supervised")
        self.component = component


class StepError(LifecycleError):
    """A lifecycle step could not be started; the message says why, and the step counts as failed."""

    def __init__(self, component: str, step: str, problem: str) -> None:
        super().__init__(f"Component {component!r} cannot run its {step} step: {problem}")
        self.component = component
        self.step = step
        self.problem = problem

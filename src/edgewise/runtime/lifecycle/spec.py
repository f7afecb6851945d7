"""What the supervisor needs to run one component: its resolved, interpolated lifecycle and settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from edgewise.recipe import DependencyType, Lifecycle
from edgewise.runtime.lifecycle.cgroups import ResourceLimits


@dataclass(frozen=True)
class ComponentSpec:
    """One component as the supervisor runs it.

    Two specs compare equal exactly when nothing the supervisor runs has changed; the deployment
    engine restarts a running component whose spec changed, and reinstalls it when its version or
    its ``Install`` step changed (see :meth:`needs_reinstall`).
    """

    name: str
    version: str
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    dependencies: Mapping[str, DependencyType] = field(default_factory=dict)
    posix_user: str | None = None  #: ``runWith.posixUser`` ("user" or "user:group")
    builtin: bool = False  #: a service of the runtime itself: its lifecycle never runs
    #: ``runWith.systemResourceLimits``, else the nucleus ``runWithDefault.systemResourceLimits``
    resource_limits: ResourceLimits | None = None

    def differs_only_in_limits(self, other: ComponentSpec) -> bool:
        """True when ``other`` is this spec with other resource limits: they change without a restart."""
        return self.resource_limits != other.resource_limits and self == replace(
            other, resource_limits=self.resource_limits
        )

    def needs_reinstall(self, previous: ComponentSpec) -> bool:
        """True when moving from ``previous`` to this spec must run Install again."""
        return (
            self.version != previous.version
            or self.lifecycle.steps.get("Install") != previous.lifecycle.steps.get("Install")
            or self.posix_user != previous.posix_user
        )

"""The recipe object model: what a parsed, validated Greengrass v2 recipe holds.

Every class is a frozen dataclass so that two recipes (or two resolved lifecycles) can be compared
with ``==``; the deployment engine relies on that to decide what to restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class DependencyType(StrEnum):
    """How strongly a component depends on another (a recipe's ``DependencyType``; HARD when not given)."""

    HARD = "HARD"  #: wait for the dependency to be ready; restart when it restarts
    SOFT = "SOFT"  #: install and start it, but never gate or restart on it


class ComponentType(StrEnum):
    """The recipe's ``ComponentType``."""

    GENERIC = "aws.greengrass.generic"
    LAMBDA = "aws.greengrass.lambda"
    PLUGIN = "aws.greengrass.plugin"
    NUCLEUS = "aws.greengrass.nucleus"


class Unarchive(StrEnum):
    """What to do with an artifact after download."""

    NONE = "NONE"
    ZIP = "ZIP"


class PermissionLevel(StrEnum):
    """Who may read or execute an artifact file."""

    NONE = "NONE"
    OWNER = "OWNER"
    ALL = "ALL"


@dataclass(frozen=True)
class ComponentDependency:
    """One entry of ``ComponentDependencies``."""

    name: str
    version_requirement: str
    dependency_type: DependencyType = DependencyType.HARD


@dataclass(frozen=True)
class ArtifactPermission:
    """``Permission`` of an artifact; ``Execute`` implies ``Read``."""

    read: PermissionLevel = PermissionLevel.OWNER
    execute: PermissionLevel = PermissionLevel.NONE


@dataclass(frozen=True)
class Artifact:
    """One artifact of a manifest."""

    uri: str
    digest: str | None = None
    algorithm: str = "SHA-256"
    unarchive: Unarchive = Unarchive.NONE
    permission: ArtifactPermission = field(default_factory=ArtifactPermission)

    @property
    def file_name(self) -> str:
        """The last path segment of the URI: how artifacts are matched to files on disk."""
        tail = self.uri.rsplit("/", 1)[-1]
        return tail.rsplit(":", 1)[-1] if "/" not in self.uri else tail


@dataclass(frozen=True)
class Skipif:
    """A step's ``Skipif``: ``onpath <exe>`` or ``exists <path>``, optionally negated with ``!``."""

    check: str  #: "onpath" or "exists"
    target: str
    negate: bool = False


@dataclass(frozen=True)
class LifecycleStep:
    """One lifecycle step (``Install``, ``Run``, ...), whether written as a string or an object."""

    script: str
    timeout: float | None = None  #: seconds; None means the step's default
    requires_privilege: bool = False
    setenv: Mapping[str, str] = field(default_factory=dict)
    skipif: Skipif | None = None


#: Canonical lifecycle step names, in the spelling the reference uses.
STEP_NAMES = ("Bootstrap", "Install", "Startup", "Run", "Shutdown", "Recover", "Uninstall")


@dataclass(frozen=True)
class Lifecycle:
    """A selected lifecycle: the steps that will run, plus the lifecycle-level ``Setenv``.

    ``steps`` is keyed by the canonical names of :data:`STEP_NAMES`.
    """

    steps: Mapping[str, LifecycleStep] = field(default_factory=dict)
    setenv: Mapping[str, str] = field(default_factory=dict)
    error_reset_time: float | None = None  #: seconds; None means the runtime's default


@dataclass(frozen=True)
class Manifest:
    """One entry of ``Manifests``. ``lifecycle`` is the raw mapping, selected later."""

    platform: Mapping[str, str] = field(default_factory=dict)
    lifecycle: Mapping[str, Any] = field(default_factory=dict)
    selections: tuple[str, ...] = ()
    artifacts: tuple[Artifact, ...] = ()
    name: str | None = None


@dataclass(frozen=True)
class Recipe:
    """A whole, validated recipe."""

    name: str
    version: str
    format_version: str = "2020-01-25"
    description: str | None = None
    publisher: str | None = None
    component_type: ComponentType = ComponentType.GENERIC
    default_configuration: Mapping[str, Any] = field(default_factory=dict)
    dependencies: Mapping[str, ComponentDependency] = field(default_factory=dict)
    manifests: tuple[Manifest, ...] = ()
    global_lifecycle: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)  #: the document as parsed

"""Runtime settings: everything ``edgewise runtime start`` is told, built once and passed down."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgewise.runtime.paths import RootPaths

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink import CloudLinkSettings


@dataclass(frozen=True)
class ArtifactLimits:
    """Bounds on unpacking and copying artifacts into the component store (the configuration file's
    ``artifacts`` section)."""

    #: The most bytes one ZIP artifact may expand to. 1 GiB holds any model or runtime bundle we know of, yet
    #: stops the archives that expand to many gigabytes long before a device's disk is full.
    max_expanded_bytes: int = 1 << 30
    #: The most bytes one ZIP artifact may expand to per byte of archive. Text and code compress 3-10 times,
    #: sparse binaries a few tens; a ZIP bomb a thousand times and more.
    max_compression_ratio: int = 100
    #: Free space left on the disk after extracting or copying artifacts, for logs, spool and configuration.
    min_free_bytes: int = 64 << 20


#: How long a started component must stay RUNNING before a deployment counts it as up, by default: Greengrass
#: checks the states once a second, so a Run process that dies within about a second fails the deployment there too.
RUN_STABILITY_SECONDS = 1.0


@dataclass(frozen=True)
class RuntimeSettings:
    """How one runtime runs."""

    root: Path
    thing_name: str = "edgewise-device"
    region: str = "us-east-1"
    run_as: str | None = None  #: "user[:group]" for components when the runtime runs as root
    error_threshold: int = 3
    error_window: float = 3600.0
    grace_period: float = 5.0
    #: Seconds a started component must stay RUNNING before a deployment counts it as up
    run_stability: float = RUN_STABILITY_SECONDS
    platform_overrides: Mapping[str, str] = field(default_factory=dict)
    log_level: str = "INFO"
    ipc_handshake_timeout: float = 5.0  #: seconds an IPC connection has to authenticate before it is closed
    cloud: CloudLinkSettings | None = None  #: the cloud connection, from the configuration file's ``cloud``
    #: Parent of the components' cgroups for ``systemResourceLimits`` (docs/runtime.md, "Resource limits")
    cgroup_root: Path = Path("/sys/fs/cgroup/edgewise")
    #: Run when a Bootstrap step asks for a reboot (exit code 101), once the runtime has stopped
    reboot_command: tuple[str, ...] = ("shutdown", "-r", "now")
    artifacts: ArtifactLimits = field(
        default_factory=ArtifactLimits
    )  #: the configuration file's ``artifacts``

    @property
    def paths(self) -> RootPaths:
        return RootPaths.at(self.root)

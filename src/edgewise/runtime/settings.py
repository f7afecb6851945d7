"""Runtime settings: everything ``edgewise runtime start`` is told, built once and passed down."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgewise.runtime.paths import RootPaths

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink import CloudSettings


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
    platform_overrides: Mapping[str, str] = field(default_factory=dict)
    log_level: str = "INFO"
    cloud: CloudSettings | None = None  #: the cloud connection, from the configuration file's ``cloud``

    @property
    def paths(self) -> RootPaths:
        return RootPaths.at(self.root)

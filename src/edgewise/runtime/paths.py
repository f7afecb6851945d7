"""The runtime's root directory layout (modelled on the Greengrass root, ``/greengrass/v2`` by default).

ROOT/
  config/            config.tlog, config.snapshot.json, effective.yaml
  deployments/       history/<id>.json, current.json (an activation in progress)
  packages/          recipes/, artifacts/<name>/<version>/, artifacts-unarchived/<name>/<version>/
  work/<name>/       each component's working directory
  logs/              edgewise.log and <component>.log
  cli_ipc_info/      the CLI's IPC token (root only)
  ipc.socket         the IPC server
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RootPaths:
    """Every path under one runtime root."""

    root: Path

    @classmethod
    def at(cls, root: Path | str) -> RootPaths:
        """Paths under ``root``, made absolute (components see absolute paths)."""
        return cls(Path(root).expanduser().resolve())

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def effective_config(self) -> Path:
        return self.config_dir / "effective.yaml"

    @property
    def deployments_dir(self) -> Path:
        return self.root / "deployments"

    @property
    def packages_dir(self) -> Path:
        return self.root / "packages"

    @property
    def recipes_dir(self) -> Path:
        return self.packages_dir / "recipes"

    @property
    def artifacts_dir(self) -> Path:
        return self.packages_dir / "artifacts"

    @property
    def unarchived_dir(self) -> Path:
        return self.packages_dir / "artifacts-unarchived"

    @property
    def work_dir(self) -> Path:
        return self.root / "work"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def runtime_log(self) -> Path:
        return self.logs_dir / "edgewise.log"

    @property
    def cli_ipc_info_dir(self) -> Path:
        return self.root / "cli_ipc_info"

    @property
    def cli_token_file(self) -> Path:
        return self.cli_ipc_info_dir / "cli_ipc_info.json"

    @property
    def ipc_socket(self) -> Path:
        return self.root / "ipc.socket"

    @property
    def lock_file(self) -> Path:
        return self.root / "edgewise.lock"

    @property
    def pid_file(self) -> Path:
        return self.root / "edgewise.pid"

    def component_artifacts(self, name: str, version: str) -> Path:
        return self.artifacts_dir / name / version

    def component_unarchived(self, name: str, version: str) -> Path:
        return self.unarchived_dir / name / version

    def component_work(self, name: str) -> Path:
        return self.work_dir / name

    def component_log(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def create(self) -> None:
        """Create the directories. Blocks (file system)."""
        for directory in (
            self.config_dir,
            self.deployments_dir,
            self.recipes_dir,
            self.artifacts_dir,
            self.unarchived_dir,
            self.work_dir,
            self.logs_dir,
        ):
            directory.mkdir(parents=True, exist_ok=True)
        self.cli_ipc_info_dir.mkdir(mode=0o700, exist_ok=True)
        self.cli_ipc_info_dir.chmod(0o700)

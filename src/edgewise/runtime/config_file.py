"""The runtime configuration file (``edgewise runtime start --config FILE``): read it, parse it with the
shared parser of :mod:`edgewise.protocol.device_config`, and build the runtime's settings from it.

The file's keys, defaults and checks are documented there and in docs/configuration.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgewise.runtime import cloudlink
from edgewise.runtime.cloudlink import ConfigFileError
from edgewise.runtime.settings import ArtifactLimits

if TYPE_CHECKING:
    from edgewise.protocol.device_config import ArtifactsSection, CloudSection
    from edgewise.runtime.cloudlink import CloudLinkSettings


@dataclass(frozen=True)
class RuntimeFileSettings:
    """What the runtime configuration file says, as the runtime's settings."""

    thing_name: str | None = None
    cloud: CloudLinkSettings | None = None
    artifacts: ArtifactLimits = field(default_factory=ArtifactLimits)


def cloud_settings(cloud: CloudSection) -> CloudLinkSettings:
    """The cloud link's settings from the file's ``cloud`` section."""
    return cloudlink.CloudLinkSettings(
        endpoint=cloud.endpoint,
        certificate=cloud.certificate,
        private_key=cloud.private_key,
        root_ca=cloud.root_ca,
        port=cloud.port,
        https_port=cloud.https_port,
        client_id=cloud.client_id,
        keep_alive=cloud.keep_alive,
        spool=cloudlink.SpoolSettings(
            max_bytes=cloud.spool.max_bytes, keep_qos0_when_offline=cloud.spool.keep_qos0_when_offline
        ),
        reconnect=cloudlink.ReconnectSettings(
            min_delay=cloud.reconnect.min_delay, max_delay=cloud.reconnect.max_delay
        ),
        fleet=cloudlink.FleetSettings(
            enabled=cloud.fleet.enabled,
            status_interval=cloud.fleet.status_interval,
            confirm_interval=cloud.fleet.confirm_interval,
        ),
    )


def artifact_limits(artifacts: ArtifactsSection) -> ArtifactLimits:
    """The component store's limits from the file's ``artifacts`` section."""
    return ArtifactLimits(
        max_expanded_bytes=artifacts.max_expanded_bytes,
        max_compression_ratio=artifacts.max_compression_ratio,
        min_free_bytes=artifacts.min_free_bytes,
    )


def load_config_file(path: Path) -> RuntimeFileSettings:
    """Read and validate the runtime configuration file. Blocks (file system): call it off the event loop.

    Raises:
        ConfigFileError: the file cannot be read, is not YAML, or has invalid fields (all of them listed).
    """
    # Imported here: a runtime started without a file does not load the parser.
    from edgewise.protocol.device_config import DeviceConfigError, parse_device_config

    path = Path(path).expanduser().resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise ConfigFileError(path, [f"cannot read the file: {reason}"]) from exc
    try:
        config = parse_device_config(text, base_dir=path.parent)
    except DeviceConfigError as exc:
        raise ConfigFileError(path, exc.problems) from exc
    return RuntimeFileSettings(
        thing_name=config.thing_name,
        cloud=None if config.cloud is None else cloud_settings(config.cloud),
        artifacts=artifact_limits(config.artifacts),
    )

"""The device agent: fleet deployments from the cloud's jobs, fleet status and presence (docs/runtime.md,
"Fleet deployments (device agent)"; the protocol is docs/device-protocol.md).

Loaded only by a runtime whose configuration has a ``cloud`` section with ``fleet`` enabled.
"""

from edgewise.runtime.fleet.agent import FleetAgent
from edgewise.runtime.fleet.download import ArtifactDownloader, DownloadSettings
from edgewise.runtime.fleet.errors import ArtifactDownloadError, ComponentResolveError
from edgewise.runtime.fleet.presence import presence_messages
from edgewise.runtime.fleet.status import FleetStatusReporter

__all__ = [
    "ArtifactDownloadError",
    "ArtifactDownloader",
    "ComponentResolveError",
    "DownloadSettings",
    "FleetAgent",
    "FleetStatusReporter",
    "presence_messages",
]

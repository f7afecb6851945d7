"""Errors of the device agent. Each is a :class:`DeploymentError`: a fleet deployment that meets one fails with
``FAILED_NO_STATE_CHANGE``, its message as the failure cause and its error types reported to the cloud.

    DeploymentError
    ├── ComponentResolveError   the cloud did not give usable recipes (no answer, malformed, none published)
    └── ArtifactDownloadError   an artifact could not be downloaded or its digest does not match
"""

from __future__ import annotations

from edgewise.runtime.deployment import DeploymentError


class ComponentResolveError(DeploymentError):
    """Recipes for a deployment could not be obtained from the cloud."""

    def __init__(self, message: str, *, error_types: tuple[str, ...] = ("CLOUD_SERVICE_ERROR",)) -> None:
        super().__init__(message, error_types=error_types)


class ArtifactDownloadError(DeploymentError):
    """An artifact could not be downloaded, or what arrived is not what the recipe promised."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_types=("ARTIFACT_DOWNLOAD_ERROR",))

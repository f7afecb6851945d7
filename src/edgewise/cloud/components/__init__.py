"""The component registry: published component versions, their recipes, and the artifact store."""

from __future__ import annotations

from edgewise.cloud.components.errors import ArtifactNotFoundError as ArtifactNotFoundError
from edgewise.cloud.components.errors import ArtifactStoreError as ArtifactStoreError
from edgewise.cloud.components.errors import DigestMismatchError as DigestMismatchError
from edgewise.cloud.components.models import ComponentArtifact as ComponentArtifact
from edgewise.cloud.components.models import ComponentVersion as ComponentVersion
from edgewise.cloud.components.store import ArtifactReader as ArtifactReader
from edgewise.cloud.components.store import ArtifactStore as ArtifactStore
from edgewise.cloud.components.store import LocalArtifactStore as LocalArtifactStore
from edgewise.cloud.components.store import StoredArtifact as StoredArtifact
from edgewise.cloud.components.store import open_artifact_store as open_artifact_store

__all__ = [
    "ArtifactNotFoundError",
    "ArtifactReader",
    "ArtifactStore",
    "ArtifactStoreError",
    "ComponentArtifact",
    "ComponentVersion",
    "DigestMismatchError",
    "LocalArtifactStore",
    "StoredArtifact",
    "open_artifact_store",
]

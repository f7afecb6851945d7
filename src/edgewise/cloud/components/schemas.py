"""API shapes of the component registry and artifact uploads (camelCase on the wire).

Request shapes are strict and refuse unknown fields. A recipe is sent as its JSON or YAML text (so YAML is
read by the same rules as on a device) or as a JSON object.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from edgewise.cloud.components.service import NAME_MAX_LENGTH, NAME_PATTERN
from edgewise.cloud.components.store import SHA256_PATTERN

RECIPE_MAX_LENGTH = 1024 * 1024
MAX_ARTIFACTS = 100
FILE_NAME_PATTERN = r"^[^/\x00]+$"

Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN, description="SHA-256 in lowercase hex")]
FileName = Annotated[str, Field(min_length=1, max_length=255, pattern=FILE_NAME_PATTERN)]
ComponentName = Annotated[str, Field(min_length=1, max_length=NAME_MAX_LENGTH, pattern=NAME_PATTERN)]


class _Shape(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class _Request(_Shape):
    model_config = ConfigDict(extra="forbid", strict=True)


class ComponentPublish(_Request):
    """A component version to publish: its recipe, and the uploaded artifacts by file name."""

    recipe: Annotated[str, Field(min_length=1, max_length=RECIPE_MAX_LENGTH)] | dict[str, Any]
    artifacts: Annotated[dict[FileName, Sha256], Field(max_length=MAX_ARTIFACTS)] = Field(
        default_factory=dict
    )


class ArtifactPublic(_Shape):
    """An artifact Uri of a component version and the stored file behind it."""

    uri: str
    file_name: str
    sha256: str
    #: The recipe's Digest: base64 of the raw SHA-256.
    digest: str
    algorithm: str
    size: int


class ComponentVersionSummary(_Shape):
    """A published component version, without its recipe."""

    component_name: str
    component_version: str
    description: str | None
    publisher: str | None
    published_by: str
    created_at: datetime.datetime


class ComponentVersionPublic(ComponentVersionSummary):
    """A published component version: its stored recipe (digests filled in) and its artifacts."""

    recipe: dict[str, Any]
    artifacts: list[ArtifactPublic]


class ComponentVersionsPublic(_Shape):
    """Every version of a component, newest first."""

    data: list[ComponentVersionSummary]
    count: int


class ComponentPublic(_Shape):
    """A component and its newest version."""

    component_name: str
    latest_version: str
    description: str | None
    publisher: str | None
    version_count: int
    updated_at: datetime.datetime


class ComponentsPublic(_Shape):
    """A page of components and how many match in all."""

    data: list[ComponentPublic]
    count: int


class ArtifactUploadPublic(_Shape):
    """Where an artifact upload stands: stored (with its size), or how many bytes are staged."""

    sha256: str
    stored: bool
    size: int | None
    received_bytes: int

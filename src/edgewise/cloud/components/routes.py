"""REST routes of the component registry and artifact uploads (reads: any role; writes: operator).

Uploading is two calls per file, so a client can skip what is stored and resume what broke off:
``GET /artifacts/{sha256}`` says whether the store has the file or how many bytes of it are staged, and
``PUT /artifacts/{sha256}?size=N&offset=K`` streams the bytes from ``K`` on. ``POST /components`` then
publishes a recipe that refers to the uploaded files by name.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from starlette.requests import ClientDisconnect

from edgewise.cloud.auth import CurrentToken, require_access
from edgewise.cloud.components import service
from edgewise.cloud.components.models import ComponentVersion
from edgewise.cloud.components.schemas import (
    ArtifactPublic,
    ArtifactUploadPublic,
    ComponentPublic,
    ComponentPublish,
    ComponentsPublic,
    ComponentVersionPublic,
    ComponentVersionsPublic,
    ComponentVersionSummary,
)
from edgewise.cloud.components.store import SHA256_PATTERN, ArtifactStore
from edgewise.cloud.components.uploads import ArtifactUploads, UploadStatus
from edgewise.cloud.db import SessionDep
from edgewise.cloud.errors import ERROR_RESPONSES, InvalidRequestError

logger = logging.getLogger(__name__)

UPLOADS_DIR = "uploads"
_MAX_SIZE = 2**53
_NAME_MAX = service.NAME_MAX_LENGTH
_NAME_PATTERN = service.NAME_PATTERN
ComponentName = Annotated[
    str, Path(alias="componentName", min_length=1, max_length=_NAME_MAX, pattern=_NAME_PATTERN)
]
ComponentVersionText = Annotated[
    str, Path(alias="componentVersion", min_length=5, max_length=64, pattern=service.VERSION_PATTERN)
]
Sha256Hex = Annotated[str, Path(pattern=SHA256_PATTERN, description="SHA-256 of the file, lowercase hex")]
NamePrefix = Annotated[
    str | None, Query(alias="namePrefix", min_length=1, max_length=_NAME_MAX, pattern=_NAME_PATTERN)
]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]

router = APIRouter(dependencies=[Depends(require_access())], responses=ERROR_RESPONSES)


def artifact_store(request: Request) -> ArtifactStore:
    """The artifact store the app was created with."""
    store: ArtifactStore = request.app.state.services.artifact_store
    return store


def artifact_uploads(request: Request) -> ArtifactUploads:
    """Uploads staged in the data directory, stored into the app's artifact store."""
    return ArtifactUploads(
        request.app.state.services.settings.data_dir / UPLOADS_DIR, artifact_store(request)
    )


StoreDep = Annotated[ArtifactStore, Depends(artifact_store)]
UploadsDep = Annotated[ArtifactUploads, Depends(artifact_uploads)]


def _summary(version: ComponentVersion) -> ComponentVersionSummary:
    return ComponentVersionSummary(
        component_name=version.name,
        component_version=version.version,
        description=version.description,
        publisher=version.publisher,
        published_by=version.published_by,
        created_at=version.created_at,
    )


def version_public(version: ComponentVersion) -> ComponentVersionPublic:
    """The API shape of a published version."""
    return ComponentVersionPublic(
        **_summary(version).model_dump(),
        recipe=service.recipe_document(version),
        artifacts=[
            ArtifactPublic(
                uri=artifact.uri,
                file_name=artifact.file_name,
                sha256=artifact.sha256,
                digest=service.sha256_to_digest(artifact.sha256),
                algorithm=service.ALGORITHM,
                size=artifact.size,
            )
            for artifact in version.artifacts
        ],
    )


def _upload_public(upload: UploadStatus) -> ArtifactUploadPublic:
    return ArtifactUploadPublic(
        sha256=upload.sha256, stored=upload.stored, size=upload.size, received_bytes=upload.received_bytes
    )


@router.post(
    "/components",
    status_code=status.HTTP_201_CREATED,
    tags=["components"],
    responses={200: {"model": ComponentVersionPublic, "description": "Already published, identical"}},
)
def publish_component(
    session: SessionDep, store: StoreDep, token: CurrentToken, request: ComponentPublish, response: Response
) -> ComponentVersionPublic:
    """Publish a component version whose artifacts have been uploaded; identical re-publishing is a no-op."""
    published = service.publish_component(
        session, store, recipe=request.recipe, artifacts=request.artifacts, published_by=token.name
    )
    if not published.created:
        response.status_code = status.HTTP_200_OK
    return version_public(published.version)


@router.get("/components", tags=["components"])
def list_components(
    session: SessionDep, limit: Limit = 100, offset: Offset = 0, name_prefix: NamePrefix = None
) -> ComponentsPublic:
    """List components by name, each with its newest version."""
    page = service.list_components(session, limit=limit, offset=offset, name_prefix=name_prefix)
    return ComponentsPublic(
        data=[
            ComponentPublic(
                component_name=item.name,
                latest_version=item.latest.version,
                description=item.latest.description,
                publisher=item.latest.publisher,
                version_count=item.version_count,
                updated_at=item.latest.created_at,
            )
            for item in page.items
        ],
        count=page.total,
    )


@router.get("/components/{componentName}/versions", tags=["components"])
def list_versions(session: SessionDep, name: ComponentName) -> ComponentVersionsPublic:
    """List a component's versions, newest first."""
    versions = service.list_versions(session, name)
    return ComponentVersionsPublic(data=[_summary(version) for version in versions], count=len(versions))


@router.get("/components/{componentName}/versions/{componentVersion}", tags=["components"])
def describe_version(
    session: SessionDep, name: ComponentName, version: ComponentVersionText
) -> ComponentVersionPublic:
    """Describe a component version: its stored recipe and its artifacts."""
    return version_public(service.get_component_version(session, name, version))


@router.get(
    "/components/{componentName}/versions/{componentVersion}/recipe",
    tags=["components"],
    response_class=Response,
    responses={
        200: {
            "description": "The stored recipe",
            "content": {"application/json": {"schema": {"type": "object"}}, "application/yaml": {}},
        }
    },
)
def download_recipe(
    session: SessionDep,
    name: ComponentName,
    version: ComponentVersionText,
    recipe_format: Annotated[Literal["json", "yaml"], Query(alias="format")] = "json",
) -> Response:
    """Download a component version's stored recipe as JSON or YAML."""
    stored = service.get_component_version(session, name, version)
    if recipe_format == "yaml":
        return Response(service.recipe_yaml(stored), media_type="application/yaml")
    return Response(stored.recipe, media_type="application/json")


@router.delete(
    "/components/{componentName}/versions/{componentVersion}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    tags=["components"],
)
def delete_version(
    session: SessionDep, store: StoreDep, name: ComponentName, version: ComponentVersionText
) -> None:
    """Delete a component version, and the stored artifacts no other version uses."""
    service.delete_component_version(session, store, name, version)


@router.get("/artifacts/{sha256}", tags=["artifacts"])
def get_upload(uploads: UploadsDep, sha256: Sha256Hex) -> ArtifactUploadPublic:
    """Say whether the store has an artifact, or how many bytes of its upload are staged."""
    return _upload_public(uploads.status(sha256))


@router.put(
    "/artifacts/{sha256}",
    tags=["artifacts"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_artifact(
    request: Request,
    uploads: UploadsDep,
    sha256: Sha256Hex,
    size: Annotated[int, Query(ge=0, le=_MAX_SIZE, description="The whole file's size in bytes")],
    offset: Annotated[int, Query(ge=0, le=_MAX_SIZE, description="Where the body starts in the file")] = 0,
) -> ArtifactUploadPublic:
    """Upload an artifact's bytes from ``offset`` on; stored once all ``size`` bytes have arrived and match."""
    most: int = request.app.state.services.settings.api_upload_max_bytes
    if size > most:
        raise InvalidRequestError("size", f"{size} bytes is more than the {most} bytes an artifact may have")
    try:
        upload = await uploads.receive(sha256, offset=offset, size=size, chunks=request.stream())
    except ClientDisconnect:
        staged = await asyncio.to_thread(uploads.status, sha256)
        logger.info("artifact-upload-interrupted sha256=%s received=%d", sha256, staged.received_bytes)
        raise InvalidRequestError(
            "body", f"the upload broke off with {staged.received_bytes} bytes staged; resume it from there"
        ) from None
    return _upload_public(upload)

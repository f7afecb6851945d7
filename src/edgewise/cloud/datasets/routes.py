"""REST routes of datasets: build one from stored telemetry, import a CSV or Parquet file, list, describe, download
and delete. Reads: any role; writes: operator (a dataset holds fleet data, never secrets).

``PUT /datasets/{name}/file?fileName=x.csv`` takes the file's raw bytes as the body (up to the cloud setting
``dataset_file_max_bytes``); ``GET /datasets/{name}/data`` answers the dataset's Parquet file.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from edgewise.cloud.auth import CurrentToken, require_access
from edgewise.cloud.components.store import artifact_chunks
from edgewise.cloud.datasets import service
from edgewise.cloud.datasets.schemas import DatasetCreate, DatasetPublic, DatasetsPublic
from edgewise.cloud.db import SessionDep
from edgewise.cloud.errors import ERROR_RESPONSES, InvalidRequestError
from edgewise.ml.names import ML_NAME_PATTERN

if TYPE_CHECKING:
    from edgewise.cloud.services import CloudServices

PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"

DatasetName = Annotated[str, Path(alias="datasetName", min_length=1, max_length=64, pattern=ML_NAME_PATTERN)]
FileName = Annotated[
    str,
    Query(
        alias="fileName",
        min_length=1,
        max_length=255,
        pattern=r"^[^/\\\x00-\x1f\x7f]+$",
        description="The file's name; its suffix (.csv or .parquet) says how to read it",
    ),
]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]

router = APIRouter(dependencies=[Depends(require_access())], responses=ERROR_RESPONSES, tags=["datasets"])


def _services(request: Request) -> CloudServices:
    services: CloudServices = request.app.state.services
    return services


@router.post(
    "/datasets",
    status_code=status.HTTP_201_CREATED,
    responses={503: {"description": "The ML libraries are not installed"}},
)
def create_dataset(
    session: SessionDep, request: Request, token: CurrentToken, body: DatasetCreate
) -> DatasetPublic:
    """Build a dataset from stored telemetry: the selected messages' fields, resampled, windowed and labelled."""
    services = _services(request)
    row = service.create_from_telemetry(
        session,
        services.artifact_store,
        body,
        created_by=token.name,
        max_rows=services.settings.dataset_max_rows,
    )
    return service.dataset_public(row)


@router.put(
    "/datasets/{datasetName}/file",
    status_code=status.HTTP_201_CREATED,
    responses={503: {"description": "The ML libraries are not installed"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def import_dataset(
    request: Request, token: CurrentToken, name: DatasetName, file_name: FileName
) -> DatasetPublic:
    """Import a CSV or Parquet file (the raw body) as a new dataset."""
    services = _services(request)
    most = services.settings.dataset_file_max_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > most:
        raise InvalidRequestError(
            "body",
            f"{declared} bytes is more than the {most} bytes a dataset file may have (dataset_file_max_bytes)",
        )
    received = bytearray()
    try:
        async for chunk in request.stream():
            received += chunk
            if len(received) > most:
                raise InvalidRequestError(
                    "body",
                    f"the file is more than the {most} bytes a dataset file may have (dataset_file_max_bytes)",
                )
    except ClientDisconnect:
        raise InvalidRequestError("body", "the upload broke off before the whole file arrived") from None
    if not received:
        raise InvalidRequestError("body", "is empty; send the file's bytes")

    def create() -> DatasetPublic:
        with services.sessions() as session:
            row = service.create_from_file(
                session,
                services.artifact_store,
                name,
                file_name=file_name,
                data=bytes(received),
                created_by=token.name,
                max_bytes=most,
            )
            return service.dataset_public(row)

    return await asyncio.to_thread(create)


@router.get("/datasets")
def list_datasets(session: SessionDep, limit: Limit = 100, offset: Offset = 0) -> DatasetsPublic:
    """Datasets by name, with their size, rows and columns."""
    rows, count = service.list_datasets(session, limit=limit, offset=offset)
    return DatasetsPublic(data=[service.dataset_item(row) for row in rows], count=count)


@router.get("/datasets/{datasetName}")
def get_dataset(session: SessionDep, name: DatasetName) -> DatasetPublic:
    """A dataset: how it was made, and a summary of each column."""
    return service.dataset_public(service.get_dataset(session, name))


@router.get(
    "/datasets/{datasetName}/data",
    response_class=StreamingResponse,
    responses={200: {"description": "The dataset as Parquet", "content": {PARQUET_MEDIA_TYPE: {}}}},
)
def download_dataset(session: SessionDep, request: Request, name: DatasetName) -> StreamingResponse:
    """The dataset's Parquet file (its metadata holds the spec and the source)."""
    row = service.get_dataset(session, name)
    reader = _services(request).artifact_store.open(row.sha256)

    return StreamingResponse(
        artifact_chunks(reader),
        media_type=PARQUET_MEDIA_TYPE,
        headers={
            "content-length": str(row.size_bytes),
            "etag": f'"{row.sha256}"',
            "content-disposition": f'attachment; filename="{row.name}.parquet"',
        },
    )


@router.delete("/datasets/{datasetName}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_dataset(session: SessionDep, request: Request, name: DatasetName) -> None:
    """Delete a dataset no queued or running training job reads (its file too, unless other data shares it)."""
    service.delete_dataset(session, _services(request).artifact_store, name)

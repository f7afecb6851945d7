"""A dataset's stored form: Parquet (zstd), with the spec it was built with and where it came from in the
schema metadata key ``edgewise.dataset`` (``{"spec": ..., "source": ...}`` JSON).

The same table, spec and source always give the same bytes, so a dataset's SHA-256 names its content.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Final

import pyarrow as pa

from edgewise.ml.errors import DatasetError

from .spec import DatasetSpec

METADATA_KEY: Final = b"edgewise.dataset"


def dataset_bytes(table: pa.Table, *, spec: DatasetSpec | None, source: Mapping[str, object]) -> bytes:
    """The Parquet bytes of ``table``; any schema metadata it had (pandas') is replaced by Edgewise's."""
    import pyarrow.parquet as pq

    metadata = {"spec": None if spec is None else spec.to_json(), "source": dict(source)}
    try:
        text = json.dumps(metadata, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise DatasetError(f"source: cannot be stored as JSON: {error}") from error
    stored = table.replace_schema_metadata({METADATA_KEY: text.encode()})
    sink = io.BytesIO()
    pq.write_table(stored, sink, compression="zstd")
    return sink.getvalue()


def read_dataset(data: bytes) -> tuple[pa.Table, DatasetSpec | None, dict[str, object]]:
    """The table, its spec (``None`` for an uploaded file) and its source, from :func:`dataset_bytes`' output.

    The returned table carries no schema metadata, so storing it again with the same spec and source gives the
    same bytes.
    """
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError) as error:
        raise DatasetError(f"dataset: not a valid Parquet file: {error}") from error
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    table = table.replace_schema_metadata(None)
    if raw is None:
        return table, None, {}
    try:
        metadata = json.loads(raw)
    except ValueError as error:
        raise DatasetError(f"dataset: metadata {METADATA_KEY.decode()} is not JSON: {error}") from error
    if not isinstance(metadata, dict):
        raise DatasetError(f"dataset: metadata {METADATA_KEY.decode()} is not a JSON object")
    raw_spec = metadata.get("spec")
    spec = None if raw_spec is None else DatasetSpec.from_json(raw_spec)
    source = metadata.get("source")
    if not isinstance(source, dict):
        raise DatasetError(f"dataset: metadata {METADATA_KEY.decode()}.source is not a JSON object")
    return table, spec, source

"""Read a user's own dataset file (CSV or Parquet) into a table the pipeline can use.

Columns must hold numbers, booleans or text. A column named ``timestamp`` (ISO 8601 text, epoch milliseconds or
a Parquet timestamp) becomes ``timestamp[ms, UTC]``, a ``thing`` column becomes text; both move to the front,
the other columns stay as they are.
"""

from __future__ import annotations

import io
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from edgewise.ml.errors import DatasetError

from .build import TIMESTAMP_TYPE

DEFAULT_MAX_BYTES: Final = 256 * 1024 * 1024
#: Parquet is compressed: its decoded size may exceed the size limit by this factor before it is refused.
MAX_EXPANSION: Final = 8
MAX_COLUMNS: Final = 10_000
PARQUET_BATCH_ROWS: Final = 8192


def read_table_file(data: bytes, *, file_name: str, max_bytes: int = DEFAULT_MAX_BYTES) -> pa.Table:
    """The table in ``data``, a ``.csv`` or ``.parquet`` (``.pq``) file by ``file_name``'s suffix.

    Raises ``DatasetError`` naming the file when it is over ``max_bytes``, does not parse, has no rows, or has a
    column of another type.
    """
    if len(data) > max_bytes:
        raise DatasetError(f"{file_name}: {len(data)} bytes is over the limit of {max_bytes} bytes")
    suffix = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    if suffix == "csv":
        table = _read_csv(data, file_name)
    elif suffix in ("parquet", "pq"):
        table = _read_parquet(data, file_name, max_bytes)
    else:
        raise DatasetError(f"{file_name}: the file name must end in .csv or .parquet")
    if table.num_rows == 0:
        raise DatasetError(f"{file_name}: the file has no rows")
    if table.num_columns > MAX_COLUMNS:
        raise DatasetError(f"{file_name}: {table.num_columns} columns is more than {MAX_COLUMNS}")
    return _normalize(table, file_name)


def _read_csv(data: bytes, file_name: str) -> pa.Table:
    import pyarrow.csv as csv

    try:
        table = csv.read_csv(io.BytesIO(data))
        _ = table.column_names  # names that are not UTF-8 fail only when read
    except (pa.ArrowException, ValueError) as error:
        raise DatasetError(f"{file_name}: not a valid CSV file: {error}") from error
    return table


def _read_parquet(data: bytes, file_name: str, max_bytes: int) -> pa.Table:
    import pyarrow.parquet as pq

    limit = max_bytes * MAX_EXPANSION
    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        schema = parquet.schema_arrow
        _ = schema.names  # names that are not UTF-8 fail only when read
        batches: list[pa.RecordBatch] = []
        decoded = 0
        # Batch by batch, so that a small file that decodes to far more than the limit stops early.
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            decoded += batch.nbytes
            if decoded > limit:
                raise DatasetError(
                    f"{file_name}: its {decoded} decoded bytes are over the limit of {limit} bytes"
                )
            batches.append(batch)
        return pa.Table.from_batches(batches, schema=schema)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise DatasetError(f"{file_name}: not a valid Parquet file: {error}") from error


def _normalize(table: pa.Table, file_name: str) -> pa.Table:
    names = table.column_names
    for name in names:
        if names.count(name) > 1:
            raise DatasetError(f"{file_name}: column {name!r} appears twice")
    front: dict[str, pa.ChunkedArray] = {}
    rest: dict[str, pa.ChunkedArray] = {}
    for name in names:
        column = table.column(name)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if name == "thing":
            front["thing"] = _thing_column(column, file_name)
        elif name == "timestamp":
            front["timestamp"] = _timestamp_column(column, file_name)
        else:
            rest[name] = _value_column(name, column, file_name)
    ordered = {key: front[key] for key in ("thing", "timestamp") if key in front} | rest
    return pa.table(ordered)


def _thing_column(column: pa.ChunkedArray, file_name: str) -> pa.ChunkedArray:
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind):
        return column.cast(pa.string())
    if pa.types.is_null(kind):
        return column.cast(pa.string())
    raise DatasetError(f"{file_name}: column 'thing' must hold text, not {kind}")


def _timestamp_column(column: pa.ChunkedArray, file_name: str) -> pa.ChunkedArray:
    kind = column.type
    if pa.types.is_timestamp(kind):
        # A timestamp without a zone is taken as UTC.
        return pc.cast(column.cast(pa.timestamp(kind.unit, tz="UTC")), TIMESTAMP_TYPE, safe=False)
    if pa.types.is_integer(kind):
        return column.cast(pa.int64()).cast(TIMESTAMP_TYPE)
    if pa.types.is_floating(kind):
        return pc.cast(pc.round(column), pa.int64()).cast(TIMESTAMP_TYPE)
    if pa.types.is_date(kind):
        return column.cast(pa.timestamp("ms")).cast(TIMESTAMP_TYPE)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _parse_iso(column, file_name)
    raise DatasetError(
        f"{file_name}: column 'timestamp' must be ISO 8601 text or epoch milliseconds, not {kind}"
    )


def _parse_iso(column: pa.ChunkedArray, file_name: str) -> pa.ChunkedArray:
    import pandas as pd

    texts = column.to_pandas()
    try:
        parsed = pd.to_datetime(texts, utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError) as error:
        # pandas appends advice on its format options, which does not apply to a user's file.
        first_line = (str(error).splitlines() or [type(error).__name__])[0].split(". You might")[0]
        raise DatasetError(
            f"{file_name}: column 'timestamp' holds text that is not an ISO 8601 time: {first_line}"
        ) from error
    return pa.chunked_array([pc.cast(pa.array(parsed), TIMESTAMP_TYPE, safe=False)])


def _value_column(name: str, column: pa.ChunkedArray, file_name: str) -> pa.ChunkedArray:
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return column
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return column.cast(pa.string())
    if pa.types.is_null(kind):
        # A column empty in every row; float keeps it usable as "all missing".
        return column.cast(pa.float64())
    raise DatasetError(
        f"{file_name}: column {name!r} has type {kind}; columns must hold numbers, booleans or text"
    )

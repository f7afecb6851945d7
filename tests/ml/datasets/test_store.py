"""Stored datasets: Parquet with the spec and source in its metadata, byte-for-byte stable."""

from __future__ import annotations

import hashlib
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from edgewise.ml.datasets import (
    DatasetSpec,
    LabelSpec,
    TelemetryRecord,
    WindowSpec,
    build_dataset,
    dataset_bytes,
    parse_field,
    read_dataset,
)
from edgewise.ml.errors import DatasetError

SPEC = DatasetSpec(
    fields=(parse_field("temp"),),
    resample_ms=1000,
    window=WindowSpec(size=3, step=1),
    label=LabelSpec(anomalous_ranges=((2000, 3000),)),
)
SOURCE = {"kind": "telemetry", "things": ["a", "b"], "fromMs": 0, "toMs": 10_000}


def built() -> pa.Table:
    records = [
        TelemetryRecord(thing, "telemetry", "t", second * 1000, json.dumps({"temp": second * 1.5}).encode())
        for thing in ("a", "b")
        for second in range(6)
    ]
    return build_dataset(records, SPEC)


def test_round_trip_keeps_table_spec_and_source() -> None:
    table = built()

    data = dataset_bytes(table, spec=SPEC, source=SOURCE)
    back, spec, source = read_dataset(data)

    assert back.equals(table)
    assert spec == SPEC
    assert source == SOURCE
    stored = pq.read_schema(io.BytesIO(data)).metadata
    assert json.loads(stored[b"edgewise.dataset"])["spec"]["resampleMs"] == 1000


def test_the_same_table_gives_the_same_bytes() -> None:
    first = dataset_bytes(built(), spec=SPEC, source=SOURCE)
    second = dataset_bytes(built(), spec=SPEC, source=dict(reversed(SOURCE.items())))
    back, spec, source = read_dataset(first)

    assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()
    assert dataset_bytes(back, spec=spec, source=source) == first


def test_an_uploaded_table_has_no_spec() -> None:
    table = pa.table({"x": [1.0, 2.0]}).replace_schema_metadata({"pandas": "{}"})

    back, spec, source = read_dataset(
        dataset_bytes(table, spec=None, source={"kind": "upload", "file": "x.csv"})
    )

    assert spec is None
    assert source == {"kind": "upload", "file": "x.csv"}
    assert back.schema.metadata is None


def test_plain_parquet_and_garbage() -> None:
    sink = io.BytesIO()
    pq.write_table(pa.table({"x": [1]}), sink)

    assert read_dataset(sink.getvalue())[1:] == (None, {})
    with pytest.raises(DatasetError, match="dataset: not a valid Parquet file"):
        read_dataset(b"not parquet")
    with pytest.raises(DatasetError, match="source: cannot be stored as JSON"):
        dataset_bytes(pa.table({"x": [1]}), spec=None, source={"bad": float("nan")})

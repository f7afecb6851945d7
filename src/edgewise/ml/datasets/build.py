"""Build a dataset table from telemetry records: extract the fields from each JSON payload, resample each
thing's series into fixed buckets, cut windows and compute their features, and add the label.

A payload that is not JSON, or lacks a field, gives missing values (NaN or null), never an error; a field found
in no message at all is an error, since it is almost always a wrong path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from edgewise.ml.errors import DatasetError
from edgewise.ml.features import window_features
from edgewise.ml.jsonpath import JsonPath

from .spec import DatasetSpec, FieldSpec, LabelSpec

if TYPE_CHECKING:
    import pandas as pd

#: Resampling fills every bucket between a thing's first and last message; this bounds the rows that makes.
MAX_RESAMPLED_ROWS: Final = 5_000_000
TIMESTAMP_TYPE: Final = pa.timestamp("ms", tz="UTC")
_NOT_JSON: Final = object()


@dataclass(frozen=True)
class TelemetryRecord:
    """One stored telemetry message: the thing that sent it, its stream and topic, when, and the payload."""

    thing: str
    stream: str
    topic: str
    timestamp_ms: int
    payload: bytes


@dataclass
class _Column:
    """The values of one extracted field, one per record (``None`` when missing); ``numeric`` is cached, so it is
    read only once every record is in."""

    spec: FieldSpec
    values: list[float | str | None]
    present: int = 0

    @cached_property
    def numeric(self) -> bool:
        return all(value is None or isinstance(value, float) for value in self.values)

    def floats(self) -> npt.NDArray[np.float64]:
        return np.array([math.nan if value is None else value for value in self.values], dtype=np.float64)

    def texts(self) -> list[str | None]:
        return [
            value if value is None or isinstance(value, str) else _number_text(value) for value in self.values
        ]


def build_dataset(records: Iterable[TelemetryRecord], spec: DatasetSpec) -> pa.Table:
    """The dataset table: ``thing``, ``timestamp``, one column per field (or the window features), ``label``.

    Rows are ordered by thing, then time. Raises ``DatasetError`` when there is no record, a field (or the label
    field) is in no message, a window covers a field that is not numeric, or no thing has enough samples for one
    window.
    """
    things: list[str] = []
    times: list[int] = []
    columns = [_Column(field_spec, []) for field_spec in spec.fields]
    label_field = spec.label.field if spec.label is not None else None
    label_column = _Column(label_field, []) if label_field is not None else None
    extracted = [*columns, *([label_column] if label_column is not None else [])]
    for record in records:
        things.append(record.thing)
        times.append(record.timestamp_ms)
        document = _parse_payload(record.payload)
        for column in extracted:
            value = None if document is _NOT_JSON else _scalar(column.spec.path, document)
            column.values.append(value)
            if value is not None:
                column.present += 1
    if not times:
        raise DatasetError("records: no telemetry message matched, so the dataset would have no rows")
    for column in columns:
        _check_present(column, len(times), "field")
    if label_column is not None:
        _check_present(label_column, len(times), "label field")
    thing_array = np.array(things, dtype=object)
    time_array = np.array(times, dtype=np.int64)
    if spec.resample_ms is None:
        return _message_table(thing_array, time_array, columns, label_column, spec)
    frame = _resample(thing_array, time_array, columns, label_column, spec.resample_ms)
    if spec.window is None:
        return _resampled_table(frame, columns, label_column, spec)
    return _windowed_table(frame, columns, label_column, spec)


def _message_table(
    things: npt.NDArray[np.object_],
    times: npt.NDArray[np.int64],
    columns: Sequence[_Column],
    label_column: _Column | None,
    spec: DatasetSpec,
) -> pa.Table:
    """One row per message, ordered by thing, then time (messages with the same time keep their order)."""
    order = np.lexsort((times, things.astype(str)))
    table_columns: dict[str, pa.Array] = {
        "thing": pa.array(things[order].tolist(), type=pa.string()),
        "timestamp": pa.array(times[order], type=pa.int64()).cast(TIMESTAMP_TYPE),
    }
    for column in columns:
        table_columns[column.spec.name] = _arrow(column, order)
    if label_column is not None:
        table_columns["label"] = _arrow(label_column, order)
    elif spec.label is not None:
        table_columns["label"] = pa.array(_in_ranges(times[order], 1, spec.label), type=pa.int64())
    return pa.table(table_columns)


def _parse_payload(payload: bytes) -> object:
    try:
        return json.loads(payload)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _scalar(path: JsonPath, document: object) -> float | str | None:
    """The field's value as a float (numbers and booleans) or a text; objects and lists as their JSON text."""
    value = path.extract(document)
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, float | str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _check_present(column: _Column, messages: int, what: str) -> None:
    if column.present == 0:
        raise DatasetError(
            f"{what} {column.spec.name!r} (path {column.spec.path.text}) is in none of the {messages} messages"
        )


def _arrow(column: _Column, order: npt.NDArray[np.intp]) -> pa.Array:
    if column.numeric:
        return pa.array(column.floats()[order], type=pa.float64())
    texts = column.texts()
    return pa.array([texts[index] for index in order], type=pa.string())


def _in_ranges(starts: npt.NDArray[np.int64], width: int, label: LabelSpec) -> npt.NDArray[np.int64]:
    """1 where ``[start, start + width)`` overlaps an anomalous range, else 0."""
    marked = np.zeros(starts.shape, dtype=bool)
    for range_start, range_end in label.anomalous_ranges:
        marked |= (starts < range_end) & (starts + width > range_start)
    return marked.astype(np.int64)


def _resample(
    things: npt.NDArray[np.object_],
    times: npt.NDArray[np.int64],
    columns: Sequence[_Column],
    label_column: _Column | None,
    resample_ms: int,
) -> pd.DataFrame:
    """One row per thing and bucket, from each thing's first bucket to its last: numeric fields the mean of the
    bucket's values, text fields (and a field label) the bucket's last value, NaN/None for an empty bucket."""
    import pandas as pd

    data: dict[str, object] = {"thing": things.astype(str), "bucket": (times // resample_ms) * resample_ms}
    aggregations: dict[str, str] = {}
    for column in columns:
        data[column.spec.name] = column.floats() if column.numeric else column.texts()
        aggregations[column.spec.name] = "mean" if column.numeric else "last"
    if label_column is not None:
        data["label"] = label_column.floats() if label_column.numeric else label_column.texts()
        aggregations["label"] = "last"
    frame = pd.DataFrame(data).sort_values(["thing", "bucket"], kind="stable")
    grouped = frame.groupby(["thing", "bucket"], sort=True).agg(aggregations)
    spans = frame.groupby("thing", sort=True)["bucket"].agg(["min", "max"])
    total = int(((spans["max"] - spans["min"]) // resample_ms + 1).sum())
    if total > MAX_RESAMPLED_ROWS:
        raise DatasetError(
            f"resampleMs: {resample_ms} ms buckets from each thing's first to last message make {total} rows, "
            f"more than {MAX_RESAMPLED_ROWS}; use larger buckets or a shorter time range"
        )
    full = pd.MultiIndex.from_tuples(
        [
            (thing, int(bucket))
            for thing, low, high in zip(spans.index, spans["min"], spans["max"], strict=True)
            for bucket in range(int(low), int(high) + 1, resample_ms)
        ],
        names=["thing", "bucket"],
    )
    return grouped.reindex(full).reset_index()


def _frame_column(frame: pd.DataFrame, name: str, numeric: bool) -> pa.Array:
    if numeric:
        return pa.array(frame[name].to_numpy(dtype=np.float64), type=pa.float64())
    return pa.array([value if isinstance(value, str) else None for value in frame[name]], type=pa.string())


def _resampled_table(
    frame: pd.DataFrame, columns: Sequence[_Column], label_column: _Column | None, spec: DatasetSpec
) -> pa.Table:
    assert spec.resample_ms is not None
    buckets = frame["bucket"].to_numpy(dtype=np.int64)
    table_columns: dict[str, pa.Array] = {
        "thing": pa.array(frame["thing"].astype(str).tolist(), type=pa.string()),
        "timestamp": pa.array(buckets, type=pa.int64()).cast(TIMESTAMP_TYPE),
    }
    for column in columns:
        table_columns[column.spec.name] = _frame_column(frame, column.spec.name, column.numeric)
    if label_column is not None:
        table_columns["label"] = _frame_column(frame, "label", label_column.numeric)
    elif spec.label is not None:
        table_columns["label"] = pa.array(_in_ranges(buckets, spec.resample_ms, spec.label), type=pa.int64())
    return pa.table(table_columns)


def _windowed_table(
    frame: pd.DataFrame, columns: Sequence[_Column], label_column: _Column | None, spec: DatasetSpec
) -> pa.Table:
    """One row per window of each thing's resampled series, timestamped by its last sample. A window in which
    some field has no value at all is left out (its features would be undefined)."""
    window = spec.window
    assert window is not None
    assert spec.resample_ms is not None
    for column in columns:
        if not column.numeric:
            example = next(value for value in column.values if isinstance(value, str))
            raise DatasetError(
                f"window: field {column.spec.name!r} (path {column.spec.path.text}) is not numeric "
                f"(it holds text such as {example[:40]!r}); windows need numbers"
            )
    names = [column.spec.name for column in columns]
    interval_s = spec.resample_ms / 1000
    out_things: list[str] = []
    out_times: list[int] = []
    rows: list[npt.NDArray[np.float64]] = []
    label_rows: list[object] = []
    longest = 0
    for thing, series in frame.groupby("thing", sort=True):
        values = series[names].to_numpy(dtype=np.float64)
        buckets = series["bucket"].to_numpy(dtype=np.int64)
        labels = _series_labels(series, buckets, label_column, spec)
        longest = max(longest, len(buckets))
        for start in range(0, len(buckets) - window.size + 1, window.step):
            samples = values[start : start + window.size]
            if np.isnan(samples).all(axis=0).any():
                continue
            end = start + window.size - 1
            out_things.append(str(thing))
            out_times.append(int(buckets[end]))
            rows.append(window_features(samples, window, interval_s))
            if labels is not None:
                label_rows.append(
                    labels[end] if label_column is not None else int(labels[start : end + 1].max())
                )
    if not rows:
        raise DatasetError(
            f"window: no thing has a window of {window.size} samples with a value for every field "
            f"(the longest resampled series has {longest} samples)"
        )
    features = np.vstack(rows)
    table_columns: dict[str, pa.Array] = {
        "thing": pa.array(out_things, type=pa.string()),
        "timestamp": pa.array(np.array(out_times, dtype=np.int64), type=pa.int64()).cast(TIMESTAMP_TYPE),
    }
    for index, name in enumerate(window.feature_names(names)):
        table_columns[name] = pa.array(features[:, index], type=pa.float64())
    if spec.label is not None:
        if label_column is None:
            table_columns["label"] = pa.array(label_rows, type=pa.int64())
        elif label_column.numeric:
            table_columns["label"] = pa.array(np.array(label_rows, dtype=np.float64), type=pa.float64())
        else:
            table_columns["label"] = pa.array(
                [value if isinstance(value, str) else None for value in label_rows], type=pa.string()
            )
    return pa.table(table_columns)


def _series_labels(
    series: pd.DataFrame, buckets: npt.NDArray[np.int64], label_column: _Column | None, spec: DatasetSpec
) -> npt.NDArray[np.generic] | None:
    if spec.label is None:
        return None
    if label_column is not None:
        if label_column.numeric:
            floats: npt.NDArray[np.float64] = series["label"].to_numpy(dtype=np.float64)
            return floats
        objects: npt.NDArray[np.object_] = series["label"].to_numpy(dtype=object)
        return objects
    assert spec.resample_ms is not None
    return _in_ranges(buckets, spec.resample_ms, spec.label)

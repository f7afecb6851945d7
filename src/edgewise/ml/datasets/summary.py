"""A short description of a dataset for the API and the CLI: its size, each column's type, missing values and
range, its time span and its things."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

#: Things listed by name; ``thing_count`` counts them all.
MAX_THINGS_LISTED: Final = 1000


@dataclass(frozen=True)
class ColumnSummary:
    """One column: ``missing`` counts nulls and NaNs; ``min``/``max``/``mean`` for numbers and booleans only."""

    name: str
    type: str
    missing: int
    min: float | None
    max: float | None
    mean: float | None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "type": self.type,
            "missing": self.missing,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
        }


@dataclass(frozen=True)
class DatasetSummary:
    """The whole table; timestamps are epoch milliseconds, ``None`` without a ``timestamp`` column."""

    rows: int
    columns: tuple[ColumnSummary, ...]
    first_timestamp_ms: int | None
    last_timestamp_ms: int | None
    things: tuple[str, ...]
    thing_count: int

    def to_json(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "columns": [column.to_json() for column in self.columns],
            "firstTimestamp": self.first_timestamp_ms,
            "lastTimestamp": self.last_timestamp_ms,
            "things": list(self.things),
            "thingCount": self.thing_count,
        }


def summarize(table: pa.Table) -> DatasetSummary:
    columns = tuple(_column(name, table.column(name)) for name in table.column_names)
    first = last = None
    if "timestamp" in table.column_names and pa.types.is_timestamp(table.column("timestamp").type):
        times = table.column("timestamp").cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
        bounds = pc.min_max(times)
        first = _integer(bounds["min"].as_py())
        last = _integer(bounds["max"].as_py())
    things: list[str] = []
    thing_count = 0
    if "thing" in table.column_names:
        distinct = pc.unique(table.column("thing").cast(pa.string())).drop_null()
        thing_count = len(distinct)
        things = sorted(str(name) for name in distinct.to_pylist())[:MAX_THINGS_LISTED]
    return DatasetSummary(
        rows=table.num_rows,
        columns=columns,
        first_timestamp_ms=first,
        last_timestamp_ms=last,
        things=tuple(things),
        thing_count=thing_count,
    )


def _column(name: str, column: pa.ChunkedArray) -> ColumnSummary:
    kind = column.type
    missing = column.null_count
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        return ColumnSummary(name, str(kind), missing, None, None, None)
    values = column.cast(pa.float64())
    nan = pc.is_nan(values)
    missing += int(pc.sum(nan).as_py() or 0)
    present = pc.filter(values, pc.invert(pc.fill_null(nan, False)))
    bounds = pc.min_max(present)
    return ColumnSummary(
        name,
        str(kind),
        missing,
        _finite(bounds["min"].as_py()),
        _finite(bounds["max"].as_py()),
        _finite(pc.mean(present).as_py()),
    )


def _finite(value: object) -> float | None:
    """JSON has no NaN or infinity: those become ``None``."""
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) else None

"""Dataset summaries: counts, ranges, time span, things, and their camelCase JSON."""

from __future__ import annotations

import json

import pyarrow as pa

from edgewise.ml.datasets import ColumnSummary, summarize


def test_summary_of_a_table() -> None:
    table = pa.table(
        {
            "thing": pa.array(["b", "a", "b", None]),
            "timestamp": pa.array([3000, 1000, 2000, None], type=pa.int64()).cast(
                pa.timestamp("ms", tz="UTC")
            ),
            "temp": pa.array([1.0, float("nan"), 3.0, None]),
            "count": pa.array([1, 2, 3, 4]),
            "mode": pa.array(["x", None, "y", "z"]),
            "ok": pa.array([True, False, True, True]),
        }
    )

    summary = summarize(table)

    assert summary.rows == 4
    assert (summary.first_timestamp_ms, summary.last_timestamp_ms) == (1000, 3000)
    assert summary.things == ("a", "b")
    assert summary.thing_count == 2
    columns = {column.name: column for column in summary.columns}
    assert columns["temp"] == ColumnSummary("temp", "double", 2, 1.0, 3.0, 2.0)
    assert columns["count"] == ColumnSummary("count", "int64", 0, 1.0, 4.0, 2.5)
    assert columns["mode"] == ColumnSummary("mode", "string", 1, None, None, None)
    assert columns["ok"].mean == 0.75
    data = summary.to_json()
    json.dumps(data, allow_nan=False)
    assert data["firstTimestamp"] == 1000
    assert data["lastTimestamp"] == 3000
    assert data["things"] == ["a", "b"]
    assert data["thingCount"] == 2
    assert json.loads(json.dumps(data))["columns"][2] == {
        "name": "temp",
        "type": "double",
        "missing": 2,
        "min": 1.0,
        "max": 3.0,
        "mean": 2.0,
    }


def test_summary_without_time_or_things_and_all_missing_column() -> None:
    summary = summarize(pa.table({"x": pa.array([float("nan"), None])}))

    assert summary.to_json() == {
        "rows": 2,
        "columns": [{"name": "x", "type": "double", "missing": 2, "min": None, "max": None, "mean": None}],
        "firstTimestamp": None,
        "lastTimestamp": None,
        "things": [],
        "thingCount": 0,
    }

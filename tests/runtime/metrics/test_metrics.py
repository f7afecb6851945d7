"""Component metrics: validation, summaries, the series limit, the file and its debounced writer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.support.waiting import eventually

import edgewise.runtime.metrics as metrics_package
from edgewise.runtime.metrics import (
    InvalidMetricError,
    Metric,
    MetricError,
    MetricLimitError,
    MetricRegistry,
    MetricsRecorder,
    MetricUnit,
    load_metrics,
    save_metrics,
)

COUNT = MetricUnit.COUNT


def test_exports_match_all() -> None:
    exported = {name for name in dir(metrics_package) if not name.startswith("_")}
    assert exported - {"annotations", "errors"} == set(metrics_package.__all__)


def test_a_metric_is_read_from_its_ipc_shape() -> None:
    assert Metric.from_json({"name": "rps", "unit": "COUNT_PER_SECOND", "value": 3}) == Metric(
        "rps", MetricUnit.COUNT_PER_SECOND, 3.0
    )


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"unit": "COUNT", "value": 1}, "name"),
        ({"name": "é" * 17, "unit": "COUNT", "value": 1}, "name"),
        ({"name": "n", "unit": "count", "value": 1}, "unit"),
        ({"name": "n", "unit": {}, "value": 1}, "unit"),
        ({"name": "n", "unit": "COUNT", "value": -0.5}, "value"),
        ({"name": "n", "unit": "COUNT", "value": float("inf")}, "value"),
        ({"name": "n", "unit": "COUNT"}, "value"),
    ],
)
def test_a_bad_metric_names_its_field(item: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidMetricError) as caught:
        Metric.from_json(item)

    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


def test_a_name_of_exactly_32_bytes_is_accepted() -> None:
    assert Metric.from_json({"name": "x" * 32, "unit": "BYTES", "value": 0}).name == "x" * 32


def test_series_are_kept_per_component_name_and_unit() -> None:
    registry = MetricRegistry()

    registry.record("a", [Metric("n", COUNT, 2), Metric("n", MetricUnit.BYTES, 7)], now_ms=10)
    registry.record("a", [Metric("n", COUNT, 4)], now_ms=20)
    registry.record("b", [Metric("n", COUNT, 1)], now_ms=30)

    summaries = registry.summaries()
    assert [(s.component, s.name, s.unit, s.count) for s in summaries] == [
        ("a", "n", MetricUnit.BYTES, 1),
        ("a", "n", COUNT, 2),
        ("b", "n", COUNT, 1),
    ]
    counted = summaries[1]
    assert (counted.latest, counted.total, counted.minimum, counted.maximum, counted.mean) == (4, 6, 2, 4, 3)
    assert counted.updated_ms == 20
    assert registry.statistics().measurements == 4


def test_a_component_cannot_create_more_series_than_the_limit() -> None:
    registry = MetricRegistry(max_series_per_component=2)
    registry.record("a", [Metric("one", COUNT, 1)], now_ms=1)

    with pytest.raises(MetricLimitError) as caught:
        registry.record(
            "a", [Metric("one", COUNT, 5), Metric("two", COUNT, 1), Metric("three", COUNT, 1)], now_ms=2
        )

    assert "a" in str(caught.value)
    assert registry.summaries()[0].count == 1
    registry.record("a", [Metric("one", COUNT, 5), Metric("two", COUNT, 1)], now_ms=3)
    registry.record("b", [Metric("one", COUNT, 1), Metric("two", COUNT, 1)], now_ms=3)
    assert registry.statistics().series == 4


def test_summaries_survive_a_round_trip_through_the_file(tmp_path: Path) -> None:
    registry = MetricRegistry()
    registry.record("a", [Metric("n", COUNT, 2.5), Metric("n", COUNT, 1)], now_ms=99)
    path = tmp_path / "metrics" / "current.json"

    save_metrics(path, registry.summaries())

    assert load_metrics(path) == registry.summaries()
    assert not list(path.parent.glob(".*.tmp"))


def test_a_missing_file_holds_no_metrics(tmp_path: Path) -> None:
    assert load_metrics(tmp_path / "absent.json") == []


@pytest.mark.parametrize(
    "text",
    ["not json", "[]", '{"metrics": {}}', '{"metrics": [1]}', '{"metrics": [{"component": "a"}]}'],
)
def test_a_damaged_file_is_a_metric_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "current.json"
    path.write_text(text)

    with pytest.raises(MetricError, match=r"current\.json|component"):
        load_metrics(path)


async def test_the_recorder_writes_a_burst_of_changes_once_after_its_delay(tmp_path: Path) -> None:
    path = tmp_path / "current.json"
    recorder = MetricsRecorder(path, write_delay=0.2)
    await recorder.start()
    assert json.loads(path.read_text()) == {"metrics": []}
    written_before = path.stat().st_mtime_ns

    for value in range(50):
        recorder.record("a", [Metric("n", COUNT, value)])

    assert path.stat().st_mtime_ns == written_before
    await eventually(lambda: bool(load_metrics(path)), timeout=10, what="the metrics to be written")
    assert load_metrics(path)[0].count == 50
    await recorder.close()


async def test_closing_the_recorder_writes_what_is_pending(tmp_path: Path) -> None:
    path = tmp_path / "current.json"
    recorder = MetricsRecorder(path, write_delay=60)
    await recorder.start()
    recorder.record("a", [Metric("n", COUNT, 1)])

    await recorder.close()

    assert [summary.count for summary in load_metrics(path)] == [1]

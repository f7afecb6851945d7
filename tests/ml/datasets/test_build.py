"""Building dataset tables from telemetry records: extraction, resampling per thing, windows and labels."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.ml.datasets import (
    DatasetSpec,
    LabelSpec,
    TelemetryRecord,
    WindowSpec,
    build_dataset,
    parse_field,
    summarize,
)
from edgewise.ml.errors import DatasetError
from edgewise.ml.features import window_features


def record(thing: str, timestamp_ms: int, payload: object) -> TelemetryRecord:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return TelemetryRecord(
        thing=thing,
        stream="telemetry",
        topic=f"sensors/{thing}/reading",
        timestamp_ms=timestamp_ms,
        payload=body,
    )


def ms(table: pa.Table) -> list[int]:
    return [int(value.timestamp() * 1000) for value in table.column("timestamp").to_pylist()]


def test_one_row_per_message_ordered_by_thing_and_time() -> None:
    records = [
        record("pump-2", 2000, {"sensors": {"temp": 30}, "state": "ok", "on": True}),
        record("pump-1", 1000, {"sensors": {"temp": 20.5}, "state": "ok", "on": False}),
        record("pump-1", 500, b"\xff not json"),
        record("pump-1", 1500, {"sensors": {}, "state": 3, "on": True}),
    ]
    spec = DatasetSpec(
        fields=(parse_field("temp=sensors.temp"), parse_field("state"), parse_field("on")),
        label=LabelSpec(field=parse_field("on")),
    )

    table = build_dataset(records, spec)

    assert table.schema.names == ["thing", "timestamp", "temp", "state", "on", "label"]
    assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("temp").type == pa.float64()
    assert table.schema.field("state").type == pa.string()
    assert table.column("thing").to_pylist() == ["pump-1", "pump-1", "pump-1", "pump-2"]
    assert ms(table) == [500, 1000, 1500, 2000]
    assert table.column("timestamp")[0].as_py() == datetime(1970, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC)
    temps = table.column("temp").to_pylist()
    assert (temps[1], temps[3]) == (20.5, 30.0)
    assert math.isnan(temps[0])  # not JSON: missing
    assert math.isnan(temps[2])  # no such field in the message: missing
    # A text column keeps numbers as their text; the non-JSON payload is missing everywhere.
    assert table.column("state").to_pylist() == [None, "ok", "3", "ok"]
    assert table.column("label").to_pylist()[1:] == [0.0, 1.0, 1.0]
    # The summary counts the missing values.
    columns = {column.name: column for column in summarize(table).columns}
    assert columns["temp"].missing == 2
    assert columns["state"].missing == 1


def series(thing: str, count: int, offset: float, every_ms: int = 500) -> list[TelemetryRecord]:
    """Two messages per second: temp rises 1 per message from ``offset``; ``mode`` alternates every second."""
    return [
        record(
            thing,
            index * every_ms,
            {"temp": offset + index, "vib": [index % 2], "mode": "run" if index // 2 % 2 else "idle"},
        )
        for index in range(count)
    ]


def test_resampling_averages_each_thing_into_buckets_and_keeps_gaps() -> None:
    records = [
        *series("a", 8, 0.0),
        record("b", 0, {"temp": 1.0, "mode": "x"}),
        record("b", 3200, {"temp": 3.0, "mode": "y"}),
    ]
    spec = DatasetSpec(
        fields=(parse_field("temp"), parse_field("mode")),
        resample_ms=1000,
        label=LabelSpec(anomalous_ranges=((1500, 2100),)),
    )

    table = build_dataset(records, spec)

    assert table.column("thing").to_pylist() == ["a"] * 4 + ["b"] * 4
    assert ms(table) == [0, 1000, 2000, 3000, 0, 1000, 2000, 3000]
    temps = table.column("temp").to_pylist()
    assert temps[:4] == [0.5, 2.5, 4.5, 6.5]  # mean of the two messages in each second
    assert (temps[4], temps[7]) == (1.0, 3.0)
    assert np.isnan(temps[5:7]).all()  # b's empty seconds stay empty: no forward fill
    # A text field takes the bucket's last value; an empty bucket has none.
    assert table.column("mode").to_pylist() == ["idle", "run", "idle", "run", "x", None, None, "y"]
    # A bucket is anomalous when it overlaps a range: [1000, 2000) and [2000, 3000) both do.
    assert table.column("label").to_pylist() == [0, 1, 1, 0, 0, 1, 1, 0]


def test_windows_compute_features_per_thing_with_labels_from_ranges() -> None:
    records = series("a", 20, 0.0) + series("b", 12, 100.0)
    window = WindowSpec(size=4, step=2, features=("mean", "std", "min", "max", "slope", "fft"), fft_bands=2)
    spec = DatasetSpec(
        fields=(parse_field("temp"), parse_field("vib=vib[0]")),
        resample_ms=1000,
        window=window,
        label=LabelSpec(anomalous_ranges=((4000, 4001),)),
    )

    table = build_dataset(records, spec)

    names = window.feature_names(["temp", "vib"])
    assert table.schema.names == ["thing", "timestamp", *names, "label"]
    # a: 10 resampled samples -> windows start at 0, 2, 4, 6; b: 6 samples -> starts 0, 2.
    assert table.column("thing").to_pylist() == ["a"] * 4 + ["b"] * 2
    assert ms(table) == [3000, 5000, 7000, 9000, 3000, 5000]
    assert table.column("label").to_pylist() == [0, 1, 1, 0, 0, 1]
    # The first window of a: temp means 0.5, 2.5, 4.5, 6.5; vib means 0.5 throughout.
    expected = window_features(np.array([[0.5, 0.5], [2.5, 0.5], [4.5, 0.5], [6.5, 0.5]]), window, 1.0)
    first = [table.column(name)[0].as_py() for name in names]
    assert first == pytest.approx(expected.tolist())
    assert table.column("temp__slope").to_pylist() == pytest.approx([2.0] * 6)
    assert table.column("temp__mean").to_pylist()[4] == pytest.approx(103.5)


def test_window_label_from_a_field_is_its_value_at_the_window_end() -> None:
    records = [
        record("a", second * 1000, {"temp": float(second), "state": second // 3}) for second in range(6)
    ]
    spec = DatasetSpec(
        fields=(parse_field("temp"),),
        resample_ms=1000,
        window=WindowSpec(size=3, step=1, features=("mean",)),
        label=LabelSpec(field=parse_field("state")),
    )

    table = build_dataset(records, spec)

    assert table.column("temp__mean").to_pylist() == [1.0, 2.0, 3.0, 4.0]
    assert table.column("label").to_pylist() == [0.0, 1.0, 1.0, 1.0]


def test_windows_where_a_field_has_no_value_are_left_out() -> None:
    records = [record("a", second * 1000, {"temp": 1.0}) for second in (0, 1, 2, 6, 7, 8)]
    spec = DatasetSpec(
        fields=(parse_field("temp"),), resample_ms=1000, window=WindowSpec(size=3, step=3, features=("mean",))
    )

    table = build_dataset(records, spec)

    # Windows [0..2], [3..5] (all missing, left out), [6..8].
    assert ms(table) == [2000, 8000]


def test_errors_name_the_problem() -> None:
    temp = parse_field("temp")
    with pytest.raises(DatasetError, match="no telemetry message matched"):
        build_dataset([], DatasetSpec(fields=(temp,)))
    with pytest.raises(
        DatasetError, match=r"field 'missing' \(path a.missing\) is in none of the 2 messages"
    ):
        build_dataset(
            [record("a", 0, {"temp": 1}), record("a", 1, b"oops")],
            DatasetSpec(fields=(temp, parse_field("missing=a.missing"))),
        )
    with pytest.raises(DatasetError, match=r"label field 'state' .* is in none of the 1 messages"):
        build_dataset(
            [record("a", 0, {"temp": 1})], DatasetSpec(fields=(temp,), label=LabelSpec(parse_field("state")))
        )
    with pytest.raises(
        DatasetError,
        match=r"window: field 'mode' \(path mode\) is not numeric \(it holds text such as 'idle'\)",
    ):
        build_dataset(
            series("a", 10, 0.0),
            DatasetSpec(
                fields=(temp, parse_field("mode")), resample_ms=1000, window=WindowSpec(size=2, step=1)
            ),
        )
    with pytest.raises(
        DatasetError, match=r"window: no thing has a window of 8 samples .* longest resampled series has 5"
    ):
        build_dataset(
            series("a", 10, 0.0),
            DatasetSpec(fields=(temp,), resample_ms=1000, window=WindowSpec(size=8, step=1)),
        )
    with pytest.raises(DatasetError, match=r"resampleMs: 1 ms buckets .* more than 5000000"):
        build_dataset(
            [record("a", 0, {"temp": 1}), record("a", 10**7, {"temp": 2})],
            DatasetSpec(fields=(temp,), resample_ms=1),
        )


def test_only_non_json_payloads_means_the_field_is_in_none() -> None:
    with pytest.raises(DatasetError, match="is in none of the 2 messages"):
        build_dataset(
            [record("a", 0, b"{"), record("a", 1, b"[" * 100_000)], DatasetSpec(fields=(parse_field("temp"),))
        )


PAYLOADS = st.binary(max_size=40) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["temp", "x"]), inner, max_size=2)
    ),
    max_leaves=8,
).map(lambda document: json.dumps(document).encode())


@settings(max_examples=60, deadline=None)
@given(st.lists(PAYLOADS, min_size=1, max_size=6))
def test_any_payloads_give_a_table_or_a_dataset_error(payloads: list[bytes]) -> None:
    records = [record("a", index * 1000, payload) for index, payload in enumerate(payloads)]

    try:
        table = build_dataset(records, DatasetSpec(fields=(parse_field("temp"),), resample_ms=1000))
    except DatasetError as error:
        message = str(error)
    else:
        message = ""
        assert table.num_rows == len(payloads)
    assert message in ("", f"field 'temp' (path temp) is in none of the {len(payloads)} messages")

"""Users' own dataset files: CSV and Parquet, the timestamp and thing columns, and what is refused."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.ml.datasets import read_table_file
from edgewise.ml.errors import DatasetError

UTC_MS = pa.timestamp("ms", tz="UTC")


def test_csv_with_iso_timestamps_in_any_zone() -> None:
    data = b"temp,timestamp,thing,mode\n1.5,2024-01-01T00:00:00Z,pump-1,run\n,2024-01-01T02:00:01.250+02:00,7,idle\n"

    table = read_table_file(data, file_name="readings.csv")

    assert table.schema.names == ["thing", "timestamp", "temp", "mode"]
    assert table.schema.field("timestamp").type == UTC_MS
    assert table.column("timestamp").to_pylist() == [
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2024, 1, 1, 0, 0, 1, 250_000, tzinfo=UTC),
    ]
    assert table.column("thing").to_pylist() == ["pump-1", "7"]
    assert table.column("temp").to_pylist() == [1.5, None]
    assert table.column("mode").to_pylist() == ["run", "idle"]


def test_csv_with_epoch_milliseconds_and_naive_text_taken_as_utc() -> None:
    epoch = read_table_file(b"timestamp,x\n1700000000123,1\n1700000000124,2\n", file_name="a.CSV")
    naive = read_table_file(b"x,timestamp\n1,2024-03-01 12:00:00\n2,\n", file_name="b.csv")

    assert epoch.column("timestamp").cast(pa.int64()).to_pylist() == [1700000000123, 1700000000124]
    assert epoch.column("x").type == pa.int64()
    assert naive.column("timestamp").to_pylist() == [datetime(2024, 3, 1, 12, tzinfo=UTC), None]


def test_parquet_file() -> None:
    source = pa.table(
        {
            "value": pa.array([1.0, 2.0]),
            "ok": pa.array([True, False]),
            "timestamp": pa.array([1_000_000, 2_000_000], type=pa.timestamp("us")),
            "thing": pa.array(["a", "b"]).dictionary_encode(),
        }
    )
    sink = io.BytesIO()
    pq.write_table(source, sink)

    table = read_table_file(sink.getvalue(), file_name="data.parquet")

    assert table.schema.names == ["thing", "timestamp", "value", "ok"]
    assert table.column("thing").type == pa.string()
    assert table.column("timestamp").cast(pa.int64()).to_pylist() == [1000, 2000]
    assert table.column("ok").to_pylist() == [True, False]


@pytest.mark.parametrize(
    ("data", "file_name", "problem"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00", "image.csv", "image.csv: not a valid CSV file"),
        (b"a,b\n\xff\xfe,1\n", "latin.csv", "latin.csv: column 'a' has type binary"),
        (b"a,b\n1,2,3\n", "ragged.csv", "ragged.csv: not a valid CSV file"),
        (b"PAR1 garbage", "junk.parquet", "junk.parquet: not a valid Parquet file"),
        (b"a,b\n", "empty.csv", "empty.csv: the file has no rows"),
        (b"a\n1\n", "data.xlsx", "data.xlsx: the file name must end in .csv or .parquet"),
        (
            b"timestamp,a\nyesterday,1\n",
            "t.csv",
            "t.csv: column 'timestamp' holds text that is not an ISO 8601 time",
        ),
        (b"a,a\n1,2\n", "twice.csv", "twice.csv: column 'a' appears twice"),
    ],
)
def test_bad_files_are_refused_naming_the_file(data: bytes, file_name: str, problem: str) -> None:
    with pytest.raises(DatasetError) as caught:
        read_table_file(data, file_name=file_name)

    assert problem in str(caught.value)


def test_a_column_of_another_type_is_refused() -> None:
    sink = io.BytesIO()
    pq.write_table(pa.table({"tags": pa.array([[1, 2], [3]])}), sink)

    with pytest.raises(DatasetError, match=r"nested\.parquet: column 'tags' has type list<element: int64>"):
        read_table_file(sink.getvalue(), file_name="nested.parquet")


def test_files_over_the_limit_are_refused_before_parsing() -> None:
    with pytest.raises(DatasetError, match=r"big\.csv: 12 bytes is over the limit of 10 bytes"):
        read_table_file(b"a\n1\n2\n3\n4\n5\n", file_name="big.csv", max_bytes=10)


def test_parquet_that_decodes_far_beyond_the_limit_is_refused() -> None:
    sink = io.BytesIO()
    pq.write_table(pa.table({"zeros": pa.array([0.0] * 100_000)}), sink, compression="zstd")
    data = sink.getvalue()  # about 1 KB: the zeros compress away, but decode to 800 KB

    with pytest.raises(
        DatasetError, match=r"zeros\.parquet: its \d+ decoded bytes are over the limit of 80000 bytes"
    ):
        read_table_file(data, file_name="zeros.parquet", max_bytes=10_000)
    assert read_table_file(data, file_name="zeros.parquet", max_bytes=200_000).num_rows == 100_000


def read_or_error(data: bytes, file_name: str) -> pa.Table | DatasetError:
    try:
        return read_table_file(data, file_name=file_name)
    except DatasetError as error:
        return error


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200) | st.text(alphabet='ab,;"\n\r1.-T:Z', max_size=80).map(str.encode))
def test_any_csv_bytes_give_a_table_or_a_dataset_error(data: bytes) -> None:
    result = read_or_error(data, "fuzz.csv")

    if isinstance(result, DatasetError):
        assert str(result).startswith("fuzz.csv: ")
    else:
        assert result.num_rows > 0


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=200).map(lambda tail: b"PAR1" + tail + b"PAR1"))
def test_any_parquet_bytes_give_a_table_or_a_dataset_error(data: bytes) -> None:
    result = read_or_error(data, "fuzz.parquet")

    if isinstance(result, DatasetError):
        assert str(result).startswith("fuzz.parquet: ")
    else:
        assert result.num_rows > 0

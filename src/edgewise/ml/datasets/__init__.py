"""Datasets: telemetry (or a user's CSV/Parquet file) made into a table, stored as Parquet, and summarized."""

from edgewise.ml.features import WindowSpec

from .build import TelemetryRecord, build_dataset
from .files import read_table_file
from .spec import DatasetSpec, FieldSpec, LabelSpec, parse_field
from .store import dataset_bytes, read_dataset
from .summary import ColumnSummary, DatasetSummary, summarize

__all__ = [
    "ColumnSummary",
    "DatasetSpec",
    "DatasetSummary",
    "FieldSpec",
    "LabelSpec",
    "TelemetryRecord",
    "WindowSpec",
    "build_dataset",
    "dataset_bytes",
    "parse_field",
    "read_dataset",
    "read_table_file",
    "summarize",
]

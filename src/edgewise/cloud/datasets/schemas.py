"""API shapes of datasets (camelCase on the wire).

A dataset is created from telemetry with ``POST /datasets``: a ``selection`` of stored messages (things, streams,
device topic filters, a time range), the payload ``fields`` as ``"name=path"`` texts, an optional ``resample``
duration (``1s``), ``window`` and ``label``. Times are milliseconds since the epoch or ISO 8601 texts, as in the
telemetry API. Request shapes refuse unknown fields; what only the ML library can check (paths, window sizes,
features) is refused by it with a 422 naming the field.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from edgewise.cloud.telemetry.query import DURATION_PATTERN, MAX_TIME_TEXT
from edgewise.cloud.telemetry.records import STREAM_MAX_LENGTH, TOPIC_MAX_LENGTH
from edgewise.ml.names import ML_NAME_PATTERN
from edgewise.names import THING_NAME_MAX_LENGTH

MAX_SELECTED: Final = 100
MAX_FIELDS: Final = 64
MAX_FIELD_TEXT: Final = 400
MAX_FEATURES: Final = 16
MAX_RANGES: Final = 10_000

DatasetName = Annotated[str, Field(pattern=ML_NAME_PATTERN, min_length=1, max_length=64)]
#: Milliseconds since the epoch, or an ISO 8601 text.
Instant = int | Annotated[str, Field(min_length=1, max_length=MAX_TIME_TEXT)]


class _Shape(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class _Request(_Shape):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TelemetrySelection(_Request):
    """Which stored messages a dataset reads: those matching every list given (any of its entries), within
    ``since <= timestamp < until``."""

    things: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=THING_NAME_MAX_LENGTH)]],
        Field(max_length=MAX_SELECTED),
    ] = []
    streams: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=STREAM_MAX_LENGTH)]],
        Field(max_length=MAX_SELECTED),
    ] = []
    topics: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=TOPIC_MAX_LENGTH)]],
        Field(max_length=MAX_SELECTED, description="MQTT topic filters (+ and # allowed) of device topics"),
    ] = []
    since: Instant | None = None
    until: Instant | None = None


class WindowRequest(_Request):
    """Sliding windows over the resampled series of each thing: ``size`` samples every ``step`` samples."""

    size: int = Field(ge=2, le=10_000)
    step: int = Field(ge=1, le=10_000)
    features: Annotated[list[str], Field(min_length=1, max_length=MAX_FEATURES)] = [
        "mean",
        "std",
        "min",
        "max",
        "slope",
    ]
    fft_bands: int = Field(default=4, ge=1, le=64)


class LabelRequest(_Request):
    """The ``label`` column: a payload field (``"name=path"``), or 1 inside ``anomalousRanges`` and 0 elsewhere."""

    field: Annotated[str, Field(min_length=1, max_length=MAX_FIELD_TEXT)] | None = None
    anomalous_ranges: Annotated[list[tuple[Instant, Instant]], Field(max_length=MAX_RANGES)] = []


class DatasetCreate(_Request):
    """``POST /datasets``: build a dataset from stored telemetry."""

    name: DatasetName
    selection: TelemetrySelection = TelemetrySelection()
    fields: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=MAX_FIELD_TEXT)]],
        Field(min_length=1, max_length=MAX_FIELDS, description='Payload fields, "name=path" or "path"'),
    ]
    resample: Annotated[str, Field(pattern=DURATION_PATTERN)] | None = Field(
        default=None, description="Bucket size per thing, e.g. 1s (the mean of each bucket)"
    )
    window: WindowRequest | None = None
    label: LabelRequest | None = None


class DatasetItem(_Shape):
    """A dataset in a listing."""

    name: str
    kind: Literal["telemetry", "file"]
    sha256: str
    size_bytes: int
    rows: int
    columns: int
    created_at: datetime.datetime
    created_by: str


class DatasetPublic(DatasetItem):
    """A dataset: how it was made (``spec``, ``source``) and what it holds (``summary``)."""

    spec: dict[str, Any] | None = Field(
        description="How the telemetry became rows; none for an uploaded file"
    )
    source: dict[str, Any]
    summary: dict[str, Any] = Field(description="rows, columns (name, type, missing, min, max, mean), times")


class DatasetsPublic(_Shape):
    """A page of datasets by name, and how many there are."""

    data: list[DatasetItem]
    count: int

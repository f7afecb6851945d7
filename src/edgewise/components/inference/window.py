"""Messages to model input rows, the way the cloud built the model's dataset (``edgewise.ml.datasets``).

Without a window, each message is one row: the manifest's input fields, read by their JSON paths. With a
window, each source (the topic a message came on) has its own series, resampled into ``resampleMs`` buckets
(the mean of each field over the bucket's messages; an empty bucket is missing values), and every ``step``
buckets the last ``size`` buckets make one window whose features ``edgewise.ml.features.window_features``
computes, the same function the dataset builder calls. A bucket is complete once a message of a later bucket
arrives, so a window's row comes one message after its last bucket; a window in which some field has no value
at all is left out, as in the dataset. A message older than its source's current bucket counts in that bucket.

The model reads the columns the manifest's ``featureNames`` lists, picked out of every column these rows have.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edgewise.components.inference.errors import ModelLoadError, PayloadError
from edgewise.ml.errors import DatasetError
from edgewise.ml.features import WindowSpec, window_features
from edgewise.ml.jsonpath import JsonPath, parse_path
from edgewise.protocol.model_package import ModelManifest

#: Sources (topics) a model keeps a series for; the least recently seen one is dropped beyond this.
MAX_SOURCES = 10_000
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class InputLayout:
    """How a manifest's inputs become the model's input row."""

    names: tuple[str, ...]  #: the input fields' names
    paths: tuple[JsonPath, ...]  #: and their paths in a payload
    window: WindowSpec | None
    resample_ms: int | None
    columns: tuple[int, ...]  #: which of the available columns the model reads, in its order

    @classmethod
    def from_manifest(cls, manifest: ModelManifest) -> InputLayout:
        """The layout a manifest describes; :class:`ModelLoadError` naming the manifest field that does not fit."""
        names = tuple(item.name for item in manifest.inputs)
        paths = []
        for index, item in enumerate(manifest.inputs):
            try:
                paths.append(parse_path(item.path, field=f"inputs[{index}].path"))
            except DatasetError as error:
                raise ModelLoadError(f"manifest.json: field {error}") from None
        window = None
        resample_ms = None
        if manifest.window is not None:
            try:
                window = WindowSpec.from_json(manifest.window)
            except DatasetError as error:
                raise ModelLoadError(f"manifest.json: field {error}") from None
            value = manifest.window.get("resampleMs")
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelLoadError(
                    f"manifest.json: field 'window.resampleMs' must be a positive whole number of ms, not {value!r}"
                )
            resample_ms = value
        available = window.feature_names(names) if window is not None else list(names)
        position = {name: index for index, name in enumerate(available)}
        missing = [name for name in manifest.feature_names if name not in position]
        if missing:
            raise ModelLoadError(
                f"manifest.json: field 'featureNames' names {missing[0]!r}, which the inputs and window do not "
                f"give (they give {', '.join(available[:20])})"
            )
        columns = tuple(position[name] for name in manifest.feature_names)
        return cls(names=names, paths=tuple(paths), window=window, resample_ms=resample_ms, columns=columns)


@dataclass(frozen=True)
class FeatureRow:
    """One model input row and where it came from."""

    source: str  #: the topic of its (last) message
    timestamp_ms: int  #: per message: when it arrived; per window: the start of its last bucket
    values: FloatArray  #: in the manifest's ``featureNames`` order
    document: object  #: the (last) message's JSON, for the results' passthrough fields


def decode_payload(payload: bytes | object) -> object:
    """A message's JSON document: bytes are parsed, an already decoded JSON message is taken as it is."""
    if isinstance(payload, bytes | bytearray):
        try:
            return json.loads(payload)
        except (UnicodeDecodeError, ValueError):
            raise PayloadError("the payload is not JSON", malformed=True) from None
    return payload


@dataclass
class _Series:
    """One source's resampled series: the open bucket's sums and the last ``size`` complete buckets."""

    bucket: int
    sums: FloatArray
    counts: npt.NDArray[np.int64]
    rows: deque[FloatArray]
    buckets: deque[int]
    complete: int = 0  #: buckets completed so far
    document: object = field(default=None)


class SourceWindows:
    """Feature rows from the messages of one model's input topic, with a series per source when windowed."""

    def __init__(self, layout: InputLayout) -> None:
        self.layout = layout
        self._series: OrderedDict[str, _Series] = OrderedDict()

    def add(self, source: str, document: object, timestamp_ms: int) -> list[FeatureRow]:
        """The rows that ``document`` (from ``source``, arrived at ``timestamp_ms``) completes, maybe none.

        Raises:
            PayloadError: ``document`` is not an object, or a field is missing or not a number.
        """
        values = self.values(document)
        layout = self.layout
        if layout.window is None or layout.resample_ms is None:
            return [FeatureRow(source, timestamp_ms, values[list(layout.columns)], document)]
        return self._add_windowed(source, values, document, timestamp_ms, layout.window, layout.resample_ms)

    def values(self, document: object) -> FloatArray:
        """The input fields of one message, in the manifest's order."""
        if not isinstance(document, dict):
            raise PayloadError(
                f"the payload is JSON {type(document).__name__}, not an object", malformed=True
            )
        values = np.empty(len(self.layout.names), dtype=np.float64)
        for index, (name, path) in enumerate(zip(self.layout.names, self.layout.paths, strict=True)):
            value = path.extract(document)
            if value is None:
                raise PayloadError(f"field {name!r} (path {path.text}) is missing", malformed=False)
            if isinstance(value, bool):
                value = float(value)
            if not isinstance(value, int | float) or not math.isfinite(value):
                shown = json.dumps(value)[:40]
                raise PayloadError(
                    f"field {name!r} (path {path.text}) is not a number: {shown}", malformed=False
                )
            values[index] = value
        return values

    def _add_windowed(
        self,
        source: str,
        values: FloatArray,
        document: object,
        timestamp_ms: int,
        window: WindowSpec,
        width: int,
    ) -> list[FeatureRow]:
        bucket = (timestamp_ms // width) * width
        series = self._series.get(source)
        if series is None:
            series = self._open(source, bucket, window.size)
        self._series.move_to_end(source)
        rows: list[FeatureRow] = []
        if bucket > series.bucket:
            rows.extend(self._close(source, series, window, width))
            # Buckets with no message are missing samples; more than a window of them is a fresh start.
            gap = min((bucket - series.bucket) // width - 1, window.size)
            for _ in range(gap):
                series.bucket += width
                rows.extend(self._push(source, series, np.full(len(values), np.nan), window, width))
            series.bucket = bucket
        series.sums += values
        series.counts += 1
        series.document = document
        return rows

    def _open(self, source: str, bucket: int, size: int) -> _Series:
        if len(self._series) >= MAX_SOURCES:
            self._series.popitem(last=False)
        fields = len(self.layout.names)
        series = _Series(
            bucket=bucket,
            sums=np.zeros(fields),
            counts=np.zeros(fields, dtype=np.int64),
            rows=deque(maxlen=size),
            buckets=deque(maxlen=size),
        )
        self._series[source] = series
        return series

    def _close(self, source: str, series: _Series, window: WindowSpec, width: int) -> list[FeatureRow]:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(series.counts > 0, series.sums / np.maximum(series.counts, 1), np.nan)
        series.sums = np.zeros_like(series.sums)
        series.counts = np.zeros_like(series.counts)
        return self._push(source, series, mean, window, width)

    def _push(
        self, source: str, series: _Series, row: FloatArray, window: WindowSpec, width: int
    ) -> list[FeatureRow]:
        series.rows.append(row)
        series.buckets.append(series.bucket)
        series.complete += 1
        if series.complete < window.size or (series.complete - window.size) % window.step:
            return []
        samples = np.vstack(list(series.rows))
        if np.isnan(samples).all(axis=0).any():
            return []
        features = window_features(samples, window, width / 1000)
        return [FeatureRow(source, series.buckets[-1], features[list(self.layout.columns)], series.document)]


def stack(rows: Sequence[FeatureRow]) -> FloatArray:
    """The rows' values as one matrix, rows by features."""
    return np.vstack([row.values for row in rows])

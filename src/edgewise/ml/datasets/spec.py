"""What a dataset is made of: the payload fields (JSON paths), the resampling, the windows and the label, and
their camelCase JSON form (kept in the dataset's Parquet metadata and accepted by the API)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from edgewise.ml.errors import DatasetError
from edgewise.ml.features import WindowSpec
from edgewise.ml.jsonpath import JsonPath, parse_path

#: Column names the built table uses itself; a field may not take them.
RESERVED_COLUMNS: Final = frozenset({"thing", "timestamp", "label"})
MAX_FIELD_NAME = 64
MAX_FIELDS = 64
MAX_RESAMPLE_MS = 7 * 24 * 3600 * 1000
MAX_RANGES = 10_000


@dataclass(frozen=True)
class FieldSpec:
    """One payload field: the column ``name`` and the ``path`` to its value in a JSON payload."""

    name: str
    path: JsonPath

    def __post_init__(self) -> None:
        _check_field_name(self.name, "fields")

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "path": self.path.text}

    @classmethod
    def from_json(cls, data: object, *, field: str = "fields") -> FieldSpec:
        """Read ``{"name": ..., "path": ...}`` or the ``"name=path"`` text :func:`parse_field` takes."""
        if isinstance(data, str):
            return parse_field(data, field=field)
        if not isinstance(data, Mapping):
            raise DatasetError(f"{field}: must be an object or a 'name=path' text, not {type(data).__name__}")
        path = data.get("path")
        if not isinstance(path, str):
            raise DatasetError(f"{field}.path: is required and must be a string")
        parsed = parse_path(path, field=f"{field}.path")
        name = data.get("name")
        if name is None:
            return _field_named_by_path(parsed, field)
        if not isinstance(name, str):
            raise DatasetError(f"{field}.name: must be a string")
        _check_field_name(name, field)
        return cls(name, parsed)


def parse_field(text: str, *, field: str = "fields") -> FieldSpec:
    """``"name=path"`` or just ``"path"`` (the name is then the path's last key: ``value`` for ``a[0].value``)."""
    name, separator, rest = text.partition("=")
    # An "=" inside a path (a quoted key) is not a name separator; a name holds none of the path's punctuation.
    if separator and name and not any(char in name for char in "$.[]'\""):
        _check_field_name(name, field)
        return FieldSpec(name, parse_path(rest, field=f"{field} {name!r}"))
    return _field_named_by_path(parse_path(text, field=field), field)


def _field_named_by_path(path: JsonPath, field: str) -> FieldSpec:
    name = path.last_key
    if name is None:
        raise DatasetError(f"{field}: {path.text!r} has no key to name the column; write 'name={path.text}'")
    _check_field_name(name, field)
    return FieldSpec(name, path)


def _check_field_name(name: str, field: str) -> None:
    if not isinstance(name, str) or not name:
        raise DatasetError(f"{field}: a field name must be a non-empty string")
    if len(name) > MAX_FIELD_NAME:
        raise DatasetError(
            f"{field}: field name {name[:MAX_FIELD_NAME]!r}... is longer than {MAX_FIELD_NAME}"
        )
    if name in RESERVED_COLUMNS:
        raise DatasetError(
            f"{field}: field name {name!r} is reserved (thing, timestamp and label are columns)"
        )
    if "__" in name:
        raise DatasetError(
            f"{field}: field name {name!r} holds '__', which separates a field from its feature"
        )
    if not name.isprintable():
        raise DatasetError(f"{field}: field name {name!r} holds a control character")


@dataclass(frozen=True)
class LabelSpec:
    """The ``label`` column: a payload field's value, or 1 inside ``anomalous_ranges`` ([start, end) ms) else 0."""

    field: FieldSpec | None = None
    anomalous_ranges: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if (self.field is None) == (not self.anomalous_ranges):
            raise DatasetError("label: give either a field or anomalousRanges, not both and not neither")
        if len(self.anomalous_ranges) > MAX_RANGES:
            raise DatasetError(f"label.anomalousRanges: more than {MAX_RANGES} ranges")
        for index, pair in enumerate(self.anomalous_ranges):
            if (
                not isinstance(pair, tuple)
                or len(pair) != 2
                or not all(isinstance(bound, int) and not isinstance(bound, bool) for bound in pair)
            ):
                raise DatasetError(f"label.anomalousRanges[{index}]: must be [startMs, endMs], two integers")
            if pair[0] >= pair[1]:
                raise DatasetError(
                    f"label.anomalousRanges[{index}]: start {pair[0]} is not before end {pair[1]}"
                )

    def to_json(self) -> dict[str, object]:
        return {
            "field": None if self.field is None else self.field.to_json(),
            "anomalousRanges": [list(pair) for pair in self.anomalous_ranges],
        }

    @classmethod
    def from_json(cls, data: object) -> LabelSpec:
        if not isinstance(data, Mapping):
            raise DatasetError(f"label: must be an object, not {type(data).__name__}")
        raw_field = data.get("field")
        label_field = None if raw_field is None else FieldSpec.from_json(raw_field, field="label.field")
        raw_ranges = data.get("anomalousRanges", [])
        if not isinstance(raw_ranges, list):
            raise DatasetError("label.anomalousRanges: must be a list of [startMs, endMs] pairs")
        ranges: list[tuple[int, int]] = []
        for index, pair in enumerate(raw_ranges):
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise DatasetError(f"label.anomalousRanges[{index}]: must be [startMs, endMs], two integers")
            ranges.append((pair[0], pair[1]))
        return cls(field=label_field, anomalous_ranges=tuple(ranges))


@dataclass(frozen=True)
class DatasetSpec:
    """How telemetry becomes a table: ``fields``, then optionally ``resample_ms`` buckets per thing, windows over
    the resampled series, and a label."""

    fields: tuple[FieldSpec, ...]
    resample_ms: int | None = None
    window: WindowSpec | None = None
    label: LabelSpec | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.fields, tuple) or not self.fields:
            raise DatasetError("fields: at least one field is required")
        if len(self.fields) > MAX_FIELDS:
            raise DatasetError(f"fields: more than {MAX_FIELDS} fields")
        names = [spec.name for spec in self.fields]
        for name in names:
            if names.count(name) > 1:
                raise DatasetError(f"fields: two fields are named {name!r}")
        if self.resample_ms is not None and (
            isinstance(self.resample_ms, bool)
            or not isinstance(self.resample_ms, int)
            or not 1 <= self.resample_ms <= MAX_RESAMPLE_MS
        ):
            raise DatasetError(
                f"resampleMs: {self.resample_ms!r} is not an integer from 1 to {MAX_RESAMPLE_MS}"
            )
        if self.window is not None and self.resample_ms is None:
            raise DatasetError("window: needs resampleMs, so that every window covers the same time")

    def to_json(self) -> dict[str, object]:
        return {
            "fields": [spec.to_json() for spec in self.fields],
            "resampleMs": self.resample_ms,
            "window": None if self.window is None else self.window.to_json(),
            "label": None if self.label is None else self.label.to_json(),
        }

    @classmethod
    def from_json(cls, data: object) -> DatasetSpec:
        if not isinstance(data, Mapping):
            raise DatasetError(f"spec: must be an object, not {type(data).__name__}")
        raw_fields = data.get("fields")
        if not isinstance(raw_fields, list):
            raise DatasetError("fields: must be a list of fields")
        fields = tuple(
            FieldSpec.from_json(item, field=f"fields[{index}]") for index, item in enumerate(raw_fields)
        )
        raw_window = data.get("window")
        if raw_window is not None and not isinstance(raw_window, Mapping):
            raise DatasetError("window: must be an object")
        raw_label = data.get("label")
        return cls(
            fields=fields,
            resample_ms=data.get("resampleMs"),  # checked in __post_init__
            window=None if raw_window is None else WindowSpec.from_json(raw_window),
            label=None if raw_label is None else LabelSpec.from_json(raw_label),
        )

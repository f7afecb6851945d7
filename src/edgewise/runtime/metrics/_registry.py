"""Component metrics in memory: per component, metric name and unit, the latest value and running totals."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from edgewise.runtime.metrics.errors import InvalidMetricError, MetricError, MetricLimitError

#: Greengrass limits a metric name to 32 bytes of UTF-8.
MAX_NAME_BYTES = 32
DEFAULT_MAX_SERIES_PER_COMPONENT = 1_000


class MetricUnit(StrEnum):
    """The unit of a measurement (IPC ``MetricUnitType``)."""

    BYTES = "BYTES"
    BYTES_PER_SECOND = "BYTES_PER_SECOND"
    COUNT = "COUNT"
    COUNT_PER_SECOND = "COUNT_PER_SECOND"
    MEGABYTES = "MEGABYTES"
    SECONDS = "SECONDS"


@dataclass(frozen=True, slots=True)
class Metric:
    """One measurement a component reports."""

    name: str
    unit: MetricUnit
    value: float

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Metric:
        """A measurement from its IPC shape ``{name, unit, value}``.

        Raises:
            InvalidMetricError: naming the field that is wrong.
        """
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidMetricError("name", f"expected a non-empty string, got {name!r}")
        size = len(name.encode("utf-8"))
        if size > MAX_NAME_BYTES:
            raise InvalidMetricError("name", f"{name!r} is {size} bytes long; the limit is {MAX_NAME_BYTES}")
        unit = item.get("unit")
        if not isinstance(unit, str) or unit not in MetricUnit.__members__:
            expected = ", ".join(MetricUnit.__members__)
            raise InvalidMetricError("unit", f"expected one of {expected}, got {unit!r}")
        checked_unit = MetricUnit(unit)
        value = item.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidMetricError("value", f"expected a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise InvalidMetricError("value", f"expected a finite number >= 0, got {value!r}")
        return cls(name, checked_unit, float(value))


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """What the runtime knows about one metric series of one component."""

    component: str
    name: str
    unit: MetricUnit
    latest: float
    count: int
    total: float
    minimum: float
    maximum: float
    updated_ms: int  #: when the latest value was recorded, in ms since the epoch

    @property
    def mean(self) -> float:
        return self.total / self.count

    def to_json(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "name": self.name,
            "unit": self.unit.value,
            "latest": self.latest,
            "count": self.count,
            "sum": self.total,
            "min": self.minimum,
            "max": self.maximum,
            "updatedMs": self.updated_ms,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetricSummary:
        """Read back what :meth:`to_json` wrote.

        Raises:
            MetricError: a field is missing or of the wrong type.
        """
        try:
            summary = cls(
                component=str(data["component"]),
                name=str(data["name"]),
                unit=MetricUnit(data["unit"]),
                latest=float(data["latest"]),
                count=int(data["count"]),
                total=float(data["sum"]),
                minimum=float(data["min"]),
                maximum=float(data["max"]),
                updated_ms=int(data["updatedMs"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MetricError(f"Metric summary {dict(data)!r} is not valid: {exc!r}") from None
        if summary.count < 1:
            raise MetricError(f"Metric summary {dict(data)!r} has count {summary.count}; expected at least 1")
        return summary


@dataclass(frozen=True, slots=True)
class MetricStatistics:
    """A snapshot of a registry's counters."""

    series: int  #: (component, name, unit) series held
    measurements: int  #: measurements recorded since the registry was created


class _Series:
    __slots__ = ("count", "latest", "maximum", "minimum", "total", "updated_ms")

    def __init__(self, value: float, now_ms: int) -> None:
        self.latest = self.total = self.minimum = self.maximum = value
        self.count = 1
        self.updated_ms = now_ms

    def add(self, value: float, now_ms: int) -> None:
        self.latest = value
        self.count += 1
        self.total += value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)
        self.updated_ms = now_ms


_Key = tuple[str, str, MetricUnit]


class MetricRegistry:
    """The metric series of every component, bounded per component. Must be used from one thread."""

    def __init__(self, *, max_series_per_component: int = DEFAULT_MAX_SERIES_PER_COMPONENT) -> None:
        if max_series_per_component < 1:
            msg = f"max_series_per_component must be at least 1, got {max_series_per_component}"
            raise ValueError(msg)
        self._max_series = max_series_per_component
        self._series: dict[_Key, _Series] = {}
        self._per_component: dict[str, int] = {}
        self._measurements = 0

    def record(self, component: str, metrics: Iterable[Metric], *, now_ms: int) -> None:
        """Add measurements of ``component``: all of them, or none when that would pass the series limit.

        Raises:
            MetricLimitError: the measurements would create too many series for ``component``.
        """
        batch = list(metrics)
        new_keys = {(component, m.name, m.unit) for m in batch} - self._series.keys()
        if self._per_component.get(component, 0) + len(new_keys) > self._max_series:
            raise MetricLimitError(component, self._max_series)
        for metric in batch:
            key = (component, metric.name, metric.unit)
            series = self._series.get(key)
            if series is None:
                self._series[key] = _Series(metric.value, now_ms)
                self._per_component[component] = self._per_component.get(component, 0) + 1
            else:
                series.add(metric.value, now_ms)
        self._measurements += len(batch)

    def summaries(self) -> list[MetricSummary]:
        """Every series, sorted by component, name and unit."""
        return [
            MetricSummary(
                component,
                name,
                unit,
                latest=series.latest,
                count=series.count,
                total=series.total,
                minimum=series.minimum,
                maximum=series.maximum,
                updated_ms=series.updated_ms,
            )
            for (component, name, unit), series in sorted(self._series.items())
        ]

    def statistics(self) -> MetricStatistics:
        return MetricStatistics(series=len(self._series), measurements=self._measurements)

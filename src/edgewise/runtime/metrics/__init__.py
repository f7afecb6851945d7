"""Component metrics: what components report with IPC ``PutComponentMetric``, summarized per series.

The runtime keeps, for each (component, metric name, unit), the latest value, the count, the sum, the
minimum and the maximum, in memory, and writes them to ``ROOT/metrics/current.json`` (atomically, at most
about a second behind) for ``edgewise runtime metrics`` to read.
"""

from __future__ import annotations

from edgewise.runtime.metrics._file import load_metrics, metrics_file, save_metrics
from edgewise.runtime.metrics._recorder import DEFAULT_WRITE_DELAY, MetricsRecorder
from edgewise.runtime.metrics._registry import (
    DEFAULT_MAX_SERIES_PER_COMPONENT,
    MAX_NAME_BYTES,
    Metric,
    MetricRegistry,
    MetricStatistics,
    MetricSummary,
    MetricUnit,
)
from edgewise.runtime.metrics.errors import InvalidMetricError, MetricError, MetricLimitError

__all__ = [
    "DEFAULT_MAX_SERIES_PER_COMPONENT",
    "DEFAULT_WRITE_DELAY",
    "MAX_NAME_BYTES",
    "InvalidMetricError",
    "Metric",
    "MetricError",
    "MetricLimitError",
    "MetricRegistry",
    "MetricStatistics",
    "MetricSummary",
    "MetricUnit",
    "MetricsRecorder",
    "load_metrics",
    "metrics_file",
    "save_metrics",
]

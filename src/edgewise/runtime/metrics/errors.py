"""Errors of the component metrics:

MetricError (EdgewiseError)     a metric or a metrics file that cannot be used
 ├── InvalidMetricError         one field of a measurement is wrong (``field``, ``problem``)
 └── MetricLimitError           a component already has as many metric series as the runtime keeps
"""

from __future__ import annotations

from edgewise.errors import EdgewiseError


class MetricError(EdgewiseError):
    """A metric or a metrics file that cannot be used."""


class InvalidMetricError(MetricError):
    """One field of a measurement is wrong; ``field`` names it and ``problem`` says what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class MetricLimitError(MetricError):
    """Recording would create more metric series than the runtime keeps for ``component``."""

    def __init__(self, component: str, limit: int) -> None:
        super().__init__(
            f"Component {component} already has {limit} metric series, the most the runtime keeps; "
            "reuse existing metric names"
        )
        self.component = component
        self.limit = limit

"""The ``PutComponentMetric`` IPC operation: components report measurements.

A caller needs an ``aws.greengrass.ipc.componentmetric`` policy covering each metric name
(``aws.greengrass.StreamManager`` needs none). Greengrass also requires the caller's name to start with
``aws.``; Edgewise does not, so any component with a policy can report metrics (see docs/compatibility.md).
The measurements go to the runtime's :class:`~edgewise.runtime.metrics.MetricsRecorder`, which
``edgewise runtime metrics`` reads back.
"""

from __future__ import annotations

from typing import Any

from edgewise.runtime.context import RuntimeContext
from edgewise.runtime.ipc.errors import InvalidArgumentsError, ServiceError
from edgewise.runtime.ipc.server import CallContext, IpcServer
from edgewise.runtime.metrics import (
    InvalidMetricError,
    Metric,
    MetricLimitError,
    MetricsRecorder,
    metrics_file,
)

SERVICE = "aws.greengrass.ipc.componentmetric"
#: Allowed to report metrics without a policy, as in Greengrass.
IMPLICITLY_ALLOWED = frozenset({"aws.greengrass.StreamManager"})
_OPERATION = "aws.greengrass#PutComponentMetric"


class MetricsService:
    """Registers ``PutComponentMetric`` and owns the runtime's metric recorder."""

    def __init__(self, context: RuntimeContext) -> None:
        self._authorizer = context.authorizer
        self.recorder = MetricsRecorder(metrics_file(context.paths.root))

    def register(self, server: IpcServer) -> None:
        server.register_unary(_OPERATION, self.put_component_metric)

    async def start(self) -> None:
        await self.recorder.start()

    async def close(self) -> None:
        await self.recorder.close()

    async def put_component_metric(self, context: CallContext, request: dict[str, Any]) -> dict[str, Any]:
        items = request.get("metrics")
        if not isinstance(items, list) or not items:
            got = "an empty list" if items == [] else type(items).__name__
            raise InvalidArgumentsError(
                f"metrics: expected a non-empty list of {{name, unit, value}}, got {got}"
            )
        metrics: list[Metric] = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise InvalidArgumentsError(
                    f"metrics[{index}]: expected an object, got {type(item).__name__}"
                )
            try:
                metrics.append(Metric.from_json(item))
            except InvalidMetricError as exc:
                raise InvalidArgumentsError(f"metrics[{index}].{exc.field}: {exc.problem}") from exc
        if context.component not in IMPLICITLY_ALLOWED:
            for name in sorted({metric.name for metric in metrics}):
                self._authorizer.check(context.component, SERVICE, context.operation, name)
        try:
            self.recorder.record(context.component, metrics)
        except MetricLimitError as exc:
            raise ServiceError(str(exc)) from exc
        return {}

"""Telemetry: what devices send for the cloud to keep. Stream exports and device-topic messages are ingested by
:class:`TelemetryWorker` and stored once each with :func:`store_records` in ``telemetry_messages``
(:class:`TelemetryMessage`); :class:`TelemetryRetention` holds how much of a stream to keep."""

from __future__ import annotations

from edgewise.cloud.telemetry.models import TelemetryMessage as TelemetryMessage
from edgewise.cloud.telemetry.models import TelemetryRetention as TelemetryRetention
from edgewise.cloud.telemetry.records import StoreResult as StoreResult
from edgewise.cloud.telemetry.records import TelemetryRecord as TelemetryRecord
from edgewise.cloud.telemetry.records import store_records as store_records
from edgewise.cloud.telemetry.worker import TelemetryStatistics as TelemetryStatistics
from edgewise.cloud.telemetry.worker import TelemetryWorker as TelemetryWorker

__all__ = [
    "StoreResult",
    "TelemetryMessage",
    "TelemetryRecord",
    "TelemetryRetention",
    "TelemetryStatistics",
    "TelemetryWorker",
    "store_records",
]

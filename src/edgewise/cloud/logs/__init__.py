"""Device logs: the lines of devices' log files, sent in batches and stored once each in ``device_logs``
(:class:`DeviceLog`) by :class:`LogsWorker`, read through the API, and pruned by age by
:class:`LogsRetentionWorker`."""

from __future__ import annotations

from edgewise.cloud.logs.models import DeviceLog as DeviceLog
from edgewise.cloud.logs.retention import LogsRetentionWorker as LogsRetentionWorker
from edgewise.cloud.logs.worker import LogsWorker as LogsWorker

__all__ = ["DeviceLog", "LogsRetentionWorker", "LogsWorker"]

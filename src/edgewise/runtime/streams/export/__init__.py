"""Stream exports: each export config of a stream delivered to its destination, resumed after a restart.

The export configs (``definitions``) are run by one exporter task each (``exporter``), which turns messages into
telemetry records (``mapping``), takes turns by priority under the shared bandwidth limit (``scheduling``), sends
through a channel (``channel``: the Edgewise cloud over the cloud link; ``http``: an HTTP URL) and keeps its
checkpoint on disk (``checkpoints``); S3 export tasks upload the files they name to the cloud's object store
(``s3_tasks``, sending through ``uploader``); :class:`StreamExportService` runs them beside the stream store
(``service``).
"""

from edgewise.runtime.streams.export.channel import (
    CloudTelemetryChannel,
    ExportDeliveryError,
    TelemetryChannel,
    UnavailableChannel,
)
from edgewise.runtime.streams.export.checkpoints import Checkpoint, CheckpointFile
from edgewise.runtime.streams.export.definitions import (
    ExportConfig,
    ExportKind,
    HTTPExportFormat,
    parse_exports,
)
from edgewise.runtime.streams.export.exporter import RetrySettings, StreamExporter
from edgewise.runtime.streams.export.http import HTTPChannel
from edgewise.runtime.streams.export.s3_tasks import S3TaskExporter, parse_task
from edgewise.runtime.streams.export.scheduling import ExportClock, ExportScheduler
from edgewise.runtime.streams.export.service import StreamExportService
from edgewise.runtime.streams.export.uploader import ObjectSender, ObjectUploader, S3Task, TaskFailedError

__all__ = [
    "Checkpoint",
    "CheckpointFile",
    "CloudTelemetryChannel",
    "ExportClock",
    "ExportConfig",
    "ExportDeliveryError",
    "ExportKind",
    "ExportScheduler",
    "HTTPChannel",
    "HTTPExportFormat",
    "ObjectSender",
    "ObjectUploader",
    "RetrySettings",
    "S3Task",
    "S3TaskExporter",
    "StreamExportService",
    "StreamExporter",
    "TaskFailedError",
    "TelemetryChannel",
    "UnavailableChannel",
    "parse_exports",
    "parse_task",
]

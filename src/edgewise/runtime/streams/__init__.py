"""The stream manager: durable message streams, the SDK's protocol server, exporters.

The stream store: :class:`StreamDefinition` with the SDK's rules (``definition``), one stream's segmented
log (``log``) of segments (``segments``) of records (``records``) kept in a directory (``directory``), every
stream under one root (:class:`StreamStore`, ``store``) and their errors (``errors``); and the SDK's protocol:
its wire format (``wire``) and the server (``server``); and the exports of each stream to the cloud or an
HTTP URL (``export``, imported on its own: it needs the cloud link's modules).
"""

from edgewise.runtime.streams.definition import (
    ExportStatus,
    Persistence,
    StorageStatus,
    StoredMessage,
    StrategyOnFull,
    StreamDefinition,
    StreamInfo,
)
from edgewise.runtime.streams.errors import (
    InvalidStreamRequestError,
    NotEnoughMessagesError,
    StreamClosedError,
    StreamError,
    StreamFullError,
    StreamNotFoundError,
    StreamPayloadTooLargeError,
    StreamReadError,
    StreamResponseTooLargeError,
    StreamUpdateNotAllowedError,
    StreamWriteError,
)
from edgewise.runtime.streams.store import StreamStore

__all__ = [
    "ExportStatus",
    "InvalidStreamRequestError",
    "NotEnoughMessagesError",
    "Persistence",
    "StorageStatus",
    "StoredMessage",
    "StrategyOnFull",
    "StreamClosedError",
    "StreamDefinition",
    "StreamError",
    "StreamFullError",
    "StreamInfo",
    "StreamNotFoundError",
    "StreamPayloadTooLargeError",
    "StreamReadError",
    "StreamResponseTooLargeError",
    "StreamStore",
    "StreamUpdateNotAllowedError",
    "StreamWriteError",
]

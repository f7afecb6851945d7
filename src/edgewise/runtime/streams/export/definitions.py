"""The export configs of a stream's ``ExportDefinition``, parsed and checked with the SDK's rules.

The stream definition keeps the export definition as the SDK sent it (camelCase keys, ``IotSitewise`` spelled as
the SDK spells it); :func:`parse_exports` turns it into one :class:`ExportConfig` per config, refusing anything
the SDK's ``_validations_map`` refuses with an :class:`InvalidStreamRequestError` whose ``field`` is the path of
the bad value (``exportDefinition.kinesis[0].batchSize``). Greengrass's defaults apply to what is left out: a
batch size of the kind's maximum, no batch interval (a message may leave at once), the lowest priority (10),
start at sequence number 0, enabled. An ``S3ExportTaskExecutorConfig``'s ``statusConfig`` names the stream its
task statuses go to and the most detailed level written (the SDK's ``StatusLevel``, ``ERROR`` = 0 to
``TRACE`` = 4); without a stream name no status is written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlsplit

from edgewise.runtime.streams.errors import InvalidStreamRequestError

IDENTIFIER_PATTERN: Final = re.compile(r"[A-Za-z0-9_ ,.\-]{1,255}")
MIN_BATCH_INTERVAL_MILLIS: Final = 60_000
MAX_BATCH_INTERVAL_MILLIS: Final = 9_223_372_036_854
MAX_SEQUENCE_NUMBER: Final = 2**63 - 1
LOWEST_PRIORITY: Final = 10
#: How many configs one stream may export to, all kinds together (Greengrass sets no number; this bounds work).
MAX_EXPORTS: Final = 50
#: Longest destination name or URL accepted.
MAX_DESTINATION_LENGTH: Final = 2048
_ROOT: Final = "exportDefinition"
#: The SDK's smallest ``sizeThresholdForMultipartUploadBytes`` (S3's smallest part).
MIN_MULTIPART_THRESHOLD: Final = 5 * 1024 * 1024
#: The SDK's ``StatusLevel``: ERROR 0, WARN 1, INFO 2, DEBUG 3, TRACE 4.
MAX_STATUS_LEVEL: Final = 4
#: The SDK's default status level (INFO).
DEFAULT_STATUS_LEVEL: Final = 2
_STATUS_STREAM_PATTERN: Final = re.compile(r"[\w ,.\-]{1,255}")
_STATUS_KEYS: Final = frozenset({"statusLevel", "statusStreamName"})


class ExportKind(StrEnum):
    """An export destination kind, by the key the SDK writes it under."""

    KINESIS = "kinesis"
    IOT_ANALYTICS = "iotAnalytics"
    IOT_SITEWISE = "IotSitewise"
    HTTP = "http"
    S3_TASK_EXECUTOR = "s3TaskExecutor"

    @property
    def max_batch_size(self) -> int:
        """The SDK's largest ``batchSize`` for the kind, also its default (1 for S3 tasks, which have none)."""
        return _MAX_BATCH_SIZE[self]


_MAX_BATCH_SIZE: Final = {
    ExportKind.KINESIS: 500,
    ExportKind.IOT_ANALYTICS: 100,
    ExportKind.IOT_SITEWISE: 10,
    ExportKind.HTTP: 500,
    ExportKind.S3_TASK_EXECUTOR: 1,
}
#: The key naming each kind's destination (required by the SDK), if it has one.
_DESTINATION_KEY: Final = {
    ExportKind.KINESIS: "kinesisStreamName",
    ExportKind.IOT_ANALYTICS: "iotChannel",
    ExportKind.HTTP: "uri",
}
_BATCHING_KEYS: Final = frozenset({"batchSize", "batchIntervalMillis", "startSequenceNumber"})
_COMMON_KEYS: Final = frozenset({"identifier", "priority", "disabled"})
_KEYS: Final = {
    ExportKind.KINESIS: _COMMON_KEYS | _BATCHING_KEYS | {"kinesisStreamName"},
    ExportKind.IOT_ANALYTICS: _COMMON_KEYS | _BATCHING_KEYS | {"iotChannel", "iotMsgIdPrefix"},
    ExportKind.IOT_SITEWISE: _COMMON_KEYS | _BATCHING_KEYS,
    ExportKind.HTTP: _COMMON_KEYS | _BATCHING_KEYS | {"uri", "exportFormat"},
    ExportKind.S3_TASK_EXECUTOR: _COMMON_KEYS | {"sizeThresholdForMultipartUploadBytes", "statusConfig"},
}


class HTTPExportFormat(StrEnum):
    """How an ``HTTPConfig`` export writes a batch (the SDK's ``ExportFormat``)."""

    #: One POST per message, its payload as the body (the SDK's default).
    RAW_NOT_BATCHED = "RAW_NOT_BATCHED"
    #: One POST per batch, a JSON array of the SDK's ``Message`` maps.
    JSON_BATCHED = "JSON_BATCHED"


_HTTP_FORMAT_BY_WIRE: Final = {0: HTTPExportFormat.RAW_NOT_BATCHED, 1: HTTPExportFormat.JSON_BATCHED}


@dataclass(frozen=True)
class ExportConfig:
    """One export of a stream."""

    kind: ExportKind
    identifier: str
    #: The Kinesis stream name, IoT Analytics channel or HTTP URL; empty for SiteWise and S3 tasks.
    destination: str = ""
    batch_size: int = 1
    #: How long the oldest unsent message may wait for a batch to fill; None: it leaves at once.
    batch_interval_millis: int | None = None
    #: 1 is the highest, 10 the lowest.
    priority: int = LOWEST_PRIORITY
    start_sequence_number: int = 0
    disabled: bool = False
    http_format: HTTPExportFormat = HTTPExportFormat.RAW_NOT_BATCHED
    #: S3 tasks: the stream task statuses are appended to (None: none are written) and the most detailed
    #: level written.
    status_stream: str | None = None
    status_level: int = DEFAULT_STATUS_LEVEL

    @property
    def key(self) -> tuple[ExportKind, str]:
        """What tells exports of one stream apart."""
        return (self.kind, self.identifier)


def parse_exports(document: Mapping[str, Any] | None) -> tuple[ExportConfig, ...]:
    """Every export config of ``document`` (a stream definition's ``export_definition``), in the SDK's order.

    Raises:
        InvalidStreamRequestError: a config the SDK would refuse, or two configs with one identifier; ``field``
            is the path of the bad value.
    """
    if document is None:
        return ()
    if not isinstance(document, Mapping):
        raise _error(_ROOT, f"must be a map, not {type(document).__name__}")
    configs: list[ExportConfig] = []
    seen: dict[str, str] = {}
    for key, entries in document.items():
        try:
            kind = ExportKind(key)
        except ValueError:
            expected = ", ".join(kind.value for kind in ExportKind)
            raise _error(f"{_ROOT}.{key}", f"is not an export kind; expected one of {expected}") from None
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise _error(f"{_ROOT}.{key}", f"must be an array, not {type(entries).__name__}")
        for index, entry in enumerate(entries):
            path = f"{_ROOT}.{key}[{index}]"
            config = _parse_config(kind, entry, path)
            if config.identifier in seen:
                raise _error(
                    f"{path}.identifier",
                    f"{config.identifier!r} is already the identifier of {seen[config.identifier]}",
                )
            seen[config.identifier] = path
            configs.append(config)
            if len(configs) > MAX_EXPORTS:
                raise _error(_ROOT, f"may hold at most {MAX_EXPORTS} export configs")
    return tuple(configs)


def _parse_config(kind: ExportKind, entry: object, path: str) -> ExportConfig:
    if not isinstance(entry, Mapping):
        raise _error(path, f"must be a map, not {type(entry).__name__}")
    unknown = sorted(str(key) for key in entry if key not in _KEYS[kind])
    if unknown:
        raise _error(f"{path}.{unknown[0]}", f"is not a field of a {kind.value} export config")
    identifier = entry.get("identifier")
    if not isinstance(identifier, str) or IDENTIFIER_PATTERN.fullmatch(identifier) is None:
        raise _error(
            f"{path}.identifier",
            "is required: 1 to 255 letters, digits, spaces, commas, periods, hyphens and underscores, "
            f"not {identifier!r}",
        )
    destination = ""
    destination_key = _DESTINATION_KEY.get(kind)
    if destination_key is not None:
        destination = _text(entry.get(destination_key), f"{path}.{destination_key}")
    if kind is ExportKind.HTTP:
        _check_url(destination, f"{path}.uri")
    interval = entry.get("batchIntervalMillis")
    http_format = HTTPExportFormat.RAW_NOT_BATCHED
    if kind is ExportKind.HTTP:
        http_format = _http_format(entry.get("exportFormat"), f"{path}.exportFormat")
    status_stream, status_level = None, DEFAULT_STATUS_LEVEL
    if kind is ExportKind.S3_TASK_EXECUTOR:
        _integer(
            entry.get("sizeThresholdForMultipartUploadBytes"),
            f"{path}.sizeThresholdForMultipartUploadBytes",
            MIN_MULTIPART_THRESHOLD,
            MAX_SEQUENCE_NUMBER,
        )
        status_stream, status_level = _status_config(entry.get("statusConfig"), f"{path}.statusConfig")
    disabled = entry.get("disabled", False)
    if disabled is not None and not isinstance(disabled, bool):
        raise _error(f"{path}.disabled", f"must be true or false, not {disabled!r}")
    return ExportConfig(
        kind=kind,
        identifier=identifier,
        destination=destination,
        batch_size=_integer(entry.get("batchSize"), f"{path}.batchSize", 1, kind.max_batch_size)
        or kind.max_batch_size,
        batch_interval_millis=_integer(
            interval, f"{path}.batchIntervalMillis", MIN_BATCH_INTERVAL_MILLIS, MAX_BATCH_INTERVAL_MILLIS
        ),
        priority=_integer(entry.get("priority"), f"{path}.priority", 1, LOWEST_PRIORITY) or LOWEST_PRIORITY,
        start_sequence_number=_integer(
            entry.get("startSequenceNumber"), f"{path}.startSequenceNumber", 0, MAX_SEQUENCE_NUMBER
        )
        or 0,
        disabled=bool(disabled),
        http_format=http_format,
        status_stream=status_stream,
        status_level=status_level,
    )


def _status_config(value: object, path: str) -> tuple[str | None, int]:
    if value is None:
        return None, DEFAULT_STATUS_LEVEL
    if not isinstance(value, Mapping):
        raise _error(path, f"must be a map, not {type(value).__name__}")
    unknown = sorted(str(key) for key in value if key not in _STATUS_KEYS)
    if unknown:
        raise _error(f"{path}.{unknown[0]}", "is not a field of a status config")
    level = _integer(value.get("statusLevel"), f"{path}.statusLevel", 0, MAX_STATUS_LEVEL)
    stream = value.get("statusStreamName")
    if stream is not None and (
        not isinstance(stream, str) or _STATUS_STREAM_PATTERN.fullmatch(stream) is None
    ):
        raise _error(
            f"{path}.statusStreamName",
            f"must be 1 to 255 letters, digits, spaces, commas, periods, hyphens and underscores, not {stream!r}",
        )
    return stream, DEFAULT_STATUS_LEVEL if level is None else level


def _integer(value: object, field: str, minimum: int, maximum: int) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _error(field, f"must be an integer, not {value!r}")
    if not minimum <= value <= maximum:
        raise _error(field, f"must be between {minimum} and {maximum}, not {value}")
    return value


def _text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise _error(field, f"is required: a non-empty string, not {value!r}")
    if len(value) > MAX_DESTINATION_LENGTH:
        raise _error(field, f"must be at most {MAX_DESTINATION_LENGTH} characters long, not {len(value)}")
    return value


def _check_url(value: str, field: str) -> None:
    try:
        parts = urlsplit(value)
    except ValueError as error:
        raise _error(field, f"is not a URL: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _error(field, f"must be an http:// or https:// URL with a host, not {value!r}")


def _http_format(value: object, field: str) -> HTTPExportFormat:
    if value is None:
        return HTTPExportFormat.RAW_NOT_BATCHED
    if isinstance(value, int) and not isinstance(value, bool) and value in _HTTP_FORMAT_BY_WIRE:
        return _HTTP_FORMAT_BY_WIRE[value]
    raise _error(field, f"must be 0 (RAW_NOT_BATCHED) or 1 (JSON_BATCHED), not {value!r}")


def _error(field: str, problem: str) -> InvalidStreamRequestError:
    return InvalidStreamRequestError(f"{field} {problem}", field=field)

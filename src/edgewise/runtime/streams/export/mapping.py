"""How a stream's messages become telemetry of the Edgewise cloud, per export kind, packed into batches.

- ``KinesisConfig``: each message is one record of the telemetry stream named by ``kinesisStreamName``.
- ``IoTAnalyticsConfig``: each message is one record of the telemetry stream named by ``iotChannel``.
- ``IoTSiteWiseConfig``: each message is a ``PutAssetPropertyValueEntry`` as the SDK serializes it (JSON); each of
  its property values is one record of the telemetry stream named by its ``propertyAlias`` without leading
  slashes (a cloud stream name never starts with one), or ``<assetId>/<propertyId>`` when it has no alias. The
  record's payload is that value's JSON (``value``, ``timestamp``, ``quality``), its timestamp the value's, and
  its sequence number ``10 * the message's + the value's index`` (an entry holds at most 10 values), so that
  every value is stored once and in order.
- ``HTTPConfig``: records keep the message's bytes; :mod:`.http` posts them.

Records are packed in sequence order into batches of at most :data:`telemetry.MAX_BATCH_BYTES`. A message that can
never be delivered (a record larger than a batch holds, a SiteWise entry that cannot be read, a name the cloud
does not take) is skipped with the reason, as the SDK's exporters skip messages with non-retryable errors: the
reason goes into the export status and the log. Everything else is retried until it is delivered.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from edgewise.protocol import telemetry
from edgewise.runtime.streams.definition import StoredMessage
from edgewise.runtime.streams.export.definitions import ExportConfig, ExportKind

#: A ``PutAssetPropertyValueEntry`` holds at most this many property values (the SDK's ``maxItems``).
SITEWISE_VALUES_PER_ENTRY: Final = 10
_MAX_INTEGER: Final = telemetry.MAX_INTEGER


@dataclass(frozen=True)
class Conversion:
    """The records of some messages, by cloud stream in first-seen order, and why any message was skipped."""

    records: dict[str, list[telemetry.ExportRecord]]
    skipped: tuple[str, ...] = ()


def convert(config: ExportConfig, source: str, messages: Sequence[StoredMessage]) -> Conversion:
    """The telemetry records of ``messages`` (in sequence order) for ``config``."""
    records: dict[str, list[telemetry.ExportRecord]] = {}
    skipped: list[str] = []
    for message in messages:
        if config.kind is ExportKind.IOT_SITEWISE:
            try:
                entries = sitewise_records(message)
            except ValueError as error:
                skipped.append(
                    f"message {message.sequence_number} is not a PutAssetPropertyValueEntry: {error}"
                )
                continue
        else:
            stream = source if config.kind is ExportKind.HTTP else config.destination
            record = telemetry.ExportRecord(message.sequence_number, message.ingest_time, message.payload)
            entries = [(stream, record)]
        for stream, record in entries:
            problem = _undeliverable(config, stream, record)
            if problem is not None:
                skipped.append(f"message {message.sequence_number} {problem}")
                continue
            records.setdefault(stream, []).append(record)
    return Conversion(records, tuple(skipped))


def _undeliverable(config: ExportConfig, stream: str, record: telemetry.ExportRecord) -> str | None:
    if config.kind is ExportKind.HTTP:
        return None  # posted to the URL as it is: the cloud's limits do not apply
    if not telemetry.is_stream_name(stream):
        return f"names telemetry stream {stream[:300]!r}, which the cloud does not take"
    if telemetry.EMPTY_BATCH_BYTES + telemetry.encoded_record_size(record) > telemetry.MAX_BATCH_BYTES:
        return (
            f"is {len(record.payload)} bytes, more than the {telemetry.MAX_RECORD_PAYLOAD_BYTES} bytes a "
            "telemetry batch carries"
        )
    return None


def sitewise_records(message: StoredMessage) -> list[tuple[str, telemetry.ExportRecord]]:
    """(cloud stream, record) for each property value of a ``PutAssetPropertyValueEntry`` message.

    Raises:
        ValueError: the payload is not such an entry, naming the field.
    """
    try:
        entry = json.loads(message.payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("the payload is not JSON") from None
    if not isinstance(entry, dict):
        raise ValueError("the payload is not a JSON object")
    alias, asset, prop = entry.get("propertyAlias"), entry.get("assetId"), entry.get("propertyId")
    if isinstance(alias, str) and alias.strip("/"):
        stream = alias.lstrip("/")
    elif isinstance(asset, str) and asset and isinstance(prop, str) and prop:
        stream = f"{asset}/{prop}"
    else:
        raise ValueError("propertyAlias, or assetId and propertyId, must name the property")
    values = entry.get("propertyValues")
    if not isinstance(values, list) or not 1 <= len(values) <= SITEWISE_VALUES_PER_ENTRY:
        raise ValueError(f"propertyValues must be a list of 1 to {SITEWISE_VALUES_PER_ENTRY} values")
    base = message.sequence_number * SITEWISE_VALUES_PER_ENTRY
    if base + SITEWISE_VALUES_PER_ENTRY - 1 > _MAX_INTEGER:
        raise ValueError(f"sequence number {message.sequence_number} is too large for a SiteWise record")
    result = []
    for index, value in enumerate(values):
        if not isinstance(value, dict) or "value" not in value:
            raise ValueError(f"propertyValues[{index}] must be an object with a value")
        timestamp = _timestamp_millis(value.get("timestamp"), f"propertyValues[{index}].timestamp")
        payload = json.dumps(value, separators=(",", ":")).encode()
        result.append((stream, telemetry.ExportRecord(base + index, timestamp, payload)))
    return result


def _timestamp_millis(value: Any, field: str) -> int:
    if not isinstance(value, dict):
        raise ValueError(f"{field} must be an object with timeInSeconds")
    seconds, nanos = value.get("timeInSeconds"), value.get("offsetInNanos", 0)
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not 0 <= seconds <= _MAX_INTEGER // 1000:
        raise ValueError(f"{field}.timeInSeconds must be a number of seconds since the epoch")
    if nanos is None:
        nanos = 0
    if not isinstance(nanos, int) or isinstance(nanos, bool) or not 0 <= nanos <= 999_999_999:
        raise ValueError(f"{field}.offsetInNanos must be from 0 to 999999999")
    return seconds * 1000 + nanos // 1_000_000


def pack(
    config: ExportConfig, source: str, stream: str, records: Sequence[telemetry.ExportRecord]
) -> list[telemetry.ExportBatch]:
    """``records`` (ascending) in as few batches as fit :data:`telemetry.MAX_BATCH_BYTES` (HTTP: one batch)."""
    if config.kind is ExportKind.HTTP:
        return [_batch(stream, source, config.identifier, records)]
    batches: list[telemetry.ExportBatch] = []
    current: list[telemetry.ExportRecord] = []
    size = telemetry.EMPTY_BATCH_BYTES
    for record in records:
        record_size = telemetry.encoded_record_size(record)
        if current and size + record_size > telemetry.MAX_BATCH_BYTES:
            batches.append(_batch(stream, source, config.identifier, current))
            current, size = [], telemetry.EMPTY_BATCH_BYTES
        current.append(record)
        size += record_size
    if current:
        batches.append(_batch(stream, source, config.identifier, current))
    return batches


def _batch(
    stream: str, source: str, export_id: str, records: Sequence[telemetry.ExportRecord]
) -> telemetry.ExportBatch:
    return telemetry.ExportBatch(
        client_token=uuid.uuid4().hex,
        stream=stream,
        source=source,
        export_id=export_id,
        records=tuple(records),
    )

"""API shapes of telemetry: messages, streams, downsampled series and retention (camelCase on the wire).

Times are milliseconds since the Unix epoch. A message's ``payload`` is the JSON value itself when the payload is
a JSON object or array (``encoding`` ``json``), else its bytes in base64 (``encoding`` ``base64``); asked with
``payloadEncoding=base64``, every payload comes as base64 and ``isJson`` still says which were JSON.
"""

from __future__ import annotations

import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from edgewise.cloud.telemetry.records import STREAM_MAX_LENGTH

#: Stream names: any characters but control characters (a device topic is a stream name too).
STREAM_PATTERN = r"^[^\x00-\x1f\x7f]+$"
#: The largest retention limits: about 68 years, and 1 PB (below 2**53, so JSON readers that use floats agree).
MAX_AGE_SECONDS = 2**31 - 1
MAX_BYTES = 10**15


class _Public(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class TelemetryMessagePublic(_Public):
    """One stored message."""

    id: int = Field(description="The message's cursor: pass it as after (or before) to continue a page")
    thing: str
    stream: str
    topic: str | None
    sequence_number: int | None
    timestamp: int = Field(description="When the device says the message was made, ms since the epoch")
    received_at: datetime.datetime
    encoding: Literal["json", "base64"]
    is_json: bool = Field(description="Whether the payload is a JSON object or array")
    payload: Any


class TelemetryMessagesPublic(_Public):
    """A page of messages in cursor order; continue from ``cursor`` while ``more``."""

    data: list[TelemetryMessagePublic]
    order: Literal["oldest", "newest"]
    cursor: int | None = Field(description="The last message's id (none when the page is empty)")
    more: bool = Field(description="Whether the page was cut by its limit or size: there may be more")


class TelemetryStreamPublic(_Public):
    """A stream's stored messages (within the range asked for)."""

    stream: str
    messages: int
    bytes: int = Field(description="The sum of the payloads' sizes")
    first_timestamp: int
    last_timestamp: int
    things: int = Field(description="How many things sent messages on the stream")


class TelemetryStreamsPublic(_Public):
    """A page of streams by name, and how many match in all."""

    data: list[TelemetryStreamPublic]
    count: int


class SeriesBucketPublic(_Public):
    """One bucket: its start (ms) and the statistics of the numbers in it."""

    start: int
    count: int
    mean: float
    min: float
    max: float
    value: float = Field(description="The statistic asked for with stat")


class TelemetrySeriesPublic(_Public):
    """A numeric field downsampled into buckets; only buckets holding numbers are listed."""

    thing: str | None
    stream: str
    field: str
    since: int
    until: int
    every: int = Field(description="The bucket size in ms")
    stat: Literal["mean", "min", "max", "count"]
    skipped: int = Field(description="Messages in the range whose field is missing or not a number")
    buckets: list[SeriesBucketPublic]


class RetentionUpdate(_Public):
    """What to keep of a stream; a limit left out (or null) is no limit, or the cloud's default age."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    max_age_seconds: int | None = Field(default=None, ge=1, le=MAX_AGE_SECONDS)
    max_bytes: int | None = Field(default=None, ge=1, le=MAX_BYTES)


class RetentionPublic(_Public):
    """A stream's retention."""

    stream: str = Field(max_length=STREAM_MAX_LENGTH)
    max_age_seconds: int | None
    max_bytes: int | None
    updated_at: datetime.datetime


class RetentionsPublic(_Public):
    """Every stream's retention, by stream, and the age applied to streams without one."""

    data: list[RetentionPublic]
    count: int
    default_max_age_seconds: int | None


class ExportedObjectPublic(_Public):
    """A file a device uploaded through a stream manager S3 export task."""

    id: int
    thing: str
    bucket: str
    key: str
    size: int = Field(description="Bytes")
    sha256: str
    user_metadata: dict[str, str]
    uploaded_at: datetime.datetime


class ExportedObjectsPublic(_Public):
    """A page of objects by id; ``cursor`` (the last id) gives the next page with ``after``."""

    data: list[ExportedObjectPublic]
    cursor: int | None
    more: bool

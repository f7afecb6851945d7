"""API shapes of device logs (camelCase on the wire). Times are milliseconds since the Unix epoch."""

from __future__ import annotations

import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _Public(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class LogLinePublic(_Public):
    """One stored log line."""

    id: int = Field(description="The line's cursor: pass it as after to continue")
    thing: str
    component: str = Field(description="'System' for the runtime's own log, else the component's name")
    file: str
    file_id: str
    offset: int = Field(description="Where the line starts in its file, in bytes")
    timestamp: int | None = Field(description="When the line says it was written; none when it does not say")
    level: str | None
    message: str
    received_at: datetime.datetime


class LogLinesPublic(_Public):
    """A page of lines in arrival order; continue with ``after`` = ``cursor`` while ``more``."""

    data: list[LogLinePublic]
    cursor: int | None = Field(
        description="The last line's id; none when the page is empty (keep the previous one)"
    )
    more: bool = Field(description="Whether the page was cut by its limit or size: there may be more")


class LogComponentPublic(_Public):
    """What is stored of one component's logs."""

    component: str
    lines: int
    last_timestamp: int | None = Field(
        description="The latest time a line gives; none when no line gives one"
    )
    last_received_at: datetime.datetime


class LogComponentsPublic(_Public):
    """The components a thing has logs of, by name."""

    data: list[LogComponentPublic]

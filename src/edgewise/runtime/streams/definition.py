"""What a message stream is: its definition with the SDK's rules, its messages, and what ``describe`` shows.

The names, defaults and limits are those of the ``stream-manager`` SDK's ``MessageStreamDefinition`` and
``ReadMessagesOptions`` (their ``_validations_map``). The enums carry the SDK's names as values and map to the
integers the SDK puts on the wire through :meth:`StrategyOnFull.from_wire` and :attr:`StrategyOnFull.wire`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from edgewise.runtime.streams.errors import InvalidStreamRequestError

#: Letters, digits, spaces, commas, periods, hyphens and underscores. The SDK's pattern is ``^[\w ,.\-_]*$``
#: with Python's Unicode ``\w``; the server is Java, whose ``\w`` is ASCII, so ASCII is what both accept.
STREAM_NAME_PATTERN = re.compile(r"[A-Za-z0-9_ ,.\-]{1,255}")
STREAM_NAME_MAX_LENGTH = 255

DEFAULT_MAX_SIZE = 256 * 1024 * 1024
DEFAULT_STREAM_SEGMENT_SIZE = 16 * 1024 * 1024
MIN_MAX_SIZE = 1024
MAX_MAX_SIZE = 2**63 - 1
MIN_STREAM_SEGMENT_SIZE = 1024
MAX_STREAM_SEGMENT_SIZE = 2**31 - 1
MIN_TIME_TO_LIVE_MILLIS = 60_000
MAX_TIME_TO_LIVE_MILLIS = 9_223_372_036_854


class StrategyOnFull(StrEnum):
    """What an append does once the stream holds ``max_size`` bytes."""

    #: The append is refused; the stored messages stay.
    RejectNewData = "RejectNewData"
    #: The oldest segments are removed until the new message fits.
    OverwriteOldestData = "OverwriteOldestData"

    @property
    def wire(self) -> int:
        """The integer the SDK sends for this strategy."""
        return _STRATEGY_WIRE[self]

    @classmethod
    def from_wire(cls, value: object) -> StrategyOnFull:
        """The strategy the SDK's integer names; InvalidStreamRequestError for anything else."""
        for strategy, number in _STRATEGY_WIRE.items():
            if _is_int(value) and value == number:
                return strategy
        msg = f"strategy_on_full must be 0 (RejectNewData) or 1 (OverwriteOldestData), not {value!r}"
        raise InvalidStreamRequestError(msg, field="strategy_on_full")

    @property
    def overwrites(self) -> bool:
        """Whether a full stream makes room by removing its oldest data."""
        return self is StrategyOnFull.OverwriteOldestData


class Persistence(StrEnum):
    """Where a stream keeps its messages."""

    #: Segment files on disk; messages survive a restart.
    File = "File"
    #: Memory only; messages are lost at restart (the definition is kept).
    Memory = "Memory"

    @property
    def wire(self) -> int:
        """The integer the SDK sends for this persistence."""
        return _PERSISTENCE_WIRE[self]

    @classmethod
    def from_wire(cls, value: object) -> Persistence:
        """The persistence the SDK's integer names; InvalidStreamRequestError for anything else."""
        for persistence, number in _PERSISTENCE_WIRE.items():
            if _is_int(value) and value == number:
                return persistence
        msg = f"persistence must be 0 (File) or 1 (Memory), not {value!r}"
        raise InvalidStreamRequestError(msg, field="persistence")

    @property
    def is_durable(self) -> bool:
        """Whether messages survive a restart."""
        return self is Persistence.File


_STRATEGY_WIRE = {StrategyOnFull.RejectNewData: 0, StrategyOnFull.OverwriteOldestData: 1}
_PERSISTENCE_WIRE = {Persistence.File: 0, Persistence.Memory: 1}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_stream_name(name: object, *, field_name: str = "name") -> str:
    """``name`` if it is a valid stream name, else InvalidStreamRequestError naming ``field_name``."""
    if not isinstance(name, str):
        msg = f"{field_name} must be a string, not {type(name).__name__}"
        raise InvalidStreamRequestError(msg, field=field_name)
    if not 1 <= len(name) <= STREAM_NAME_MAX_LENGTH:
        msg = f"{field_name} must be 1 to {STREAM_NAME_MAX_LENGTH} characters long, not {len(name)}"
        raise InvalidStreamRequestError(msg, field=field_name)
    if STREAM_NAME_PATTERN.fullmatch(name) is None:
        msg = (
            f"{field_name} {name!r} may only hold letters, digits, spaces, commas, periods, hyphens and "
            "underscores"
        )
        raise InvalidStreamRequestError(msg, field=field_name)
    return name


def _check_int(value: object, field_name: str, minimum: int, maximum: int) -> None:
    if not _is_int(value):
        msg = f"{field_name} must be an integer, not {value!r}"
        raise InvalidStreamRequestError(msg, field=field_name)
    assert isinstance(value, int)
    if not minimum <= value <= maximum:
        msg = f"{field_name} must be between {minimum} and {maximum}, not {value}"
        raise InvalidStreamRequestError(msg, field=field_name)


@dataclass(frozen=True)
class StreamDefinition:
    """A message stream's definition, as ``create``/``update`` take it; checked when built.

    ``export_definition`` is the decoded ``ExportDefinition`` mapping, kept as it came for the exporters.
    The SDK requires ``strategy_on_full`` on the wire; the default here serves callers inside the runtime.
    """

    name: str
    max_size: int = DEFAULT_MAX_SIZE
    stream_segment_size: int = DEFAULT_STREAM_SEGMENT_SIZE
    time_to_live_millis: int | None = None
    strategy_on_full: StrategyOnFull = StrategyOnFull.OverwriteOldestData
    persistence: Persistence = Persistence.File
    flush_on_write: bool = False
    export_definition: Mapping[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        validate_stream_name(self.name)
        _check_int(self.max_size, "max_size", MIN_MAX_SIZE, MAX_MAX_SIZE)
        _check_int(
            self.stream_segment_size, "stream_segment_size", MIN_STREAM_SEGMENT_SIZE, MAX_STREAM_SEGMENT_SIZE
        )
        if self.time_to_live_millis is not None:
            _check_int(
                self.time_to_live_millis,
                "time_to_live_millis",
                MIN_TIME_TO_LIVE_MILLIS,
                MAX_TIME_TO_LIVE_MILLIS,
            )
        if not isinstance(self.strategy_on_full, StrategyOnFull):
            msg = f"strategy_on_full must be RejectNewData or OverwriteOldestData, not {self.strategy_on_full!r}"
            raise InvalidStreamRequestError(msg, field="strategy_on_full")
        if not isinstance(self.persistence, Persistence):
            msg = f"persistence must be File or Memory, not {self.persistence!r}"
            raise InvalidStreamRequestError(msg, field="persistence")
        if not isinstance(self.flush_on_write, bool):
            msg = f"flush_on_write must be true or false, not {self.flush_on_write!r}"
            raise InvalidStreamRequestError(msg, field="flush_on_write")
        if self.export_definition is not None and not isinstance(self.export_definition, Mapping):
            msg = f"export_definition must be a map, not {type(self.export_definition).__name__}"
            raise InvalidStreamRequestError(msg, field="export_definition")


@dataclass(frozen=True)
class StoredMessage:
    """One message of a stream, as ``read`` returns it (the SDK's ``Message``)."""

    stream_name: str
    sequence_number: int
    #: Milliseconds since the epoch when the message was appended.
    ingest_time: int
    payload: bytes


@dataclass(frozen=True)
class StorageStatus:
    """What a stream holds now. For an empty stream ``newest_sequence_number`` is one below ``oldest``."""

    oldest_sequence_number: int
    newest_sequence_number: int
    total_bytes: int


@dataclass(frozen=True)
class ExportStatus:
    """How far one export of the stream got (the SDK's ``MessageStreamInfo.exportStatuses``)."""

    export_config_identifier: str
    last_exported_sequence_number: int
    last_export_time: int = 0
    error_message: str | None = None
    exported_bytes_from_stream: int = 0
    exported_messages_count: int = 0


@dataclass(frozen=True)
class StreamInfo:
    """What ``describe`` answers (the SDK's ``MessageStreamInfo``); the exporters fill ``export_statuses``."""

    definition: StreamDefinition
    storage_status: StorageStatus
    export_statuses: tuple[ExportStatus, ...] = ()

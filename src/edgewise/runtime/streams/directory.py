"""A ``File`` stream's directory: ``definition.cbor`` and its segment files; create, load and remove it.

The definition is written last when a stream is created, so its presence marks a complete directory, and it is
replaced atomically (temporary file, fsync, rename) when the stream is updated. Every function here blocks; the
log calls them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import cbor2

from edgewise.runtime.streams.definition import Persistence, StrategyOnFull, StreamDefinition
from edgewise.runtime.streams.errors import InvalidStreamRequestError, StreamReadError
from edgewise.runtime.streams.segments import (
    SEGMENT_SUFFIX,
    FileSegment,
    create_segment_file,
    fsync_directory,
    scan_segment,
    segment_path,
)

logger = logging.getLogger(__name__)

DEFINITION_FILE = "definition.cbor"
_DEFINITION_BYTES_LIMIT = 1024 * 1024


def write_definition(directory: Path, definition: StreamDefinition) -> None:
    """Replace ``definition.cbor`` atomically and durably."""
    document = {
        "name": definition.name,
        "max_size": definition.max_size,
        "stream_segment_size": definition.stream_segment_size,
        "time_to_live_millis": definition.time_to_live_millis,
        "strategy_on_full": definition.strategy_on_full.value,
        "persistence": definition.persistence.value,
        "flush_on_write": definition.flush_on_write,
        "export_definition": definition.export_definition,
    }
    temporary = directory / f"{DEFINITION_FILE}.tmp"
    with temporary.open("wb") as file:
        cbor2.dump(document, file)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(directory / DEFINITION_FILE)
    fsync_directory(directory)


def read_definition(directory: Path) -> StreamDefinition:
    """The definition stored in ``directory``; StreamReadError if it is not a valid one."""
    path = directory / DEFINITION_FILE
    data = path.read_bytes()[: _DEFINITION_BYTES_LIMIT + 1]
    if len(data) > _DEFINITION_BYTES_LIMIT:
        msg = f"{path} is larger than {_DEFINITION_BYTES_LIMIT} bytes"
        raise StreamReadError(msg)
    try:
        document = cbor2.loads(data)
        return StreamDefinition(
            name=document["name"],
            max_size=document["max_size"],
            stream_segment_size=document["stream_segment_size"],
            time_to_live_millis=document["time_to_live_millis"],
            strategy_on_full=StrategyOnFull(document["strategy_on_full"]),
            persistence=Persistence(document["persistence"]),
            flush_on_write=document["flush_on_write"],
            export_definition=document["export_definition"],
        )
    except (cbor2.CBORDecodeError, KeyError, TypeError, ValueError, InvalidStreamRequestError) as error:
        msg = f"{path} does not hold a valid stream definition: {error}"
        raise StreamReadError(msg) from error


def create_directory(directory: Path, definition: StreamDefinition) -> None:
    """Make a stream directory: the first segment, then the definition, whose presence marks it complete."""
    directory.mkdir(mode=0o700)
    create_segment_file(segment_path(directory, 0))
    write_definition(directory, definition)
    fsync_directory(directory.parent)


def load_directory(directory: Path) -> tuple[StreamDefinition, list[FileSegment]]:
    """The definition and the scanned segments (torn tails cut away) of the stream stored in ``directory``."""
    definition = read_definition(directory)
    segments: list[FileSegment] = []
    for path in sorted(directory.glob(f"*{SEGMENT_SUFFIX}")):
        try:
            first = int(path.name.removesuffix(SEGMENT_SUFFIX))
        except ValueError:
            logger.warning("Ignoring %s: not a segment name", path)
            continue
        segments.append(FileSegment(first, path))
    segments.sort(key=lambda segment: segment.first_sequence_number)
    for segment in segments:
        scan_segment(segment)
    # A segment cut short in the middle of the log leaves a gap before the next one; reads skip it.
    if not segments:
        first = 0
        path = segment_path(directory, first)
        create_segment_file(path)
        segments.append(FileSegment(first, path))
    return definition, segments


def remove_directory(directory: Path, trash: Path) -> None:
    """Delete a stream directory, first renaming it to ``trash`` so that no half-removed stream is loaded."""
    directory.rename(trash)
    fsync_directory(trash.parent)
    shutil.rmtree(trash, ignore_errors=True)

"""The transaction log ``config.tlog``: every change since the last snapshot, one JSON line each.

A line has the shape the Greengrass nucleus writes to its own ``config/config.tlog``::

    {"TS": 1625836341225, "TP": ["services", "x", "configuration", "k"], "W": "changed", "V": 42}

``W`` is ``changed`` (the node at ``TP`` now is ``V``, every part of it stamped ``TS``) or ``removed``
(``V`` is null). Replaying the lines in order, each replacing the node at its path, rebuilds the tree.

One public store call is one batch: one ``write`` and one ``fsync``. A crash can tear a batch, so the
first line of a batch of several also carries ``"B": <number of lines>``, and replay applies a batch
only when all its lines are there; this is how a deployment's configuration update stays all-or-nothing
across power loss.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgewise.runtime.config._tree import Branch, Effect, Node, build, is_private, to_json
from edgewise.runtime.config._types import ConfigPath
from edgewise.runtime.config.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Record:
    """One log line: put ``node`` at ``path`` (``None``: remove it), as of ``timestamp``."""

    timestamp: int
    path: ConfigPath
    node: Node | None


@dataclass(frozen=True, slots=True)
class LogContents:
    """What :func:`read_log` found.

    ``good_length`` is the byte length of the complete batches at the start of the file. ``torn`` says
    why the end of the file was ignored (a crash while writing: harmless); ``corrupt`` says why a line
    before the end stopped the replay (damage: what follows is lost).
    """

    records: list[Record]
    good_length: int
    torn: str | None = None
    corrupt: str | None = None


def record_line(effect: Effect) -> dict[str, Any] | None:
    """The log line for an effect, or ``None`` for an effect on an in-memory-only (``_``) key."""
    if is_private(effect.path):
        return None
    if effect.new is None:
        return {"TS": effect.timestamp, "TP": list(effect.path), "W": "removed", "V": None}
    value = to_json(effect.new, public=True)
    return {"TS": effect.timestamp, "TP": list(effect.path), "W": "changed", "V": value}


def encode_batch(lines: Sequence[dict[str, Any]]) -> bytes:
    """The bytes of one batch of log lines, batch marker included."""
    encoded = []
    for index, line in enumerate(lines):
        if index == 0 and len(lines) > 1:
            line = {**line, "B": len(lines)}
        encoded.append(json.dumps(line, separators=(",", ":"), allow_nan=False))
    return ("\n".join(encoded) + "\n").encode()


def read_log(path: Path) -> LogContents:
    """Read and check every line of the log at ``path`` (a missing file is an empty log). Blocks."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return LogContents([], 0)
    records: list[Record] = []
    batch: list[Record] = []
    batch_size = 0
    good_length = 0
    position = 0
    line_number = 0
    while position < len(data):
        end = data.find(b"\n", position)
        if end == -1:
            return LogContents(records, good_length, torn=f"line {line_number + 1} has no end")
        line_number += 1
        try:
            record, size = _decode_line(data[position:end])
            if batch and size:
                raise ConfigError(f"a batch starts inside the batch of {batch_size} lines before it")
        except ConfigError as exc:
            problem = f"line {line_number} (byte {position}): {exc}"
            if end + 1 == len(data):
                return LogContents(records, good_length, torn=problem)
            return LogContents(records, good_length, corrupt=problem)
        position = end + 1
        if size:
            batch_size = size
        batch.append(record)
        if len(batch) >= batch_size:
            records.extend(batch)
            batch.clear()
            batch_size = 0
            good_length = position
    if batch:
        return LogContents(
            records, good_length, torn=f"the last batch has {len(batch)} of {batch_size} lines"
        )
    return LogContents(records, good_length)


def _decode_line(line: bytes) -> tuple[Record, int]:
    try:
        fields = json.loads(line)
    except ValueError as exc:
        raise ConfigError(f"not JSON ({exc})") from exc
    if not isinstance(fields, dict):
        raise ConfigError("not a JSON object")
    timestamp = fields.get("TS")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise ConfigError(f"'TS' is {timestamp!r}, not an integer")
    path = fields.get("TP")
    if not isinstance(path, list) or not all(isinstance(key, str) for key in path):
        raise ConfigError(f"'TP' is {path!r}, not a list of strings")
    size = fields.get("B", 0)
    if not isinstance(size, int) or isinstance(size, bool) or size == 1 or size < 0:
        raise ConfigError(f"'B' is {size!r}, not a batch size of 2 or more")
    what = fields.get("W")
    if what == "removed":
        return Record(timestamp, tuple(path), None), size
    if what != "changed":
        raise ConfigError(f"'W' is {what!r}, not 'changed' or 'removed'")
    if "V" not in fields:
        raise ConfigError("a 'changed' line has no 'V'")
    node = build(fields["V"], timestamp, tuple(path))
    if not path and not isinstance(node, Branch):
        raise ConfigError("the root is changed to something that is not an object")
    return Record(timestamp, tuple(path), node), size


class TransactionLog:
    """The open log file: appends batches durably and counts its lines. Blocks on every call."""

    def __init__(self, path: Path, *, length: int, records: int) -> None:
        self.path = path
        self.records = records  #: lines in the file, to decide when to compact
        self._length = length
        self._descriptor: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._broken: OSError | None = None

    def append(self, lines: Sequence[dict[str, Any]]) -> None:
        """Write one batch and fsync it.

        Raises:
            OSError: the batch could not be made durable; the file was cut back to what it held before,
                or, when even that failed, the log refuses every later write with the first error.
        """
        descriptor = self._open_descriptor()
        data = encode_batch(lines)
        try:
            written = 0
            while written < len(data):
                written += os.write(descriptor, data[written:])
            os.fsync(descriptor)
        except OSError:
            try:
                # A partial batch left in place would become a corrupt line once the next batch follows.
                os.ftruncate(descriptor, self._length)
                os.fsync(descriptor)
            except OSError as exc:
                self._broken = exc
            raise
        self._length += len(data)
        self.records += len(lines)

    def truncate(self) -> None:
        """Empty the log (after a snapshot holds everything in it)."""
        descriptor = self._open_descriptor()
        os.ftruncate(descriptor, 0)
        os.fsync(descriptor)
        self._length = 0
        self.records = 0

    def close(self) -> None:
        """Close the file; later writes raise."""
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def _open_descriptor(self) -> int:
        if self._descriptor is None:
            raise RuntimeError(f"The configuration log {str(self.path)!r} is closed")
        if self._broken is not None:
            msg = (
                f"The configuration log {str(self.path)!r} is unusable since an earlier error: {self._broken}"
            )
            raise OSError(msg)
        return self._descriptor

"""The persistent configuration store: the runtime's whole state tree, durable across crashes.

The tree holds ``services.<component>.{version, lifecycle, dependencies, configuration, runWith}``,
``system.{...}`` and whatever else the Greengrass nucleus keeps at the top of its tree. Values are JSON. Every
leaf (a list is a leaf: lists are replaced whole) carries the millisecond timestamp of its last write, and
merges are last writer wins per node, as in the nucleus's own store.

Keys are case-sensitive and kept as given. Greengrass matches configuration keys case-insensitively;
Edgewise does not yet, so ``Message`` and ``message`` are two keys here.

Keys starting with ``_`` are kept in memory only: they are never written to disk, so they are gone
after a restart (Greengrass does the same).

On disk, in the store's directory (see ``_tlog`` and ``_snapshot`` for the formats)::

    config.snapshot.json   the whole tree as of the last compaction (replaced atomically)
    config.tlog            every change since, one JSON line each, fsynced per call
    config.tlog.corrupt    a copy of a log that was damaged before its end, kept for inspection

Opening loads the snapshot and replays the log. A torn end of the log (a crash while writing) is
dropped with a warning; a damaged line before the end stops the replay there with an error, keeping
everything before it. Compaction writes a new snapshot, then empties the log: if it crashes after the
rename, the old log is replayed over the new snapshot, which is harmless because every line replaces
a whole node, so replaying lines already in the snapshot ends in the same tree.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time

# CPython's own BLAKE2, which hashlib hands out too: hashlib itself loads OpenSSL's libcrypto (3.4 MiB resident)
# in a runtime that may have no other use for it.
from _blake2 import blake2b
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from edgewise.runtime.config._pointer import parse_pointer
from edgewise.runtime.config._snapshot import read_snapshot, write_snapshot
from edgewise.runtime.config._tlog import TransactionLog, read_log, record_line
from edgewise.runtime.config._tree import (
    Branch,
    Effect,
    Leaf,
    NodeChange,
    Tree,
    build,
    clone,
    descend,
    describe,
    diff,
    node_timestamp,
    to_json,
)
from edgewise.runtime.config._types import ConfigChange, ConfigPath
from edgewise.runtime.config.errors import ConfigError, StaleUpdateError
from edgewise.runtime.files import sync_directory, write_atomically

logger = logging.getLogger(__name__)

LOG_NAME = "config.tlog"
SNAPSHOT_NAME = "config.snapshot.json"
CORRUPT_LOG_NAME = "config.tlog.corrupt"

#: Log lines after which the store compacts itself (Greengrass uses 15,000).
DEFAULT_COMPACT_AFTER = 10_000

#: The timestamp recipe defaults are merged with, older than any real update, so defaults only fill gaps.
DEFAULTS_TIMESTAMP = 1

ChangeCallback = Callable[[ConfigChange], None]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class ConfigStore:
    """The runtime's configuration tree, its transaction log and its subscribers.

    Thread-safe. Every method that changes the tree blocks on one write and one fsync, which takes
    about a millisecond on a local disk; from the event loop, that is acceptable for occasional small
    updates, and anything bigger should go through ``asyncio.to_thread``. Callbacks run on the thread
    that made the change, with the store locked, after the change is durable: keep them short.

    Create one with :meth:`open`; close it with :meth:`close` or a ``with`` block.
    """

    def __init__(
        self,
        directory: Path,
        tree: Tree,
        log: TransactionLog,
        *,
        compact_after: int,
        clock: Callable[[], int],
    ) -> None:
        self.directory = directory
        self._tree = tree
        self._log = log
        self._compact_after = compact_after
        self._clock = clock
        self._lock = threading.RLock()
        self._subscribers: dict[int, tuple[ConfigPath, ChangeCallback]] = {}
        self._next_subscriber = 0
        self._closed = False

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        compact_after: int = DEFAULT_COMPACT_AFTER,
        clock: Callable[[], int] = _now_ms,
    ) -> ConfigStore:
        """Load the store kept in ``directory``, creating the directory if needed. Blocks.

        Args:
            directory: where the snapshot and the log live.
            compact_after: compact once the log holds this many lines.
            clock: the time in milliseconds, for :meth:`replace_all`.

        Raises:
            ConfigError: the snapshot is damaged (the log never stops the store from opening).
            OSError: the directory or its files cannot be read or written.
        """
        if compact_after < 1:
            raise ValueError(f"compact_after must be at least 1, got {compact_after}")
        directory.mkdir(parents=True, exist_ok=True)
        snapshot_path = directory / SNAPSHOT_NAME
        # A leftover of a compaction that crashed before its rename: the snapshot beside it is whole.
        snapshot_path.with_name(snapshot_path.name + ".tmp").unlink(missing_ok=True)
        tree = Tree(read_snapshot(snapshot_path))
        log_path = directory / LOG_NAME
        contents = read_log(log_path)
        for record in contents.records:
            tree.put(record.path, record.node, record.timestamp)
        if contents.torn is not None:
            logger.warning(
                "Ignoring the torn end of %s, left by a crash while writing: %s", log_path, contents.torn
            )
            with log_path.open("r+b") as file:
                file.truncate(contents.good_length)
                os.fsync(file.fileno())
        log = TransactionLog(log_path, length=contents.good_length, records=len(contents.records))
        sync_directory(directory)
        store = cls(directory, tree, log, compact_after=compact_after, clock=clock)
        if contents.corrupt is not None:
            logger.error(
                "Configuration log %s is damaged at %s; kept the %d changes before it, lost the rest, "
                "and saved the damaged log as %s",
                log_path,
                contents.corrupt,
                len(contents.records),
                CORRUPT_LOG_NAME,
            )
            shutil.copyfile(log_path, directory / CORRUPT_LOG_NAME)
            store.compact()
        elif log.records >= compact_after:
            store.compact()
        logger.info(
            "Opened the configuration store in %s (%d changes replayed)", directory, len(contents.records)
        )
        return store

    def get(self, path: Sequence[str] = ()) -> Any:
        """A deep copy of the JSON value at ``path`` (the whole tree by default), or ``None`` if absent."""
        with self._lock:
            node = self._tree.lookup(_checked_path(path))
            return None if node is None else to_json(node)

    def contains(self, path: Sequence[str]) -> bool:
        """True when a node exists at ``path`` (a ``null`` value exists)."""
        with self._lock:
            return self._tree.lookup(_checked_path(path)) is not None

    def timestamp(self, path: Sequence[str]) -> int | None:
        """When the node at ``path`` was last written, in ms; for an object, its newest leaf."""
        with self._lock:
            node = self._tree.lookup(_checked_path(path))
            return None if node is None else node_timestamp(node)

    def merge(
        self, path: Sequence[str], value: Mapping[str, Any], *, timestamp: int, strict: bool = False
    ) -> list[ConfigChange]:
        """Merge ``value`` into the object at ``path``, last writer wins per node.

        Objects merge key by key. Scalars and lists replace the stored node whole, unless the stored node
        is newer than ``timestamp``: then it is kept. An equal timestamp lets the update win. A stored
        scalar on the way to ``path`` is treated like any other node in the way of an object.

        Args:
            strict: raise instead of keeping newer nodes (IPC ``UpdateConfiguration``).

        Raises:
            StaleUpdateError: with ``strict``, a node the update touches is newer; nothing changed.
            ConfigError: ``value`` is not a JSON object, or ``timestamp`` not a valid time.
        """
        key_path = _checked_path(path)
        _check_timestamp(timestamp)
        update = _build_object(value, timestamp, key_path)
        with self._lock:
            self._check_open()
            if strict:
                stale = self._tree.find_stale(key_path, update, timestamp)
                if stale is not None:
                    stale_path, stored = stale
                    raise StaleUpdateError(stale_path, stored_timestamp=stored, update_timestamp=timestamp)
            effects = self._tree.merge(key_path, update, timestamp, fill_only=False)
            return self._commit(effects, _lines(effects), _diffs(effects))

    def set(self, path: Sequence[str], value: Any, *, timestamp: int) -> list[ConfigChange]:
        """Replace the node at ``path`` with ``value``, whatever the stored timestamps.

        Missing objects on the way are created; scalars on the way are replaced by objects.

        Raises:
            ConfigError: ``value`` is not JSON (or, at the root, not an object), or ``timestamp`` is bad.
        """
        key_path = _checked_path(path)
        _check_timestamp(timestamp)
        node = (
            _build_object(value, timestamp, key_path) if not key_path else build(value, timestamp, key_path)
        )
        with self._lock:
            self._check_open()
            effects = self._tree.put(key_path, node, timestamp)
            return self._commit(effects, _lines(effects), _diffs(effects))

    def remove(self, path: Sequence[str], *, timestamp: int) -> list[ConfigChange]:
        """Remove the node at ``path`` whatever its timestamp; ``timestamp`` is what the log records.

        Removing the root empties the tree. Removing what is absent changes nothing.
        """
        key_path = _checked_path(path)
        _check_timestamp(timestamp)
        with self._lock:
            self._check_open()
            effects = self._tree.put(key_path, None, timestamp)
            return self._commit(effects, _lines(effects), _diffs(effects))

    def replace_all(self, tree: Mapping[str, Any]) -> list[ConfigChange]:
        """Make the whole tree exactly ``tree`` (a rollback), every node stamped with the current time."""
        timestamp = self._clock()
        root = _build_object(tree, timestamp, ())
        with self._lock:
            self._check_open()
            effects = self._tree.put((), root, timestamp)
            return self._commit(effects, _lines(effects), _diffs(effects))

    def apply_component_update(
        self,
        component: str,
        *,
        defaults: Mapping[str, Any],
        merge: Mapping[str, Any] | None,
        reset: Sequence[str],
        timestamp: int,
    ) -> list[ConfigChange]:
        """Update ``services.<component>.configuration`` as a Greengrass deployment does.

        In order: remove each ``reset`` JSON pointer (``""`` removes everything), fill what is missing
        from the recipe's ``defaults`` (stamped 1, so a value already present is never replaced by a
        default), then merge ``merge`` with ``timestamp``, keeping stored nodes that are newer.
        Everything is checked before anything changes, and the whole update is one log batch, so it
        is applied entirely or not at all, even across a crash.

        Raises:
            InvalidPointerError: a reset pointer does not parse.
            ConfigError: a reset pointer addresses an element of a list (only whole lists can be
                reset), a value is not JSON, or ``timestamp`` is bad.
        """
        if not isinstance(component, str) or not component:
            raise ConfigError(f"The component name must be a non-empty string, got {component!r}")
        if isinstance(reset, str):
            raise TypeError(f"reset must be a sequence of JSON pointers, not the string {reset!r}")
        _check_timestamp(timestamp)
        config_path: ConfigPath = ("services", component, "configuration")
        default_node = _build_object(defaults, DEFAULTS_TIMESTAMP, config_path)
        merge_node = None if merge is None else _build_object(merge, timestamp, config_path)
        with self._lock:
            self._check_open()
            reset_paths = [self._checked_reset(pointer, config_path) for pointer in reset]
            before = self._tree.lookup(config_path)
            before = None if before is None else clone(before)
            effects: list[Effect] = []
            for reset_path in reset_paths:
                effects.extend(self._tree.put(reset_path, None, timestamp))
            effects.extend(self._tree.merge(config_path, default_node, DEFAULTS_TIMESTAMP, fill_only=True))
            # Lines are made before the merge stage: it may change nodes the defaults stage inserted.
            lines = _lines(effects)
            if merge_node is not None:
                merged = self._tree.merge(config_path, merge_node, timestamp, fill_only=False)
                effects.extend(merged)
                lines.extend(_lines(merged))
            return self._commit(effects, lines, diff(before, self._tree.lookup(config_path), config_path))

    def subscribe(self, prefix: Sequence[str], callback: ChangeCallback) -> Callable[[], None]:
        """Call ``callback`` for every change at or under ``prefix``, and for every change to an ancestor
        that adds, replaces or removes something at ``prefix``.

        Returns:
            A function that cancels the subscription (calling it twice is harmless).
        """
        key_path = _checked_path(prefix)
        with self._lock:
            token = self._next_subscriber
            self._next_subscriber += 1
            self._subscribers[token] = (key_path, callback)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(token, None)

        return unsubscribe

    def write_effective(self, path: Path) -> bool:
        """Dump the tree as YAML to ``path`` for people to read, atomically, unless it already holds it. Blocks.

        Keys starting with ``_`` are left out: they are private runtime state, tokens among them. The first
        line is a comment with a digest of the tree, so a restart with nothing changed neither imports PyYAML
        nor rewrites the file. Returns whether the file was written.
        """
        with self._lock:
            tree = to_json(self._tree.root, public=True)
        header = _effective_header(tree)
        if _first_line(path) == header:
            return False
        # Imported here: only a changed tree needs PyYAML, which is slow to import at start.
        import yaml

        text = yaml.safe_dump(tree, sort_keys=False, default_flow_style=False, allow_unicode=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, (header + text).encode())
        return True

    def compact(self) -> None:
        """Write a fresh snapshot and empty the log. Blocks.

        Raises:
            ConfigError: the snapshot could not be written; the log still holds everything.
        """
        with self._lock:
            self._check_open()
            snapshot_path = self.directory / SNAPSHOT_NAME
            try:
                write_snapshot(snapshot_path, self._tree.root)
                self._log.truncate()
            except OSError as exc:
                raise ConfigError(
                    f"Could not compact the configuration into {str(snapshot_path)!r}: {exc}"
                ) from exc
            logger.debug("Compacted the configuration into %s", snapshot_path)

    def close(self) -> None:
        """Close the log; later changes raise ``RuntimeError``. Reads still work. Idempotent."""
        with self._lock:
            self._closed = True
            self._log.close()

    def __enter__(self) -> ConfigStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"The configuration store in {str(self.directory)!r} is closed")

    def _checked_reset(self, pointer: str, config_path: ConfigPath) -> ConfigPath:
        if not isinstance(pointer, str):
            raise ConfigError(f"Reset pointer {pointer!r} is a {type(pointer).__name__}, not a string")
        keys = parse_pointer(pointer)
        node = self._tree.lookup(config_path)
        for depth in range(len(keys)):
            if isinstance(node, Leaf) and isinstance(node.value, list):
                list_path = config_path + keys[:depth]
                msg = (
                    f"Reset pointer {pointer!r} addresses an element of the list at {describe(list_path)}; "
                    "only whole lists can be reset"
                )
                raise ConfigError(msg, path=config_path + keys)
            node = descend(node, keys[depth : depth + 1])
        return config_path + keys

    def _commit(
        self, effects: list[Effect], lines: list[dict[str, Any]], changes: list[NodeChange]
    ) -> list[ConfigChange]:
        if lines:
            try:
                self._log.append(lines)
            except OSError as exc:
                self._tree.undo(effects)
                msg = f"Could not write to the configuration log in {str(self.directory)!r}: {exc}"
                raise ConfigError(msg) from exc
        if self._log.records >= self._compact_after:
            try:
                self.compact()
            except ConfigError:
                # The change is durable in the log; compaction will be tried again after the next one.
                logger.exception("Automatic compaction of the configuration failed")
        self._notify(changes)
        return [change.change for change in changes]

    def _notify(self, changes: list[NodeChange]) -> None:
        if not changes or not self._subscribers:
            return
        subscribers = list(self._subscribers.items())
        for change in changes:
            path = change.change.path
            for token, (prefix, callback) in subscribers:
                # A callback may unsubscribe others (or itself) while this batch is delivered.
                if token not in self._subscribers or not _affects(change, path, prefix):
                    continue
                try:
                    callback(change.change)
                except Exception:
                    logger.exception("Configuration subscriber %r failed on a change at %s", callback, path)


def _affects(change: NodeChange, path: ConfigPath, prefix: ConfigPath) -> bool:
    if path[: len(prefix)] == prefix:
        return True
    if prefix[: len(path)] != path:
        return False
    # The change is at an ancestor of the prefix: it matters if something was or is at the prefix.
    below = prefix[len(path) :]
    return descend(change.old, below) is not None or descend(change.new, below) is not None


def _lines(effects: list[Effect]) -> list[dict[str, Any]]:
    return [line for effect in effects if (line := record_line(effect)) is not None]


def _diffs(effects: list[Effect]) -> list[NodeChange]:
    return [change for effect in effects for change in diff(effect.old, effect.new, effect.path)]


def _checked_path(path: Sequence[str]) -> ConfigPath:
    if isinstance(path, str):
        raise TypeError(f"A configuration path is a sequence of keys, not the string {path!r}")
    key_path = tuple(path)
    for index, key in enumerate(key_path):
        if not isinstance(key, str):
            raise ConfigError(f"Key {index} of path {key_path!r} is a {type(key).__name__}, not a string")
    return key_path


def _check_timestamp(timestamp: int) -> None:
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp < 0:
        raise ConfigError(f"timestamp must be a non-negative integer of milliseconds, got {timestamp!r}")


def _build_object(value: Any, timestamp: int, path: ConfigPath) -> Branch:
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"Value for {describe(path)} must be an object, got a {type(value).__name__}", path=path
        )
    node = build(value, timestamp, path)
    assert isinstance(node, Branch)
    return node


def _effective_header(tree: Any) -> str:
    """The comment line ``effective.yaml`` starts with: a digest of the public tree, key order included."""
    digest = blake2b(json.dumps(tree, separators=(",", ":")).encode(), digest_size=32).hexdigest()
    return f"# Edgewise effective configuration (a read-only view), tree blake2b-256:{digest}\n"


def _first_line(path: Path) -> str | None:
    """The first line of ``path`` with its newline, or ``None`` when it cannot be read. Blocks."""
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            return file.readline()
    except OSError:
        return None

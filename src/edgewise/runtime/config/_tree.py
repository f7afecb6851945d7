"""The in-memory configuration tree: timestamped nodes and the rules for merging, setting and removing.

No I/O here. Every mutation returns the :class:`Effect` list it made, in order: the store writes each
effect to the transaction log, diffs it for subscribers, and undoes the list if the write fails.

An object is a :class:`Branch`; everything else, lists included, is a :class:`Leaf` that is replaced
whole. Each leaf carries the millisecond timestamp of its last write, and each branch the timestamp of
its creation, which stands for it while it has no children (see :func:`node_timestamp`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from edgewise.runtime.config._pointer import format_pointer
from edgewise.runtime.config._types import ConfigChange, ConfigPath
from edgewise.runtime.config.errors import ConfigError


@dataclass(slots=True)
class Leaf:
    """A JSON scalar or list, owned by the tree (never shared with callers)."""

    value: Any
    timestamp: int


@dataclass(slots=True)
class Branch:
    """A JSON object; ``stamp`` is when it was created."""

    children: dict[str, Node]
    stamp: int


Node: TypeAlias = "Leaf | Branch"


@dataclass(frozen=True, slots=True)
class Effect:
    """The node at ``path`` went from ``old`` to ``new`` (``None``: absent), written at ``timestamp``.

    ``new`` always holds one timestamp throughout (every leaf and branch below it), so the effect can
    be logged as one value and one timestamp.
    """

    path: ConfigPath
    old: Node | None
    new: Node | None
    timestamp: int


@dataclass(frozen=True, slots=True)
class NodeChange:
    """A :class:`ConfigChange` with the nodes before and after, to tell who is affected by it."""

    change: ConfigChange
    old: Node | None
    new: Node | None


def describe(path: ConfigPath) -> str:
    """Name a path in messages, as a JSON pointer."""
    return repr(format_pointer(path)) if path else "the root"


def is_private(path: ConfigPath) -> bool:
    """True for a path under a key starting with ``_``: such nodes live in memory only."""
    return any(key.startswith("_") for key in path)


def build(value: Any, timestamp: int, path: ConfigPath) -> Node:
    """Copy a JSON value into a fresh node, every part of it stamped with ``timestamp``.

    Raises:
        ConfigError: something in ``value`` is not JSON; the error names where.
    """
    if isinstance(value, Mapping):
        children: dict[str, Node] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                msg = f"Key {key!r} under {describe(path)} is a {type(key).__name__}, not a string"
                raise ConfigError(msg, path=path)
            children[key] = build(item, timestamp, (*path, key))
        return Branch(children, timestamp)
    return Leaf(_json_copy(value, path), timestamp)


def _json_copy(value: Any, path: ConfigPath) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"Value at {describe(path)} is {value}, which JSON cannot hold", path=path)
        return value
    if isinstance(value, list | tuple):
        return [_json_copy(item, (*path, str(index))) for index, item in enumerate(value)]
    if isinstance(value, Mapping):
        copied = {}
        for key, item in value.items():
            if not isinstance(key, str):
                msg = f"Key {key!r} under {describe(path)} is a {type(key).__name__}, not a string"
                raise ConfigError(msg, path=path)
            copied[key] = _json_copy(item, (*path, key))
        return copied
    msg = f"Value at {describe(path)} is a {type(value).__name__}, which is not a JSON value"
    raise ConfigError(msg, path=path)


def to_json(node: Node, *, public: bool = False) -> Any:
    """A deep copy of the node as plain JSON; with ``public``, without the keys starting with ``_``."""
    if isinstance(node, Leaf):
        return _json_copy(node.value, ())
    return {
        key: to_json(child, public=public)
        for key, child in node.children.items()
        if not (public and key.startswith("_"))
    }


def clone(node: Node) -> Node:
    """A deep copy of the node, timestamps included."""
    if isinstance(node, Leaf):
        return Leaf(_json_copy(node.value, ()), node.timestamp)
    return Branch({key: clone(child) for key, child in node.children.items()}, node.stamp)


def node_timestamp(node: Node) -> int:
    """A leaf's timestamp; for a branch the newest below it, or its creation time when it is empty."""
    if isinstance(node, Leaf):
        return node.timestamp
    if not node.children:
        return node.stamp
    return max(node_timestamp(child) for child in node.children.values())


def json_equal(left: Any, right: Any) -> bool:
    """Equality of JSON values, where ``1``, ``1.0`` and ``true`` all differ (Python says they are equal)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, list):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(json_equal(left[key], right[key]) for key in left)
    return bool(left == right)


def descend(node: Node | None, path: ConfigPath) -> Node | None:
    """The node at ``path`` below ``node``, or ``None``; lists are leaves, so nothing is below them."""
    for key in path:
        if not isinstance(node, Branch):
            return None
        node = node.children.get(key)
    return node


def diff(old: Node | None, new: Node | None, path: ConfigPath) -> list[NodeChange]:
    """The changes from ``old`` to ``new`` at ``path``, each at the highest node that differs."""
    if old is None and new is None:
        return []
    if new is None:
        return [NodeChange(ConfigChange(path, "removed"), old, new)]
    if old is None:
        return [NodeChange(ConfigChange(path, "changed"), old, new)]
    if isinstance(old, Branch) and isinstance(new, Branch):
        changes: list[NodeChange] = []
        for key, child in new.children.items():
            changes.extend(diff(old.children.get(key), child, (*path, key)))
        for key, child in old.children.items():
            if key not in new.children:
                changes.append(NodeChange(ConfigChange((*path, key), "removed"), child, None))
        return changes
    if isinstance(old, Leaf) and isinstance(new, Leaf) and json_equal(old.value, new.value):
        return []
    return [NodeChange(ConfigChange(path, "changed"), old, new)]


def _keeps(stored: Node, incoming: Node, timestamp: int) -> bool:
    """True when a last-writer-wins merge keeps ``stored`` rather than write ``incoming``."""
    if node_timestamp(stored) > timestamp:
        return True
    # An equal value with a newer timestamp is still written: later stale checks must see the new time.
    return (
        isinstance(stored, Leaf)
        and isinstance(incoming, Leaf)
        and stored.timestamp == timestamp
        and json_equal(stored.value, incoming.value)
    )


def _wrap(path: ConfigPath, node: Node, timestamp: int) -> Node:
    for key in reversed(path):
        node = Branch({key: node}, timestamp)
    return node


class Tree:
    """The whole configuration: a root object and the operations that change it."""

    def __init__(self, root: Branch | None = None) -> None:
        self.root = root if root is not None else Branch({}, 0)

    def lookup(self, path: ConfigPath) -> Node | None:
        """The node at ``path``, or ``None``."""
        return descend(self.root, path)

    def put(self, path: ConfigPath, node: Node | None, timestamp: int) -> list[Effect]:
        """Replace the node at ``path`` with ``node`` (``None``: remove it), whatever its timestamp.

        Missing ancestors are created and ancestors that are leaves become objects. Removing the root
        leaves an empty root. ``node`` must already hold ``timestamp`` throughout.
        """
        if not path:
            old_root = self.root
            self.root = node if isinstance(node, Branch) else Branch({}, timestamp)
            return [Effect((), old_root, self.root, timestamp)]
        parent = self.root
        for depth, key in enumerate(path[:-1]):
            child = parent.children.get(key)
            if not isinstance(child, Branch):
                if node is None:
                    return []
                wrapped = _wrap(path[depth + 1 :], node, timestamp)
                parent.children[key] = wrapped
                return [Effect(path[: depth + 1], child, wrapped, timestamp)]
            parent = child
        key = path[-1]
        old = parent.children.get(key)
        if node is None:
            if old is None:
                return []
            del parent.children[key]
        else:
            parent.children[key] = node
        return [Effect(path, old, node, timestamp)]

    def merge(self, path: ConfigPath, update: Branch, timestamp: int, *, fill_only: bool) -> list[Effect]:
        """Merge ``update`` (built with ``timestamp``) into the object at ``path``, last writer wins.

        Objects merge key by key. Any other node is replaced whole, unless the stored node is newer than
        ``timestamp``; an equal timestamp lets the update win. With ``fill_only`` nothing present is
        replaced: only missing keys are added (how recipe defaults are applied).
        """
        effects: list[Effect] = []
        wrapped = _wrap(path, update, timestamp)
        assert isinstance(wrapped, Branch)
        self._merge_children(self.root, wrapped, (), timestamp, fill_only, effects)
        return effects

    def _merge_children(
        self,
        current: Branch,
        update: Branch,
        path: ConfigPath,
        timestamp: int,
        fill_only: bool,
        effects: list[Effect],
    ) -> None:
        for key, incoming in update.children.items():
            child_path = (*path, key)
            stored = current.children.get(key)
            if stored is None:
                current.children[key] = incoming
                effects.append(Effect(child_path, None, incoming, timestamp))
            elif isinstance(stored, Branch) and isinstance(incoming, Branch):
                self._merge_children(stored, incoming, child_path, timestamp, fill_only, effects)
            elif not (fill_only or _keeps(stored, incoming, timestamp)):
                current.children[key] = incoming
                effects.append(Effect(child_path, stored, incoming, timestamp))

    def find_stale(self, path: ConfigPath, update: Branch, timestamp: int) -> tuple[ConfigPath, int] | None:
        """The first node a :meth:`merge` of ``update`` would keep as newer, with its timestamp, if any."""
        wrapped = _wrap(path, update, timestamp)
        assert isinstance(wrapped, Branch)
        return self._find_stale(self.root, wrapped, (), timestamp)

    def _find_stale(
        self, current: Branch, update: Branch, path: ConfigPath, timestamp: int
    ) -> tuple[ConfigPath, int] | None:
        for key, incoming in update.children.items():
            stored = current.children.get(key)
            if stored is None:
                continue
            if isinstance(stored, Branch) and isinstance(incoming, Branch):
                found = self._find_stale(stored, incoming, (*path, key), timestamp)
                if found is not None:
                    return found
            elif (stored_timestamp := node_timestamp(stored)) > timestamp:
                return (*path, key), stored_timestamp
        return None

    def undo(self, effects: list[Effect]) -> None:
        """Put back what ``effects`` (the latest changes, in the order made) replaced."""
        for effect in reversed(effects):
            if not effect.path:
                assert isinstance(effect.old, Branch)
                self.root = effect.old
                continue
            parent = self.lookup(effect.path[:-1])
            assert isinstance(parent, Branch)
            if effect.old is None:
                del parent.children[effect.path[-1]]
            else:
                parent.children[effect.path[-1]] = effect.old

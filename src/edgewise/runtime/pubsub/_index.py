"""An index of MQTT topic filters that finds the filters a topic matches without trying each one.

Filters without wildcards sit in a dict keyed by the topic; filters with ``+`` or ``#`` in a trie with one
level per node, so a lookup costs the depth of the topic times the wildcard branches on its path, however
many unrelated filters are stored. The values under one filter keep their insertion order.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from edgewise.topics import has_wildcards

V = TypeVar("V", bound=Hashable)


class _Node(Generic[V]):
    __slots__ = ("children", "values")

    def __init__(self) -> None:
        self.children: dict[str, _Node[V]] = {}
        self.values: dict[V, None] = {}


class FilterIndex(Generic[V]):
    """Values stored under topic filters (assumed valid), looked up by concrete topic."""

    def __init__(self) -> None:
        self._exact: dict[str, dict[V, None]] = {}
        self._root: _Node[V] = _Node()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, topic_filter: str, value: V) -> None:
        """Store ``value`` under ``topic_filter``; a value already stored there is not added twice."""
        if has_wildcards(topic_filter):
            node = self._root
            for level in topic_filter.split("/"):
                child = node.children.get(level)
                if child is None:
                    child = node.children[level] = _Node()
                node = child
            values = node.values
        else:
            values = self._exact.setdefault(topic_filter, {})
        if value not in values:
            values[value] = None
            self._count += 1

    def remove(self, topic_filter: str, value: V) -> bool:
        """Remove ``value`` from under ``topic_filter``; False when it was not there."""
        if not has_wildcards(topic_filter):
            values = self._exact.get(topic_filter)
            if values is None or value not in values:
                return False
            del values[value]
            if not values:
                del self._exact[topic_filter]
            self._count -= 1
            return True
        path: list[tuple[_Node[V], str]] = []
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                return False
            path.append((node, level))
            node = child
        if value not in node.values:
            return False
        del node.values[value]
        self._count -= 1
        # Drop the nodes left empty so that removed filters cost neither memory nor lookup time.
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.values or child.children:
                break
            del parent.children[level]
        return True

    def match(self, topic: str) -> list[V]:
        """The values of every filter that matches ``topic`` (a valid topic without wildcards)."""
        found = list(self._exact.get(topic, ()))
        if not self._root.children:
            return found
        levels = topic.split("/")
        depth = len(levels)
        # MQTT: a filter that starts with a wildcard does not match a topic that starts with '$'.
        system = topic.startswith("$")
        pending = [(self._root, 0)]
        while pending:
            node, index = pending.pop()
            children = node.children
            wildcards_allowed = index > 0 or not system
            rest = children.get("#")
            if rest is not None and wildcards_allowed:
                found.extend(rest.values)
            if index == depth:
                found.extend(node.values)
                continue
            child = children.get(levels[index])
            if child is not None:
                pending.append((child, index + 1))
            one = children.get("+")
            if one is not None and wildcards_allowed:
                pending.append((one, index + 1))
        return found

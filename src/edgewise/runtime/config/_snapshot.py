"""The snapshot file: the whole tree with its timestamps, replaced atomically.

Format (one JSON document)::

    {"format": 1, "tree": NODE}
    NODE = {"T": <ms>, "V": <scalar or list>}        a leaf
         | {"T": <ms>, "C": {"<key>": NODE, ...}}   an object; T is its creation time

Keys starting with ``_`` are left out: they live in memory only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgewise.runtime.config._tree import Branch, Leaf, Node, build
from edgewise.runtime.config._types import ConfigPath
from edgewise.runtime.config.errors import ConfigError
from edgewise.runtime.files import write_atomically

_FORMAT = 1


def write_snapshot(path: Path, root: Branch) -> None:
    """Write the tree to ``path`` atomically (blocks; see :func:`write_atomically`)."""
    document = {"format": _FORMAT, "tree": _encode(root)}
    write_atomically(path, json.dumps(document, separators=(",", ":"), allow_nan=False).encode())


def read_snapshot(path: Path) -> Branch | None:
    """The tree stored at ``path``, or ``None`` when there is no such file.

    Raises:
        ConfigError: the file exists but is not a snapshot this module wrote.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ConfigError(f"Configuration snapshot {str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        msg = f"Configuration snapshot {str(path)!r} does not have 'format': {_FORMAT}"
        raise ConfigError(msg)
    try:
        root = _decode(document.get("tree"), ())
    except ConfigError as exc:
        raise ConfigError(f"Configuration snapshot {str(path)!r} is damaged: {exc}", path=exc.path) from exc
    if not isinstance(root, Branch):
        raise ConfigError(f"Configuration snapshot {str(path)!r} does not hold an object at its root")
    return root


def _encode(node: Node) -> dict[str, Any]:
    if isinstance(node, Leaf):
        return {"T": node.timestamp, "V": node.value}
    children = {key: _encode(child) for key, child in node.children.items() if not key.startswith("_")}
    return {"T": node.stamp, "C": children}


def _decode(encoded: Any, path: ConfigPath) -> Node:
    if not isinstance(encoded, dict):
        raise ConfigError(f"node at {path!r} is not an object", path=path)
    timestamp = encoded.get("T")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        raise ConfigError(f"node at {path!r} has no integer 'T'", path=path)
    if "C" in encoded:
        children = encoded["C"]
        if not isinstance(children, dict):
            raise ConfigError(f"node at {path!r} has a 'C' that is not an object", path=path)
        decoded = {key: _decode(child, (*path, key)) for key, child in children.items()}
        return Branch(decoded, timestamp)
    if "V" not in encoded or isinstance(encoded["V"], dict):
        raise ConfigError(f"node at {path!r} has neither 'C' nor a scalar or list 'V'", path=path)
    return build(encoded["V"], timestamp, path)

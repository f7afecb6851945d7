"""JSON pointers (RFC 6901): the syntax of deployment ``reset`` paths and IPC key paths.

Pure helpers: they turn pointer text into a path of keys and back, and know nothing of the tree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from edgewise.runtime.config._types import ConfigPath
from edgewise.runtime.config.errors import InvalidPointerError

# RFC 6901 allows "~" only as the start of the escapes "~0" ("~") and "~1" ("/").
_BAD_ESCAPE = re.compile(r"~(?![01])")


def parse_pointer(text: str) -> ConfigPath:
    """Split a JSON pointer into the keys it names: ``"/a~1b/c"`` gives ``("a/b", "c")``.

    The empty pointer names the whole document and gives ``()``. Array indexes come back as the
    strings they are (``"0"``); whether a key addresses a list element is the caller's question.

    Raises:
        InvalidPointerError: the text is not empty and does not start with ``/``, or holds a ``~``
            that is not ``~0`` or ``~1``.
    """
    if text == "":
        return ()
    if not text.startswith("/"):
        raise InvalidPointerError(text, "it must be empty or start with '/'")
    tokens = text[1:].split("/")
    for token in tokens:
        if _BAD_ESCAPE.search(token):
            raise InvalidPointerError(text, f"in {token!r}, '~' must be followed by '0' or '1'")
    # "~1" first: "~01" must become "~1", not "/".
    return tuple(token.replace("~1", "/").replace("~0", "~") for token in tokens)


def format_pointer(path: Sequence[str]) -> str:
    """Write a path of keys as a JSON pointer, escaping ``~`` and ``/``; ``()`` gives ``""``."""
    return "".join("/" + key.replace("~", "~0").replace("/", "~1") for key in path)

"""The HTTP ``Range`` header of a download (RFC 9110 §14), reduced to what a resuming client sends.

One range is served: ``bytes=N-``, ``bytes=N-M`` or the suffix ``bytes=-N``. As the RFC allows, a header
that does not parse, names another unit or asks for several ranges is ignored (the whole file is sent); one
that parses but lies entirely beyond the file is unsatisfiable (416).
"""

from __future__ import annotations

import re

_RANGE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})", re.IGNORECASE)


class RangeNotSatisfiableError(Exception):
    """A range that starts at or beyond the end of the file (answered with 416)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"The range starts beyond the file's {size} bytes")
        self.size = size


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The first and last byte (inclusive) that ``header`` asks for in a ``size``-byte file; None for all.

    Raises:
        RangeNotSatisfiableError: the range lies beyond the file.
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text:
            return None
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiableError(size)
        return max(0, size - suffix), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None
    if first >= size:
        raise RangeNotSatisfiableError(size)
    return first, min(int(last_text), size - 1) if last_text else size - 1

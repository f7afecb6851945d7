"""JSON paths that pick one value out of a telemetry payload: ``temperature``, ``$.sensors.temp``,
``readings[0].value``, ``$['key with.dots']``.

The syntax is a small subset of JSONPath: an optional leading ``$`` (or ``$.``), keys separated by dots, list
indexes in brackets (``[0]``, non-negative) and quoted keys in brackets (``['a.b']`` or ``["a.b"]``, with ``\\``
escaping the quote or a backslash). A bare key holds no whitespace, dots, brackets or quotes. ``$`` alone is the
whole document. Pure Python: the device's inference component imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field

from edgewise.ml.errors import DatasetError

MAX_PATH_LENGTH = 256
MAX_STEPS = 32
#: Characters a bare (unquoted) key may not hold.
_BARE_KEY_STOP = frozenset(".[]'\"")

Step = str | int
#: Makes the error for one problem with the path being parsed.
_Fail = Callable[[str], DatasetError]


@dataclass(frozen=True)
class JsonPath:
    """A parsed path: ``text`` as given, ``steps`` the keys (``str``) and list indexes (``int``) in order."""

    text: str
    steps: tuple[Step, ...] = dataclass_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", _parse_steps(self.text, "path"))

    def __str__(self) -> str:
        return self.text

    @property
    def last_key(self) -> str | None:
        """The last key of the path (``value`` for ``readings[0].value``), ``None`` when it has no key."""
        for step in reversed(self.steps):
            if isinstance(step, str):
                return step
        return None

    def extract(self, document: object) -> object | None:
        """The value the path points at, or ``None`` when a step is absent or does not fit the document."""
        current = document
        for step in self.steps:
            if isinstance(step, str):
                if not isinstance(current, Mapping) or step not in current:
                    return None
                current = current[step]
            else:
                if not isinstance(current, list) or step >= len(current):
                    return None
                current = current[step]
        return current


def parse_path(text: str, *, field: str = "path") -> JsonPath:
    """Parse ``text``; ``DatasetError`` naming ``field`` and what is wrong when it is not a valid path."""
    _parse_steps(text, field)
    return JsonPath(text)


def _parse_steps(text: str, field: str) -> tuple[Step, ...]:
    def fail(problem: str) -> DatasetError:
        shown = text if len(text) <= MAX_PATH_LENGTH else text[:MAX_PATH_LENGTH] + "..."
        return DatasetError(f"{field}: {shown!r} {problem}")

    if not isinstance(text, str):
        raise DatasetError(f"{field}: must be a string, not {type(text).__name__}")
    if not text:
        raise fail("is empty")
    if len(text) > MAX_PATH_LENGTH:
        raise fail(f"is longer than {MAX_PATH_LENGTH} characters")
    steps: list[Step] = []
    position = 0
    # A key is expected at the start and after every dot; a bracket may follow any step.
    expect_key = True
    if text.startswith("$"):
        position = 1
        expect_key = False
        if text.startswith("$."):
            position = 2
            expect_key = True
            if text.startswith("$.["):
                raise fail("has '.' followed by '[' at position 1 (write $[...])")
        elif position < len(text) and text[position] != "[":
            raise fail("has a character after '$' that is neither '.' nor '['")
    while position < len(text):
        char = text[position]
        if expect_key and char != "[":
            end = position
            while end < len(text) and text[end] not in _BARE_KEY_STOP:
                if text[end].isspace():
                    raise fail(f"has whitespace in a key at position {end} (quote the key: ['...'])")
                end += 1
            if end == position:
                raise fail(f"has an empty key at position {position}")
            steps.append(text[position:end])
            position = end
        elif char == "[":
            step, position = _bracket(text, position, fail)
            steps.append(step)
        elif char == ".":
            position += 1
            if position == len(text):
                raise fail("ends with '.'")
            if text[position] == "[":
                raise fail(
                    f"has '.' followed by '[' at position {position - 1} (write a[...] without the dot)"
                )
            expect_key = True
            continue
        else:
            raise fail(f"has {char!r} at position {position} where '.', '[' or the end was expected")
        expect_key = False
        if len(steps) > MAX_STEPS:
            raise fail(f"has more than {MAX_STEPS} steps")
    if expect_key:
        raise fail("ends with '.'")
    return tuple(steps)


def _bracket(text: str, start: int, fail: _Fail) -> tuple[Step, int]:
    """Parse ``[N]`` or ``['key']`` at ``start``; return the step and the position after ``]``."""
    position = start + 1
    if position < len(text) and text[position] in "'\"":
        quote = text[position]
        position += 1
        key: list[str] = []
        while True:
            if position >= len(text):
                raise fail(f"has a quoted key at position {start} without its closing {quote}")
            char = text[position]
            if char == "\\":
                if position + 1 >= len(text) or text[position + 1] not in (quote, "\\"):
                    raise fail(
                        f"has a backslash at position {position} that escapes neither {quote} nor '\\'"
                    )
                key.append(text[position + 1])
                position += 2
            elif char == quote:
                position += 1
                break
            else:
                key.append(char)
                position += 1
        if position >= len(text) or text[position] != "]":
            raise fail(f"has a quoted key at position {start} not followed by ']'")
        if not key:
            raise fail(f"has an empty quoted key at position {start}")
        return "".join(key), position + 1
    end = text.find("]", position)
    if end == -1:
        raise fail(f"has '[' at position {start} without its ']'")
    digits = text[position:end]
    if not digits or not (digits.isascii() and digits.isdigit()):
        raise fail(f"has [{digits}] at position {start}: an index must be a non-negative integer")
    if len(digits) > 9:
        raise fail(f"has an index at position {start} larger than 999999999")
    return int(digits), end + 1

"""Reading recipe fields the way Greengrass Classic does: keys and enum values match case-insensitively.

Unknown keys are ignored, a ``null`` value counts as absent, and every type mismatch becomes a problem
recorded with its path instead of an exception, so one pass over a recipe reports everything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, TypeVar

from edgewise.recipe._errors import Problems

E = TypeVar("E", bound=StrEnum)


def child(path: str, key: str) -> str:
    """The path of ``key`` inside the mapping at ``path``."""
    return f"{path}.{key}" if path else key


def item(path: str, index: int) -> str:
    """The path of list item ``index`` inside the list at ``path``."""
    return f"{path}[{index}]"


def describe(value: object) -> str:
    """A short rendering of ``value`` for messages: scalars as written, containers by kind."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


class Fields:
    """The fields of one recipe mapping, looked up by name without regard to case."""

    def __init__(self, value: Mapping[Any, Any], path: str, problems: Problems) -> None:
        self.path = path
        self.problems = problems
        self._values: dict[str, Any] = {}
        spelled: dict[str, str] = {}
        for key, field_value in value.items():
            if not isinstance(key, str):
                continue  # cannot name any recipe field; ignored like any unknown key
            folded = key.casefold()
            if folded in spelled:
                problems.add(
                    child(path, key),
                    f"duplicates key {spelled[folded]!r} (recipe keys are case-insensitive)",
                )
                continue
            spelled[folded] = key
            self._values[folded] = field_value

    def get(self, name: str) -> Any:
        """The value of field ``name``, or None when it is absent or null."""
        return self._values.get(name.casefold())

    def path_of(self, name: str) -> str:
        """The path of field ``name``, spelled canonically."""
        return child(self.path, name)

    def require(self, name: str) -> Any:
        """Like :meth:`get`, but an absent field is a problem."""
        value = self.get(name)
        if value is None:
            self.problems.add(self.path_of(name), "is required")
        return value

    def text(self, name: str, *, required: bool = False) -> str | None:
        """A string field."""
        value = self.require(name) if required else self.get(name)
        if value is None:
            return None
        return expect_text(value, self.path_of(name), self.problems)

    def mapping(self, name: str) -> Mapping[Any, Any] | None:
        """A mapping field; absent gives None."""
        value = self.get(name)
        if value is None:
            return None
        return expect_mapping(value, self.path_of(name), self.problems)

    def sequence(self, name: str) -> Sequence[Any]:
        """A list field; absent gives an empty list."""
        value = self.get(name)
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            self.problems.add(self.path_of(name), f"expected a list, got {describe(value)}")
            return ()
        return value

    def choice(self, name: str, enum: type[E], default: E) -> E:
        """An enum field whose values match case-insensitively."""
        value = self.get(name)
        if value is None:
            return default
        return expect_choice(value, enum, self.path_of(name), self.problems) or default


def expect_text(value: Any, path: str, problems: Problems) -> str | None:
    """``value`` if it is a string; otherwise record a problem."""
    if isinstance(value, str):
        return value
    problems.add(path, f"expected a string, got {describe(value)}")
    return None


def expect_mapping(value: Any, path: str, problems: Problems) -> Mapping[Any, Any] | None:
    """``value`` if it is a mapping; otherwise record a problem."""
    if isinstance(value, Mapping):
        return value
    problems.add(path, f"expected a mapping, got {describe(value)}")
    return None


def expect_choice(value: Any, enum: type[E], path: str, problems: Problems) -> E | None:
    """The member of ``enum`` whose value matches ``value`` case-insensitively."""
    if isinstance(value, str):
        for member in enum:
            if member.value.casefold() == value.casefold():
                return member
    allowed = ", ".join(member.value for member in enum)
    problems.add(path, f"expected one of {allowed}, got {describe(value)}")
    return None


def expect_positive_number(value: Any, path: str, problems: Problems) -> float | None:
    """A number of seconds greater than zero; numeric strings such as ``"30"`` are accepted."""
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None:
        problems.add(path, f"expected a number, got {describe(value)}")
        return None
    if not math.isfinite(number) or number <= 0:
        problems.add(path, f"expected a number greater than 0, got {describe(value)}")
        return None
    return number


def expect_bool(value: Any, path: str, problems: Problems) -> bool | None:
    """A boolean; the strings ``"true"`` and ``"false"`` (any case) are accepted."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().casefold() in ("true", "false"):
        return value.strip().casefold() == "true"
    problems.add(path, f"expected true or false, got {describe(value)}")
    return None


def scalar_text(value: Any) -> str | None:
    """A scalar as environment-variable text (booleans as ``true``/``false``); None if not a scalar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    return None

"""The intrinsic functions of provisioning templates: their shape checked when a template is saved, their value
computed for one device when it registers.

Values: ``{"Ref": name}`` (a parameter, or ``AWS::NoValue`` to leave the value out), ``Fn::Join``,
``Fn::Select``, ``Fn::Split``, ``Fn::Sub``, ``Fn::FindInMap`` and ``Fn::If``. Conditions (the ``Conditions``
section and the first argument of ``Fn::If``): ``Fn::Equals``, ``Fn::Not``, ``Fn::And``, ``Fn::Or`` and
``{"Condition": name}``. A function is an object whose only key is the function's name, as in CloudFormation.

:class:`ValueChecker` records every problem with its path, so a template is refused with all of them at
once; :class:`Evaluator` raises :class:`InvalidRequestError` at the first value that a device's parameters
make impossible (a missing parameter, an index out of range, a string where a list belongs).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from edgewise.cloud.errors import InvalidRequestError

NO_VALUE_PARAMETER: Final = "AWS::NoValue"
#: How deep values may nest; deeper ones are refused rather than risking the interpreter's recursion limit.
MAX_DEPTH: Final = 32
#: The longest string a function may produce, so a device's parameters cannot blow one up.
MAX_RESULT_LENGTH: Final = 65_536
CONDITION_FUNCTIONS: Final = ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition")
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_INDEX = re.compile(r"[0-9]{1,9}")


class _NoValue:
    """The value of ``{"Ref": "AWS::NoValue"}``: the property, list item or entry it stands in is left out."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Final = _NoValue()


class Kind(enum.Enum):
    """What a value can be known to produce before any device's parameters are known."""

    STRING = "a string"
    LIST = "a list"
    OBJECT = "an object"
    SCALAR = "a number, boolean or null"
    NO_VALUE = "no value"
    #: Decided by the parameters (``Fn::FindInMap``, ``Fn::Select``, ``Fn::If`` of two kinds).
    ANY = "any value"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a template, and where."""

    path: str
    problem: str


def _is_function_key(key: Any) -> bool:
    return isinstance(key, str) and (key == "Ref" or key.startswith("Fn:"))


def function_name(value: Any) -> str | None:
    """The function ``value`` calls (``Ref`` or ``Fn::...``), if it is an object that calls one.

    ``Condition`` is a function only where a condition is expected: policy statements have a ``Condition`` key.
    """
    if isinstance(value, dict) and len(value) == 1:
        (key,) = value
        if _is_function_key(key):
            return str(key)
    return None


def _condition_function(value: Any) -> str | None:
    if isinstance(value, dict) and list(value) == ["Condition"]:
        return "Condition"
    return function_name(value)


def is_literal(value: Any) -> bool:
    """Whether ``value`` calls no function anywhere inside it."""
    if function_name(value) is not None:
        return False
    if isinstance(value, dict):
        return all(is_literal(item) for item in value.values())
    if isinstance(value, list):
        return all(is_literal(item) for item in value)
    return True


def _kind_of_literal(value: Any) -> Kind:
    if isinstance(value, str):
        return Kind.STRING
    if isinstance(value, list):
        return Kind.LIST
    if isinstance(value, dict):
        return Kind.OBJECT
    return Kind.SCALAR


def _union(first: Kind, second: Kind) -> Kind:
    return first if first is second else Kind.ANY


@dataclass
class ValueChecker:
    """Checks values against what the template declares, appending each problem to ``problems``."""

    parameters: frozenset[str]
    mappings: Mapping[str, Mapping[str, Mapping[str, Any]]]
    conditions: frozenset[str]
    problems: list[Problem] = field(default_factory=list)
    #: Conditions named by what was checked since the caller last cleared it (to find cycles).
    named_conditions: set[str] = field(default_factory=set)

    def _fail(self, path: str, problem: str) -> Kind:
        self.problems.append(Problem(path, problem))
        return Kind.ANY

    def expect(self, path: str, value: Any, wanted: Kind, *, optional: bool = False) -> Kind:
        """Check ``value`` and that it can produce ``wanted`` (or no value, when ``optional``)."""
        kind = self.value(path, value)
        if kind is Kind.NO_VALUE and not optional:
            return self._fail(path, "is required; AWS::NoValue cannot stand in for it")
        if kind not in (wanted, Kind.ANY, Kind.NO_VALUE):
            return self._fail(path, f"must be {wanted.value}, not {kind.value}")
        return kind

    def value(self, path: str, value: Any, depth: int = 0) -> Kind:
        """Check a value (literal or function call) and return what it produces."""
        if depth > MAX_DEPTH:
            return self._fail(path, f"nests more than {MAX_DEPTH} levels deep")
        name = function_name(value)
        if name is None:
            if isinstance(value, dict):
                for key, item in value.items():
                    if _is_function_key(key):
                        self._fail(f"{path}.{key}", "a function must be the only key of its object")
                    self.value(f"{path}.{key}", item, depth + 1)
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    self.value(f"{path}[{index}]", item, depth + 1)
            return _kind_of_literal(value)
        argument = value[name]
        if name in CONDITION_FUNCTIONS:
            return self._fail(path, f"{name} can only be used in Conditions")
        checks: dict[str, Callable[[str, Any, int], Kind]] = {
            "Ref": self._ref,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::Sub": self._sub,
            "Fn::FindInMap": self._find_in_map,
            "Fn::If": self._if,
        }
        if name not in checks:
            return self._fail(path, f"{name} is not a supported function ({', '.join(checks)})")
        return checks[name](path, argument, depth + 1)

    def _string(self, path: str, value: Any, depth: int) -> None:
        kind = self.value(path, value, depth)
        if kind not in (Kind.STRING, Kind.ANY, Kind.NO_VALUE):
            self._fail(path, f"must be a string, not {kind.value}")

    def _list_of_values(self, path: str, value: Any, depth: int, *, strings: bool = False) -> None:
        if isinstance(value, list):
            for index, item in enumerate(value):
                if strings:
                    self._string(f"{path}[{index}]", item, depth + 1)
                else:
                    self.value(f"{path}[{index}]", item, depth + 1)
            return
        kind = self.value(path, value, depth)
        if kind not in (Kind.LIST, Kind.ANY):
            self._fail(path, f"must be a list, not {kind.value}")

    def _ref(self, path: str, argument: Any, depth: int) -> Kind:
        if argument == NO_VALUE_PARAMETER:
            return Kind.NO_VALUE
        if not isinstance(argument, str):
            return self._fail(path, "Ref expects a parameter name")
        if argument not in self.parameters:
            return self._fail(path, f"refers to {argument!r}, which is not a declared parameter")
        return Kind.STRING

    def _join(self, path: str, argument: Any, depth: int) -> Kind:
        at = f"{path}.Fn::Join"
        if not isinstance(argument, list) or len(argument) != 2:
            return self._fail(path, "Fn::Join expects [delimiter, [values]]")
        self._string(f"{at}[0]", argument[0], depth)
        self._list_of_values(f"{at}[1]", argument[1], depth, strings=True)
        return Kind.STRING

    def _select(self, path: str, argument: Any, depth: int) -> Kind:
        at = f"{path}.Fn::Select"
        if not isinstance(argument, list) or len(argument) != 2:
            return self._fail(path, "Fn::Select expects [index, [values]]")
        index = argument[0]
        if isinstance(index, bool) or (isinstance(index, int) and index < 0):
            self._fail(f"{at}[0]", "must be a non-negative integer")
        elif not isinstance(index, int):
            if isinstance(index, str) and _INDEX.fullmatch(index) is None:
                self._fail(f"{at}[0]", f"{index!r} is not a non-negative integer")
            else:
                self._string(f"{at}[0]", index, depth)
        self._list_of_values(f"{at}[1]", argument[1], depth)
        return Kind.ANY

    def _split(self, path: str, argument: Any, depth: int) -> Kind:
        at = f"{path}.Fn::Split"
        if not isinstance(argument, list) or len(argument) != 2:
            return self._fail(path, "Fn::Split expects [delimiter, string]")
        if argument[0] == "":
            self._fail(f"{at}[0]", "the delimiter cannot be empty")
        self._string(f"{at}[0]", argument[0], depth)
        self._string(f"{at}[1]", argument[1], depth)
        return Kind.LIST

    def _sub(self, path: str, argument: Any, depth: int) -> Kind:
        at = f"{path}.Fn::Sub"
        variables: Any = {}
        text = argument
        if isinstance(argument, list) and len(argument) == 2:
            text, variables = argument
        if not isinstance(text, str) or not isinstance(variables, dict):
            return self._fail(
                path, 'Fn::Sub expects "text with ${name}" or ["text with ${name}", {variables}]'
            )
        for name, variable in variables.items():
            self._string(f"{at}[1].{name}", variable, depth + 1)
        for match in _SUB_VARIABLE.finditer(text):
            name = match.group(1)
            if name.startswith("!"):
                continue
            if name not in variables and name not in self.parameters:
                self._fail(path, f"${{{name}}} is neither a variable of Fn::Sub nor a declared parameter")
        return Kind.STRING

    def _find_in_map(self, path: str, argument: Any, depth: int) -> Kind:
        at = f"{path}.Fn::FindInMap"
        if not isinstance(argument, list) or len(argument) != 3:
            return self._fail(path, "Fn::FindInMap expects [map name, top-level key, second-level key]")
        for index, item in enumerate(argument):
            self._string(f"{at}[{index}]", item, depth)
        map_name, first, second = argument
        if isinstance(map_name, str):
            if map_name not in self.mappings:
                return self._fail(f"{at}[0]", f"{map_name!r} is not a map of Mappings")
            table = self.mappings[map_name]
            if isinstance(first, str):
                if first not in table:
                    return self._fail(f"{at}[1]", f"map {map_name!r} has no key {first!r}")
                if isinstance(second, str) and second not in table[first]:
                    return self._fail(f"{at}[2]", f"map {map_name!r} has no key {first!r}.{second!r}")
        return Kind.ANY

    def _if(self, path: str, argument: Any, depth: int) -> Kind:
        at = f"{path}.Fn::If"
        if not isinstance(argument, list) or len(argument) != 3:
            return self._fail(path, "Fn::If expects [condition name, value if true, value if false]")
        self._condition_name(f"{at}[0]", argument[0])
        return _union(self.value(f"{at}[1]", argument[1], depth), self.value(f"{at}[2]", argument[2], depth))

    def _condition_name(self, path: str, name: Any) -> None:
        if not isinstance(name, str) or name not in self.conditions:
            self._fail(path, f"{name!r} is not a condition declared in Conditions")
        else:
            self.named_conditions.add(name)

    def condition(self, path: str, value: Any, depth: int = 0) -> None:
        """Check a condition: Fn::Equals, Fn::Not, Fn::And, Fn::Or or ``{"Condition": name}``."""
        if depth > MAX_DEPTH:
            self._fail(path, f"nests more than {MAX_DEPTH} levels deep")
            return
        name = _condition_function(value)
        if name is None or name not in CONDITION_FUNCTIONS:
            self._fail(
                path, f"must be a condition: an object with one key of {', '.join(CONDITION_FUNCTIONS)}"
            )
            return
        argument = value[name]
        where = f"{path}.{name}"
        if name == "Condition":
            self._condition_name(where, argument)
        elif name == "Fn::Equals":
            if not isinstance(argument, list) or len(argument) != 2:
                self._fail(where, "Fn::Equals expects [value, value]")
            else:
                for index, item in enumerate(argument):
                    self.value(f"{where}[{index}]", item, depth + 1)
        elif name == "Fn::Not":
            if not isinstance(argument, list) or len(argument) != 1:
                self._fail(where, "Fn::Not expects [condition]")
            else:
                self.condition(f"{where}[0]", argument[0], depth + 1)
        elif not isinstance(argument, list) or not 2 <= len(argument) <= 10:
            self._fail(where, f"{name} expects a list of 2 to 10 conditions")
        else:
            for index, item in enumerate(argument):
                self.condition(f"{where}[{index}]", item, depth + 1)


class Evaluator:
    """Computes checked values for one device; ``parameters`` holds every parameter that has a value."""

    def __init__(
        self,
        parameters: Mapping[str, str],
        *,
        mappings: Mapping[str, Mapping[str, Mapping[str, Any]]],
        conditions: Mapping[str, Any],
    ) -> None:
        self._parameters = parameters
        self._mappings = mappings
        self._conditions = conditions
        self._decided: dict[str, bool] = {}
        self._deciding: set[str] = set()

    def value(self, path: str, value: Any) -> Any:
        """The value of ``value``: strings, lists, objects and scalars, or :data:`NO_VALUE`."""
        name = function_name(value)
        if name is None:
            if isinstance(value, dict):
                items = ((key, self.value(f"{path}.{key}", item)) for key, item in value.items())
                return {key: item for key, item in items if item is not NO_VALUE}
            if isinstance(value, list):
                values = (self.value(f"{path}[{index}]", item) for index, item in enumerate(value))
                return [item for item in values if item is not NO_VALUE]
            return value
        argument = value[name]
        where = f"{path}.{name}"
        if name == "Ref":
            return NO_VALUE if argument == NO_VALUE_PARAMETER else self._parameter(argument)
        if name == "Fn::Join":
            return self._join(where, argument)
        if name == "Fn::Select":
            return self._select(where, argument)
        if name == "Fn::Split":
            delimiter = self.string(f"{where}[0]", argument[0])
            if not delimiter:
                raise InvalidRequestError(f"{where}[0]", "the delimiter of Fn::Split came out empty")
            return self.string(f"{where}[1]", argument[1]).split(delimiter)
        if name == "Fn::Sub":
            return self._sub(where, argument)
        if name == "Fn::FindInMap":
            return self._find_in_map(where, argument)
        if name == "Fn::If":
            branch = 1 if self.decide(argument[0]) else 2
            return self.value(f"{where}[{branch}]", argument[branch])
        raise InvalidRequestError(path, f"{name} is not a value function")

    def string(self, path: str, value: Any) -> str:
        """The value of ``value``, which must be a string."""
        result = self.value(path, value)
        if not isinstance(result, str):
            raise InvalidRequestError(path, f"must come out a string, not {_describe(result)}")
        return result

    def strings(self, path: str, value: Any) -> list[str]:
        """The value of ``value``, which must be a list of strings."""
        result = self.value(path, value)
        if not isinstance(result, list) or not all(isinstance(item, str) for item in result):
            raise InvalidRequestError(path, f"must come out a list of strings, not {_describe(result)}")
        return result

    def decide(self, name: str) -> bool:
        """The truth of the condition ``name`` (each is decided once)."""
        if name not in self._decided:
            if name in self._deciding:
                raise InvalidRequestError(f"Conditions.{name}", "depends on itself")
            self._deciding.add(name)
            self._decided[name] = self.condition(f"Conditions.{name}", self._conditions[name])
            self._deciding.discard(name)
        return self._decided[name]

    def condition(self, path: str, value: Any) -> bool:
        """The truth of a checked condition."""
        name = _condition_function(value)
        argument = value[name]
        where = f"{path}.{name}"
        if name == "Condition":
            return self.decide(argument)
        if name == "Fn::Equals":
            return bool(self.value(f"{where}[0]", argument[0]) == self.value(f"{where}[1]", argument[1]))
        if name == "Fn::Not":
            return not self.condition(f"{where}[0]", argument[0])
        results = (self.condition(f"{where}[{index}]", item) for index, item in enumerate(argument))
        return all(results) if name == "Fn::And" else any(results)

    def _parameter(self, name: str) -> str:
        if name not in self._parameters:
            raise InvalidRequestError(f"parameters.{name}", "is required by the template and has no Default")
        return self._parameters[name]

    def _join(self, path: str, argument: Sequence[Any]) -> str:
        delimiter = self.string(f"{path}[0]", argument[0])
        if isinstance(argument[1], list):
            values = self.value(f"{path}[1]", argument[1])
            for index, item in enumerate(values):
                if not isinstance(item, str):
                    raise InvalidRequestError(
                        f"{path}[1][{index}]", f"must be a string, not {_describe(item)}"
                    )
        else:
            values = self.strings(f"{path}[1]", argument[1])
        _check_length(path, sum(map(len, values)) + len(delimiter) * max(len(values) - 1, 0))
        return delimiter.join(values)

    def _select(self, path: str, argument: Sequence[Any]) -> Any:
        index = argument[0]
        if not isinstance(index, int):
            text = self.string(f"{path}[0]", index)
            if _INDEX.fullmatch(text) is None:
                raise InvalidRequestError(f"{path}[0]", f"{text!r} is not a non-negative integer")
            index = int(text)
        values = self.value(f"{path}[1]", argument[1])
        if not isinstance(values, list):
            raise InvalidRequestError(f"{path}[1]", f"must come out a list, not {_describe(values)}")
        if index >= len(values):
            raise InvalidRequestError(f"{path}[0]", f"index {index} is out of range for {len(values)} values")
        return values[index]

    def _sub(self, path: str, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        pieces: list[str] = []
        position = 0
        for match in _SUB_VARIABLE.finditer(text):
            pieces.append(text[position : match.start()])
            name = match.group(1)
            if name.startswith("!"):
                pieces.append("${" + name[1:] + "}")
            elif name in variables:
                pieces.append(self.string(f"{path}[1].{name}", variables[name]))
            else:
                pieces.append(self._parameter(name))
            position = match.end()
            _check_length(path, sum(map(len, pieces)))
        pieces.append(text[position:])
        return "".join(pieces)

    def _find_in_map(self, path: str, argument: Sequence[Any]) -> Any:
        map_name, first, second = (
            self.string(f"{path}[{index}]", item) for index, item in enumerate(argument)
        )
        table = self._mappings.get(map_name)
        if table is None:
            raise InvalidRequestError(f"{path}[0]", f"{map_name!r} is not a map of Mappings")
        if first not in table or second not in table[first]:
            raise InvalidRequestError(path, f"map {map_name!r} has no key {first!r}.{second!r}")
        return table[first][second]


def _check_length(path: str, length: int) -> None:
    if length > MAX_RESULT_LENGTH:
        raise InvalidRequestError(
            path, f"would come out {length} characters long; at most {MAX_RESULT_LENGTH}"
        )


def _describe(value: Any) -> str:
    if value is NO_VALUE:
        return "no value (AWS::NoValue)"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"{type(value).__name__} {value!r}"

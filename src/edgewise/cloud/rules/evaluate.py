"""Evaluates a parsed rule (:class:`~edgewise.cloud.rules.sql.RuleQuery`) against one MQTT message.

The semantics are AWS IoT SQL version 2016-03-23's, for the subset :mod:`.sql` accepts:

- the payload is read as JSON; a payload that is not JSON (or JSON but not an object) has no fields, so every
  field is *Undefined*; ``SELECT *`` alone passes any payload through byte for byte, while ``*`` beside other
  items needs an empty payload or a JSON object (otherwise the message produces nothing);
- a missing field, a field of something that is not an object, and any operator or function given operands of
  the wrong type give *Undefined*; an item that is *Undefined* is left out of the output, and a ``WHERE``
  that is not ``true`` means no output;
- ``AND``/``OR``/``NOT`` and ``WHERE`` take booleans or the strings ``"true"``/``"false"`` (any case); comparisons compare
  numbers (numeric strings are converted), strings with strings, and anything with ``=`` structurally;
  ``+`` concatenates two strings and adds numbers; ``-``, ``*``, ``/`` and ``%`` take numbers, and dividing two
  integers keeps an integer (truncated); dividing by zero gives *Undefined*.
"""

from __future__ import annotations

import base64
import json
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from edgewise.cloud.rules.sql import (
    AllFields,
    Call,
    Constant,
    Expression,
    FieldRef,
    Projection,
    RuleQuery,
    Template,
    Unary,
    WholePayload,
)
from edgewise.topics import filter_matches


class _Undefined:
    """AWS IoT SQL's *Undefined*: a missing value, different from JSON ``null``."""

    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "Undefined"


UNDEFINED: Final = _Undefined()
_NOT_JSON: Final = object()
_NUMERIC = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
#: Longer numeric strings are not converted (Python refuses to parse integers of over 4,300 digits).
_NUMERIC_STRING_MAX_LENGTH: Final = 4000
#: What ``clientid()`` gives when the publisher's client id is not known (AWS's value outside MQTT).
UNKNOWN_CLIENT_ID: Final = "n/a"


@dataclass(frozen=True)
class RuleMessage:
    """One message as a rule sees it: its topic and payload, who sent it (when known) and when it arrived."""

    topic: str
    payload: bytes
    client_id: str | None
    timestamp_ms: int


@dataclass(frozen=True)
class RuleOutput:
    """What a rule produced for a message: the bytes its actions send."""

    payload: bytes


class _Scope:
    """One message, with its payload decoded once."""

    def __init__(self, message: RuleMessage, new_uuid: Callable[[], str]) -> None:
        self.message = message
        self.new_uuid = new_uuid
        try:
            self.document: Any = json.loads(message.payload) if message.payload else {}
        except (ValueError, UnicodeDecodeError, RecursionError):
            self.document = _NOT_JSON


def _random_uuid() -> str:
    return str(uuid.uuid4())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Any) -> int | float | None:
    if _is_number(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str) and len(value) <= _NUMERIC_STRING_MAX_LENGTH and _NUMERIC.fullmatch(value):
        return int(value) if value.lstrip("+-").isdigit() else float(value)
    return None


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _compare(operator: str, left: Any, right: Any) -> Any:
    if left is UNDEFINED or right is UNDEFINED:
        return UNDEFINED
    if operator in ("=", "<>"):
        left_number, right_number = _number(left), _number(right)
        if (_is_number(left) or _is_number(right)) and left_number is not None and right_number is not None:
            equal = left_number == right_number
        elif isinstance(left, bool) != isinstance(right, bool):
            equal = False
        else:
            equal = left == right
        return equal if operator == "=" else not equal
    if isinstance(left, str) and isinstance(right, str):
        pair: tuple[Any, Any] = (left, right)
    else:
        left_number, right_number = _number(left), _number(right)
        if left_number is None or right_number is None:
            return UNDEFINED
        pair = (left_number, right_number)
    return {
        "<": pair[0] < pair[1],
        "<=": pair[0] <= pair[1],
        ">": pair[0] > pair[1],
        ">=": pair[0] >= pair[1],
    }[operator]


def _arithmetic(operator: str, left: Any, right: Any) -> Any:
    if left is UNDEFINED or right is UNDEFINED:
        return UNDEFINED
    if operator == "+" and isinstance(left, str) and isinstance(right, str):
        return left + right
    a, b = _number(left), _number(right)
    if a is None or b is None:
        return UNDEFINED
    if operator == "+":
        return a + b
    if operator == "-":
        return a - b
    if operator == "*":
        return a * b
    if b == 0:
        return UNDEFINED
    both_int = isinstance(a, int) and isinstance(b, int)
    if operator == "/":
        if both_int:
            quotient = abs(a) // abs(b)
            return quotient if (a >= 0) == (b >= 0) else -quotient
        return a / b
    # The remainder takes the dividend's sign, as in Java (AWS's engine), not Python's floor modulo.
    if both_int:
        remainder = abs(a) % abs(b)
        return remainder if a >= 0 else -remainder
    return math.fmod(a, b)


def _logical(operator: str, left: Any, right: Any) -> Any:
    a, b = _boolean(left), _boolean(right)
    if a is None or b is None:
        return UNDEFINED
    return (a and b) if operator == "AND" else (a or b)


def _field(scope: _Scope, path: tuple[str, ...]) -> Any:
    value = scope.document
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return UNDEFINED
        value = value[key]
    return value


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_number(value):
        return str(value)
    if value is None or value is UNDEFINED:
        return None
    return json.dumps(value, separators=(",", ":"))


def _call(scope: _Scope, call: Call) -> Any:
    message = scope.message
    name = call.name
    if name == "topic":
        if not call.args:
            return message.topic
        level = _evaluate(scope, call.args[0])
        levels = message.topic.split("/")
        if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= len(levels):
            return UNDEFINED
        return levels[level - 1]
    if name == "clientid":
        return message.client_id if message.client_id is not None else UNKNOWN_CLIENT_ID
    if name == "timestamp":
        return message.timestamp_ms
    if name == "newuuid":
        return scope.new_uuid()
    if name == "encode":
        return _encode(scope, call)
    args = [_evaluate(scope, arg) for arg in call.args]
    if name == "isnull":
        return args[0] is None
    if name == "isundefined":
        return args[0] is UNDEFINED
    if name == "get":
        return _get(args[0], args[1])
    if name == "concat":
        return _concat(args)
    if any(arg is UNDEFINED for arg in args):
        return UNDEFINED
    if name in ("lower", "upper"):
        if not isinstance(args[0], str):
            return UNDEFINED
        return args[0].lower() if name == "lower" else args[0].upper()
    number = _number(args[0])
    if number is None or (isinstance(number, float) and not math.isfinite(number)):
        return UNDEFINED
    if name == "abs":
        return abs(number)
    if name == "floor":
        return math.floor(number)
    if name == "ceil":
        return math.ceil(number)
    # round: half away from zero, as AWS documents round(-1.5) = -2.
    return int(math.copysign(math.floor(abs(number) + 0.5), number))


def _get(container: Any, key: Any) -> Any:
    if isinstance(container, dict) and isinstance(key, str):
        return container.get(key, UNDEFINED)
    if isinstance(container, list | str) and isinstance(key, int) and not isinstance(key, bool):
        return container[key] if 0 <= key < len(container) else UNDEFINED
    return UNDEFINED


def _concat(args: list[Any]) -> Any:
    if any(arg is UNDEFINED for arg in args):
        return UNDEFINED
    if all(isinstance(arg, list) for arg in args):
        return [item for arg in args for item in arg]
    texts = [_text(arg) for arg in args]
    if any(text is None for text in texts):
        return UNDEFINED
    return "".join(text for text in texts if text is not None)


def _encode(scope: _Scope, call: Call) -> Any:
    subject, encoding = call.args
    if _evaluate(scope, encoding) != "base64":
        return UNDEFINED
    if isinstance(subject, WholePayload):
        return base64.b64encode(scope.message.payload).decode("ascii")
    text = _text(_evaluate(scope, subject))
    return UNDEFINED if text is None else base64.b64encode(text.encode()).decode("ascii")


def _evaluate(scope: _Scope, expression: Expression) -> Any:
    if isinstance(expression, Constant):
        return expression.value
    if isinstance(expression, FieldRef):
        return _field(scope, expression.path)
    if isinstance(expression, WholePayload):
        return scope.document if scope.document is not _NOT_JSON else UNDEFINED
    if isinstance(expression, Call):
        return _call(scope, expression)
    if isinstance(expression, Unary):
        operand = _evaluate(scope, expression.operand)
        if expression.operator == "NOT":
            value = _boolean(operand)
            return UNDEFINED if value is None else not value
        number = _number(operand) if operand is not UNDEFINED else None
        return UNDEFINED if number is None else -number
    left = _evaluate(scope, expression.left)
    right = _evaluate(scope, expression.right)
    operator = expression.operator
    if operator in ("AND", "OR"):
        return _logical(operator, left, right)
    if operator in ("+", "-", "*", "/", "%"):
        return _arithmetic(operator, left, right)
    return _compare(operator, left, right)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def evaluate(
    query: RuleQuery, message: RuleMessage, *, new_uuid: Callable[[], str] = _random_uuid
) -> RuleOutput | None:
    """The output of ``query`` for ``message``, or ``None`` when the topic does not match the ``FROM`` filter,
    the ``WHERE`` condition is not true, or ``*`` cannot merge the payload with the other items.

    Pure and quick (the payload is at most what the worker link accepts); safe on the event loop.
    """
    if not filter_matches(query.topic_filter, message.topic):
        return None
    scope = _Scope(message, new_uuid)
    if query.where is not None and _boolean(_evaluate(scope, query.where)) is not True:
        return None
    if query.select == (AllFields(),):
        return RuleOutput(message.payload)
    output: dict[str, Any] = {}
    for item in query.select:
        if isinstance(item, AllFields):
            if not isinstance(scope.document, dict):
                return None
            output.update(scope.document)
            continue
        assert isinstance(item, Projection)
        value = _evaluate(scope, item.expression)
        if value is not UNDEFINED:
            output[item.name] = value
    try:
        return RuleOutput(_json(output))
    except ValueError:
        # An arithmetic overflow gave inf or NaN, which JSON cannot carry.
        return None


def render_template(
    template: Template, message: RuleMessage, *, new_uuid: Callable[[], str] = _random_uuid
) -> str:
    """``template`` with each ``${expression}`` replaced by its value for ``message`` (the original payload, as
    AWS substitutes): strings as they are, other values as JSON, *Undefined* as nothing."""
    scope = _Scope(message, new_uuid)
    pieces: list[str] = []
    for part in template.parts:
        if isinstance(part, str):
            pieces.append(part)
            continue
        value = _evaluate(scope, part)
        text = _text(value)
        pieces.append("" if text is None else text)
    return "".join(pieces)

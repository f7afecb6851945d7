"""The query language of dynamic thing groups: a small subset of AWS fleet-indexing syntax, evaluated in Python.

Grammar (keywords are upper case; terms have no spaces around their operator)::

    query    := or_expr
    or_expr  := and_expr ("OR" and_expr)*
    and_expr := not_expr ("AND" not_expr)*
    not_expr := "NOT" not_expr | "(" or_expr ")" | term
    term     := field ":" value          equal; ``*`` in value matches any characters, ``field:*`` = present
              | field op number          op is < <= > >=; compares the value as a number
    field    := "thingName" | "thingTypeName" | "attributes." attribute-name-without-":"
    value    := attribute-value characters and "*", or a double-quoted string (\\" and \\\\ escape)

Examples: ``attributes.site:berlin AND attributes.floor:3``, ``thingName:sensor-* AND NOT
attributes.retired:*``, ``attributes.temperature>60``. Matching is case-sensitive; a thing whose value for
a numeric comparison is not a number does not match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from edgewise.cloud.errors import InvalidRequestError

QUERY_FIELD = "queryString"

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<open>\()
    | (?P<close>\))
    | (?P<keyword>(?:AND|OR|NOT)(?=[\s()]|$))
    | (?P<term>
        (?P<field>thingName|thingTypeName|attributes\.[a-zA-Z0-9_.,@/\#-]+)
        (?P<op><=|>=|<|>|:)
        (?P<value>"(?:[^"\\]|\\.)*"|[a-zA-Z0-9_.,@/:\#=\[\]*-]+)
      )
    """,
    re.VERBOSE,
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


class Searchable(Protocol):
    """What a query looks at: a thing's name, type and attributes."""

    @property
    def name(self) -> str: ...
    @property
    def thing_type_name(self) -> str | None: ...
    @property
    def attributes(self) -> dict[str, str]: ...


class Query(Protocol):
    """A parsed query."""

    def matches(self, thing: Searchable) -> bool:
        """Whether ``thing`` is selected."""
        ...


def _field_value(thing: Searchable, field: str) -> str | None:
    if field == "thingName":
        return thing.name
    if field == "thingTypeName":
        return thing.thing_type_name
    return thing.attributes.get(field.removeprefix("attributes."))


@dataclass(frozen=True)
class Match:
    """``field:value``, with ``*`` wildcards."""

    field: str
    pattern: re.Pattern[str]

    def matches(self, thing: Searchable) -> bool:
        value = _field_value(thing, self.field)
        return value is not None and self.pattern.fullmatch(value) is not None


@dataclass(frozen=True)
class Compare:
    """``field<number`` and friends."""

    field: str
    op: str
    number: float

    def matches(self, thing: Searchable) -> bool:
        value = _field_value(thing, self.field)
        if value is None or _NUMBER.fullmatch(value) is None:
            return False
        actual = float(value)
        if self.op == "<":
            return actual < self.number
        if self.op == "<=":
            return actual <= self.number
        if self.op == ">":
            return actual > self.number
        return actual >= self.number


@dataclass(frozen=True)
class AllOf:
    """Every part matches (AND)."""

    parts: tuple[Query, ...]

    def matches(self, thing: Searchable) -> bool:
        return all(part.matches(thing) for part in self.parts)


@dataclass(frozen=True)
class AnyOf:
    """Some part matches (OR)."""

    parts: tuple[Query, ...]

    def matches(self, thing: Searchable) -> bool:
        return any(part.matches(thing) for part in self.parts)


@dataclass(frozen=True)
class Not:
    """The part does not match."""

    part: Query

    def matches(self, thing: Searchable) -> bool:
        return not self.part.matches(thing)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int
    match: re.Match[str] | None = None


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        found = _TOKEN.match(text, position)
        if found is None:
            raise InvalidRequestError(
                QUERY_FIELD, f"unexpected text at position {position}: {text[position : position + 20]!r}"
            )
        kind = found.lastgroup or ""
        if found.group("term") is not None:
            kind = "term"
        if kind != "space":
            tokens.append(_Token(kind, found.group(0), position, found))
        position = found.end()
    return tokens


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _term(token: _Token) -> Query:
    assert token.match is not None
    field, op, raw = token.match.group("field", "op", "value")
    if op == ":":
        if raw.startswith('"'):
            pattern = re.escape(_unquote(raw))
        else:
            pattern = ".*".join(re.escape(part) for part in raw.split("*"))
        return Match(field, re.compile(pattern, re.DOTALL))
    if _NUMBER.fullmatch(raw) is None:
        raise InvalidRequestError(
            QUERY_FIELD,
            f"{token.text!r} at position {token.position} compares with {raw!r}, which is not a number",
        )
    return Compare(field, op, float(raw))


class _Parser:
    def __init__(self, text: str) -> None:
        self._text = text
        self._tokens = _tokenize(text)
        self._next = 0

    def _peek(self) -> _Token | None:
        return self._tokens[self._next] if self._next < len(self._tokens) else None

    def _is_keyword(self, word: str) -> bool:
        token = self._peek()
        return token is not None and token.kind == "keyword" and token.text == word

    def parse(self) -> Query:
        if not self._tokens:
            raise InvalidRequestError(QUERY_FIELD, "the query is empty")
        query = self._or()
        token = self._peek()
        if token is not None:
            raise InvalidRequestError(
                QUERY_FIELD, f"expected AND, OR or the end at position {token.position}, found {token.text!r}"
            )
        return query

    def _or(self) -> Query:
        parts = [self._and()]
        while self._is_keyword("OR"):
            self._next += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))

    def _and(self) -> Query:
        parts = [self._not()]
        while self._is_keyword("AND"):
            self._next += 1
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def _not(self) -> Query:
        token = self._peek()
        if token is None:
            raise InvalidRequestError(QUERY_FIELD, f"the query ends too early after {self._text!r}")
        self._next += 1
        if token.kind == "keyword" and token.text == "NOT":
            return Not(self._not())
        if token.kind == "open":
            inner = self._or()
            closing = self._peek()
            if closing is None or closing.kind != "close":
                raise InvalidRequestError(
                    QUERY_FIELD, f"the '(' at position {token.position} is never closed"
                )
            self._next += 1
            return inner
        if token.kind == "term":
            return _term(token)
        raise InvalidRequestError(
            QUERY_FIELD, f"expected a term, NOT or '(' at position {token.position}, found {token.text!r}"
        )


def parse_query(text: str) -> Query:
    """Parse a dynamic group query; raises :class:`InvalidRequestError` on ``queryString`` if it is invalid."""
    return _Parser(text).parse()

"""Rule SQL in the AWS IoT dialect, parsed with sqlglot into a typed, validated :class:`RuleQuery`.

sqlglot reads the text (with a dialect in which every function call stays a plain call, so that
``timestamp()`` or ``lower(a)`` keep AWS's meaning rather than another SQL's); this module then accepts only
the subset Edgewise evaluates and turns it into frozen dataclasses:

- ``SELECT`` items: ``*`` (the whole payload), or an expression with an optional ``AS name``;
- ``FROM 'topic/filter'``: one single-quoted MQTT topic filter, checked with :mod:`edgewise.topics`;
- ``WHERE`` condition (optional);
- expressions: nested fields ``a.b.c``, string / number / ``true`` / ``false`` / ``NULL`` literals, ``+ - * / %``,
  ``= <> != < <= > >=``, ``AND OR NOT``, unary minus, parentheses, and the functions of :data:`FUNCTIONS`.

Anything else (joins, ``GROUP BY``, ``CASE``, ``IN``, comments, double-quoted names, ``SELECT VALUE``, other
functions...) is refused with a :class:`RuleSqlError` naming what and where (line, column and character offset),
as is text that does not parse. Substitution templates (``${expression}`` in action fields) are parsed here too,
with :func:`parse_template`.

Usage::

    query = parse_rule_sql("SELECT temp AS t, topic(2) AS thing FROM 'dt/+/temp' WHERE temp > 30")
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, TypeAlias

import sqlglot
from sqlglot import exp
from sqlglot import parser as sqlglot_parser
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokenizer_core import Token, TokenType

from edgewise.cloud.errors import InvalidRequestError
from edgewise.topics import TopicError, validate_filter

#: The longest rule SQL accepted, in characters (AWS's limit is on the whole rule: 256 KB).
SQL_MAX_LENGTH: Final = 16_384
#: The deepest nesting of expressions accepted (parentheses, operators, calls).
MAX_DEPTH: Final = 64
#: The longest substitution template accepted, in characters.
TEMPLATE_MAX_LENGTH: Final = 4096

#: The functions Edgewise evaluates: name (lower case) → (fewest, most) arguments. See ``docs/cloud.md``.
FUNCTIONS: Final[dict[str, tuple[int, int]]] = {
    "topic": (0, 1),  # the topic, or its n-th level (1-based)
    "clientid": (0, 0),  # the publisher's client id ("n/a" when unknown)
    "timestamp": (0, 0),  # the time the rule engine received the message, epoch milliseconds
    "newuuid": (0, 0),  # a random UUID string
    "get": (2, 2),  # get(object, 'key') or get(array, index)
    "isnull": (1, 1),
    "isundefined": (1, 1),
    "lower": (1, 1),
    "upper": (1, 1),
    "concat": (2, 64),
    "abs": (1, 1),
    "floor": (1, 1),
    "ceil": (1, 1),
    "round": (1, 1),
    "encode": (2, 2),  # encode(value or *, 'base64')
}

BinaryOperator: TypeAlias = Literal["+", "-", "*", "/", "%", "=", "<>", "<", "<=", ">", ">=", "AND", "OR"]
_BINARY: Final[dict[type[exp.Expression], BinaryOperator]] = {
    exp.Add: "+",
    exp.Sub: "-",
    exp.Mul: "*",
    exp.Div: "/",
    exp.Mod: "%",
    exp.EQ: "=",
    exp.NEQ: "<>",
    exp.LT: "<",
    exp.LTE: "<=",
    exp.GT: ">",
    exp.GTE: ">=",
    exp.And: "AND",
    exp.Or: "OR",
}
_SELECT_CLAUSES: Final = frozenset({"expressions", "from_", "where"})
_TEMPLATE: Final = re.compile(r"\$\{([^}]*)\}")


class RuleSqlError(InvalidRequestError):
    """Rule SQL (or a substitution template) that does not parse or uses what Edgewise does not support.

    ``line`` and ``column`` are 1-based, ``offset`` is the 0-based character offset in the text of ``field``.
    """

    def __init__(self, problem: str, *, line: int, column: int, offset: int, field: str = "sql") -> None:
        super().__init__(field, f"line {line}, column {column} (offset {offset}): {problem}")
        self.line = line
        self.column = column
        self.offset = offset
        self.sql_problem = problem


@dataclass(frozen=True)
class Constant:
    """A literal: a string, a number, ``true``/``false`` or ``NULL`` (``None``)."""

    value: str | int | float | bool | None


@dataclass(frozen=True)
class FieldRef:
    """A field of the payload, e.g. ``a.b.c`` → ``("a", "b", "c")``."""

    path: tuple[str, ...]


@dataclass(frozen=True)
class WholePayload:
    """``*`` as a function argument (``encode(*, 'base64')``): the payload as it arrived."""


@dataclass(frozen=True)
class Call:
    """A call of one of :data:`FUNCTIONS`; ``name`` is lower case."""

    name: str
    args: tuple[Expression, ...]


@dataclass(frozen=True)
class Unary:
    """``NOT x`` or ``-x``."""

    operator: Literal["NOT", "-"]
    operand: Expression


@dataclass(frozen=True)
class Binary:
    """An arithmetic, comparison or boolean operator between two expressions."""

    operator: BinaryOperator
    left: Expression
    right: Expression


Expression: TypeAlias = Constant | FieldRef | WholePayload | Call | Unary | Binary


@dataclass(frozen=True)
class Projection:
    """One ``SELECT`` item: an expression and the output key it goes under."""

    expression: Expression
    name: str


@dataclass(frozen=True)
class AllFields:
    """The ``*`` item of ``SELECT``: the whole payload."""


SelectItem: TypeAlias = Projection | AllFields


@dataclass(frozen=True)
class RuleQuery:
    """A parsed rule: what to output, for which topics, under which condition."""

    select: tuple[SelectItem, ...]
    topic_filter: str
    where: Expression | None
    sql: str


@dataclass(frozen=True)
class Template:
    """A substitution template: literal text and ``${expression}`` parts, in order."""

    parts: tuple[str | Expression, ...]

    @property
    def is_constant(self) -> bool:
        """Whether the template has no ``${...}`` part."""
        return all(isinstance(part, str) for part in self.parts)


class _IotSql(Dialect):
    """sqlglot's default dialect, without its knowledge of functions: every call stays ``exp.Anonymous``."""

    class Parser(sqlglot_parser.Parser):
        FUNCTIONS: ClassVar[dict[str, Any]] = {}
        FUNCTION_PARSERS: ClassVar[dict[str, Any]] = {}
        NO_PAREN_FUNCTIONS: ClassVar[dict[Any, Any]] = {}


_DIALECT: Final = _IotSql()


def _location(text: str, offset: int) -> tuple[int, int]:
    offset = max(0, min(offset, len(text)))
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


class _Reader:
    """Turns one sqlglot tree into the typed query, refusing what is outside the subset."""

    def __init__(self, text: str, tokens: list[Token], field: str) -> None:
        self._text = text
        self._tokens = tokens
        self._field = field

    def error(self, problem: str, offset: int) -> RuleSqlError:
        line, column = _location(self._text, offset)
        return RuleSqlError(problem, line=line, column=column, offset=offset, field=self._field)

    def offset_of(self, node: exp.Expression) -> int:
        """Where ``node`` starts in the text: the first position sqlglot recorded in it or below it."""
        starts = [
            meta["start"]
            for child in node.walk()
            if isinstance(meta := child.meta, dict) and isinstance(meta.get("start"), int)
        ]
        return min(starts) if starts else 0

    def token_before(self, offset: int) -> Token | None:
        previous = None
        for token in self._tokens:
            if token.start >= offset:
                return previous
            previous = token
        return previous

    def expression(self, node: exp.Expression, depth: int = 0) -> Expression:
        if depth > MAX_DEPTH:
            raise self.error(f"expressions are nested more than {MAX_DEPTH} deep", self.offset_of(node))
        if isinstance(node, exp.Paren):
            return self.expression(node.this, depth + 1)
        if isinstance(node, exp.Literal):
            return self._literal(node)
        if isinstance(node, exp.Boolean):
            return Constant(bool(node.this))
        if isinstance(node, exp.Null):
            return Constant(None)
        if isinstance(node, exp.Column | exp.Dot):
            return FieldRef(self._path(node))
        if isinstance(node, exp.Star):
            return WholePayload()
        if isinstance(node, exp.Neg):
            return Unary("-", self.expression(node.this, depth + 1))
        if isinstance(node, exp.Not):
            return Unary("NOT", self.expression(node.this, depth + 1))
        if isinstance(node, exp.Anonymous):
            return self._call(node, depth)
        operator = _BINARY.get(type(node))
        if operator is not None:
            return Binary(
                operator, self.expression(node.this, depth + 1), self.expression(node.expression, depth + 1)
            )
        raise self.error(f"{node.key.upper()} is not supported in Edgewise rule SQL", self.offset_of(node))

    def _literal(self, node: exp.Literal) -> Constant:
        if node.is_string:
            return Constant(str(node.this))
        text = str(node.this)
        try:
            return Constant(int(text))
        except ValueError:
            pass
        try:
            return Constant(float(text))
        except ValueError:
            raise self.error(f"{text!r} is not a number", self.offset_of(node)) from None

    def _path(self, node: exp.Expression) -> tuple[str, ...]:
        if isinstance(node, exp.Dot):
            if not isinstance(node.expression, exp.Identifier):
                raise self.error("a field name must follow '.'", self.offset_of(node))
            return (*self._path(node.this), self._identifier(node.expression))
        if isinstance(node, exp.Column):
            parts = [node.args.get(key) for key in ("catalog", "db", "table", "this")]
            names = [self._identifier(part) for part in parts if part is not None]
            if not names:
                raise self.error("a field name is missing", self.offset_of(node))
            return tuple(names)
        raise self.error(f"{node.key.upper()} is not a field", self.offset_of(node))

    def _identifier(self, node: exp.Expression) -> str:
        if isinstance(node, exp.Star):
            raise self.error("'*' is not a field name", self.offset_of(node))
        if not isinstance(node, exp.Identifier):
            raise self.error(f"{node.key.upper()} is not a field name", self.offset_of(node))
        if node.quoted:
            raise self.error(
                "double-quoted names are not AWS IoT SQL; use get(object, 'key') for unusual keys",
                self.offset_of(node),
            )
        return str(node.this)

    def _call(self, node: exp.Anonymous, depth: int) -> Call:
        name = str(node.this)
        arity = FUNCTIONS.get(name.lower())
        offset = self.offset_of(node)
        if arity is None:
            raise self.error(f"function {name}() is not supported in Edgewise rule SQL", offset)
        args = tuple(self.expression(arg, depth + 1) for arg in node.expressions)
        fewest, most = arity
        if not fewest <= len(args) <= most:
            expected = str(fewest) if fewest == most else f"{fewest} to {most}"
            raise self.error(f"{name}() takes {expected} arguments, not {len(args)}", offset)
        if any(isinstance(arg, WholePayload) for arg in args) and name.lower() != "encode":
            raise self.error(f"{name}() does not take '*'", offset)
        return Call(name.lower(), args)

    def query(self, statement: exp.Expression) -> RuleQuery:
        if not isinstance(statement, exp.Select):
            raise self.error(
                f"a rule is one SELECT statement, not {statement.key.upper()}", self._tokens[0].start
            )
        for key, value in statement.args.items():
            if key not in _SELECT_CLAUSES and value not in (None, False, []):
                name = key.rstrip("_").upper()
                raise self.error(f"{name} is not supported in Edgewise rule SQL", self._clause_offset(value))
        select = tuple(self._item(item, index) for index, item in enumerate(statement.expressions, 1))
        where_clause = statement.args.get("where")
        where = self.expression(where_clause.this) if where_clause is not None else None
        return RuleQuery(
            select=select, topic_filter=self._topic_filter(statement), where=where, sql=self._text
        )

    def _clause_offset(self, value: object) -> int:
        if isinstance(value, exp.Expression):
            return self.offset_of(value)
        if isinstance(value, list) and value and isinstance(value[0], exp.Expression):
            return self.offset_of(value[0])
        return 0

    def _item(self, node: exp.Expression, index: int) -> SelectItem:
        if isinstance(node, exp.Star):
            return AllFields()
        if isinstance(node, exp.Alias):
            alias = node.args.get("alias")
            if not isinstance(alias, exp.Identifier) or alias.quoted:
                raise self.error("AS must be followed by a plain name", self.offset_of(node))
            alias_offset = self.offset_of(alias)
            keyword = self.token_before(alias_offset)
            if keyword is None or keyword.token_type != TokenType.ALIAS:
                if isinstance(node.this, exp.Column) and node.this.name.upper() == "VALUE":
                    raise self.error("SELECT VALUE is not supported in Edgewise rule SQL", alias_offset)
                raise self.error("write AS before the output name", alias_offset)
            return Projection(self.expression(node.this), str(alias.this))
        expression = self.expression(node)
        if isinstance(expression, FieldRef):
            return Projection(expression, expression.path[-1])
        return Projection(expression, f"_{index}")

    def _topic_filter(self, statement: exp.Select) -> str:
        source = statement.args.get("from_")
        from_token = next((token for token in self._tokens if token.token_type == TokenType.FROM), None)
        if source is None or from_token is None:
            raise self.error("FROM 'topic/filter' is missing", len(self._text))
        index = self._tokens.index(from_token)
        after = self._tokens[index + 1] if index + 1 < len(self._tokens) else None
        table = source.this
        if after is None or after.token_type != TokenType.STRING or not isinstance(table, exp.Table):
            offset = after.start if after is not None else len(self._text)
            raise self.error("FROM takes one single-quoted topic filter, e.g. FROM 'sensors/+/data'", offset)
        extra = [key for key, value in table.args.items() if key != "this" and value]
        if extra:
            raise self.error(f"FROM takes a topic filter only, not {extra[0].upper()}", after.end + 1)
        topic_filter = after.text
        try:
            validate_filter(topic_filter)
        except TopicError as exc:
            raise self.error(f"the topic filter {topic_filter!r} is not valid: {exc}", after.start) from None
        return topic_filter


def _tokens(text: str, field: str) -> list[Token]:
    try:
        tokens = _DIALECT.tokenize(text)
    except sqlglot.TokenError as exc:
        # sqlglot quotes 50 characters either side of where it stopped; an unterminated string stops at the end.
        start = getattr(exc, "start", None) or 0
        end = getattr(exc, "end", None)
        stopped = len(text) if end is None or end >= len(text) - 1 else end - 50
        stopped = max(stopped, start)
        line, column = _location(text, stopped)
        raise RuleSqlError(
            "cannot read the text here (an unterminated string or quoted name?)",
            line=line,
            column=column,
            offset=min(stopped, len(text)),
            field=field,
        ) from None
    for token in tokens:
        if token.comments:
            line, column = _location(text, token.start)
            raise RuleSqlError(
                "comments are not allowed in AWS IoT SQL",
                line=line,
                column=column,
                offset=token.start,
                field=field,
            )
    return tokens


def _parse_error(text: str, exc: sqlglot.ParseError, field: str) -> RuleSqlError:
    errors = exc.errors or []
    first = errors[0] if errors else {}
    line = first.get("line") or 1
    column_end = first.get("col") or 1
    highlight = str(first.get("highlight") or "")
    lines = text.split("\n")
    line = max(1, min(int(line), len(lines)))
    # sqlglot gives the column of the last character of the token it stopped at.
    column = max(1, int(column_end) - max(len(highlight), 1) + 1)
    column = min(column, len(lines[line - 1]) + 1)
    offset = sum(len(previous) + 1 for previous in lines[: line - 1]) + column - 1
    description = str(first.get("description") or exc).split("\n")[0]
    if description.startswith("Required keyword"):
        description = "an expression is missing"
    near = f" near {highlight!r}" if highlight else ""
    return RuleSqlError(
        f"the SQL does not parse{near}: {description}", line=line, column=column, offset=offset, field=field
    )


def _parse_tree(text: str, field: str) -> tuple[exp.Expression, list[Token]]:
    tokens = _tokens(text, field)
    if not tokens:
        raise RuleSqlError("the text is empty", line=1, column=1, offset=0, field=field)
    try:
        statements = _DIALECT.parser().parse(tokens, text)
    except sqlglot.ParseError as exc:
        raise _parse_error(text, exc, field) from None
    except RecursionError:
        raise RuleSqlError(
            f"expressions are nested more than {MAX_DEPTH} deep", line=1, column=1, offset=0, field=field
        ) from None
    found = [statement for statement in statements if isinstance(statement, exp.Expression)]
    semicolon = next((token for token in tokens if token.token_type == TokenType.SEMICOLON), None)
    if len(found) != 1 or semicolon is not None:
        offset = semicolon.start if semicolon is not None else 0
        line, column = _location(text, offset)
        raise RuleSqlError(
            "a rule is exactly one statement, without ';'",
            line=line,
            column=column,
            offset=offset,
            field=field,
        )
    return found[0], tokens


def parse_rule_sql(sql: str) -> RuleQuery:
    """Parse and check rule SQL.

    Raises:
        RuleSqlError: the SQL is too long, does not parse, or uses what Edgewise does not support; it names the
            line, column and offset of the problem.
    """
    if len(sql) > SQL_MAX_LENGTH:
        line, column = _location(sql, SQL_MAX_LENGTH)
        raise RuleSqlError(
            f"the SQL is longer than {SQL_MAX_LENGTH} characters",
            line=line,
            column=column,
            offset=SQL_MAX_LENGTH,
        )
    statement, tokens = _parse_tree(sql, "sql")
    reader = _Reader(sql, tokens, "sql")
    try:
        return reader.query(statement)
    except RecursionError:
        raise reader.error(f"expressions are nested more than {MAX_DEPTH} deep", 0) from None


def parse_template(template: str, *, field: str) -> Template:
    """Parse a substitution template: text with ``${expression}`` parts (``$$`` stays as written).

    Raises:
        RuleSqlError: naming ``field``, the offset in the template and the problem of an expression.
    """
    if len(template) > TEMPLATE_MAX_LENGTH:
        raise RuleSqlError(
            f"longer than {TEMPLATE_MAX_LENGTH} characters",
            line=1,
            column=TEMPLATE_MAX_LENGTH + 1,
            offset=TEMPLATE_MAX_LENGTH,
            field=field,
        )
    parts: list[str | Expression] = []
    position = 0
    for match in _TEMPLATE.finditer(template):
        if match.start() > position:
            parts.append(template[position : match.start()])
        parts.append(_template_expression(template, match, field))
        position = match.end()
    if "${" in template[position:]:
        offset = template.index("${", position)
        line, column = _location(template, offset)
        raise RuleSqlError("'${' is not closed by '}'", line=line, column=column, offset=offset, field=field)
    if position < len(template):
        parts.append(template[position:])
    return Template(tuple(parts))


def _template_expression(template: str, match: re.Match[str], field: str) -> Expression:
    text = match.group(1)
    base = match.start(1)
    try:
        statement, tokens = _parse_tree(text, field)
        reader = _Reader(text, tokens, field)
        if isinstance(statement, exp.Alias | exp.Select):
            raise reader.error("a template holds one expression", reader.offset_of(statement))
        return reader.expression(statement)
    except RuleSqlError as exc:
        offset = base + exc.offset
        line, column = _location(template, offset)
        raise RuleSqlError(exc.sql_problem, line=line, column=column, offset=offset, field=field) from None
    except RecursionError:
        line, column = _location(template, base)
        raise RuleSqlError(
            f"expressions are nested more than {MAX_DEPTH} deep",
            line=line,
            column=column,
            offset=base,
            field=field,
        ) from None

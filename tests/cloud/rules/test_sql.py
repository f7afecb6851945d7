"""Rule SQL parsing: the AWS IoT subset becomes a typed query; everything else is refused with its position."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.cloud import rules
from edgewise.cloud.rules.sql import (
    SQL_MAX_LENGTH,
    AllFields,
    Binary,
    Call,
    Constant,
    FieldRef,
    Projection,
    RuleSqlError,
    Unary,
    parse_rule_sql,
    parse_template,
)


def test_select_list_with_nested_fields_star_alias_functions_and_arithmetic() -> None:
    query = parse_rule_sql(
        "SELECT a.b.c AS x, *, topic(2) AS thing, clientid() AS who, timestamp() AS ts, temp * 1.8 + 32 "
        "FROM 'dt/+/temp' WHERE temp > 30 AND NOT (x = 'a') OR c <> 2"
    )

    assert query.topic_filter == "dt/+/temp"
    assert query.select == (
        Projection(FieldRef(("a", "b", "c")), "x"),
        AllFields(),
        Projection(Call("topic", (Constant(2),)), "thing"),
        Projection(Call("clientid", ()), "who"),
        Projection(Call("timestamp", ()), "ts"),
        Projection(Binary("+", Binary("*", FieldRef(("temp",)), Constant(1.8)), Constant(32)), "_6"),
    )
    assert query.where == Binary(
        "OR",
        Binary(
            "AND",
            Binary(">", FieldRef(("temp",)), Constant(30)),
            Unary("NOT", Binary("=", FieldRef(("x",)), Constant("a"))),
        ),
        Binary("<>", FieldRef(("c",)), Constant(2)),
    )


def test_a_field_without_alias_is_named_after_its_last_part_and_deep_paths_work() -> None:
    query = parse_rule_sql("SELECT a.b.c.d.e, true AS t, NULL AS n, -x AS m FROM '#'")

    assert query.select == (
        Projection(FieldRef(("a", "b", "c", "d", "e")), "e"),
        Projection(Constant(True), "t"),
        Projection(Constant(None), "n"),
        Projection(Unary("-", FieldRef(("x",))), "m"),
    )
    assert query.where is None


def test_function_names_are_case_insensitive() -> None:
    query = parse_rule_sql("SELECT isNull(a) AS n, TOPIC() AS t FROM 'a'")

    assert query.select[0] == Projection(Call("isnull", (FieldRef(("a",)),)), "n")
    assert query.select[1] == Projection(Call("topic", ()), "t")


@pytest.mark.parametrize(
    ("sql", "offset", "problem"),
    [
        ("SELECT a FROM 'x' WHERE (", 24, "does not parse"),
        ("SELECT a FROM 'abc", 18, "cannot read"),
        ("SELECT VALUE a FROM 'x'", 13, "SELECT VALUE is not supported"),
        ("SELECT a b FROM 'x'", 9, "write AS"),
        ('SELECT a FROM "x"', 14, "single-quoted topic filter"),
        ("SELECT a FROM x", 14, "single-quoted topic filter"),
        ("SELECT a FROM 'x/#/y'", 14, "topic filter 'x/#/y' is not valid"),
        ("SELECT foo(a) FROM 'x'", 7, "function foo() is not supported"),
        ("SELECT topic(1, 2) FROM 'x'", 7, "topic() takes 0 to 1 arguments, not 2"),
        ("SELECT lower(*) FROM 'x'", 7, "lower() does not take '*'"),
        ("SELECT a FROM 'x' -- note", 14, "comments are not allowed"),
        ("SELECT a FROM 'x'; SELECT b FROM 'y'", 17, "exactly one statement"),
        ("SELECT a FROM 'x' GROUP BY a", 27, "GROUP is not supported"),
        ("SELECT a FROM 'x' WHERE a IN (1, 2)", 24, "IN is not supported"),
        ("SELECT \"odd-key\" FROM 'x'", 7, "double-quoted names"),
        ("SELECT", 6, "FROM 'topic/filter' is missing"),
        ("", 0, "empty"),
        ("DELETE FROM things", 0, "one SELECT statement"),
    ],
)
def test_unsupported_or_broken_sql_is_refused_with_its_position(sql: str, offset: int, problem: str) -> None:
    with pytest.raises(RuleSqlError) as caught:
        parse_rule_sql(sql)

    error = caught.value
    assert error.field == "sql"
    assert error.offset == offset
    assert (error.line, error.column) == (1, offset + 1)
    assert problem in error.sql_problem
    assert f"line 1, column {offset + 1}" in str(error)


def test_the_position_counts_lines() -> None:
    with pytest.raises(RuleSqlError) as caught:
        parse_rule_sql("SELECT a\nFROM 'x'\nWHERE nope(a)")

    assert (caught.value.line, caught.value.column, caught.value.offset) == (3, 7, 24)


def test_too_long_sql_is_refused_before_parsing() -> None:
    with pytest.raises(RuleSqlError, match="longer than"):
        parse_rule_sql("SELECT a FROM 'x' WHERE " + "a = 1 AND " * SQL_MAX_LENGTH)


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(RuleSqlError, match="nested"):
        parse_rule_sql("SELECT " + "(" * 2000 + "a" + ")" * 2000 + " FROM 'x'")


def test_templates_split_text_and_expressions() -> None:
    template = parse_template("alerts/${topic(2)}/${a.b + 1}", field="topic")

    assert template.parts == (
        "alerts/",
        Call("topic", (Constant(2),)),
        "/",
        Binary("+", FieldRef(("a", "b")), Constant(1)),
    )
    assert not template.is_constant
    assert parse_template("plain/topic", field="topic").is_constant


@pytest.mark.parametrize(
    ("template", "offset", "problem"),
    [
        ("a/${nope()}", 4, "function nope() is not supported"),
        ("a/${x", 2, "not closed"),
        ("a/${b AS c}", 4, "one expression"),
        ("a/${}", 4, "empty"),
    ],
)
def test_bad_templates_are_refused_with_their_offset(template: str, offset: int, problem: str) -> None:
    with pytest.raises(RuleSqlError) as caught:
        parse_template(template, field="actions.0.republish.topic")

    assert caught.value.field == "actions.0.republish.topic"
    assert caught.value.offset == offset
    assert problem in caught.value.sql_problem


_SQL_ALPHABET = st.sampled_from(
    [
        *"abcxyz019 _.,*()'\"`+-/%<>=!;:#$[]{}\n\t\\",
        *(
            "SELECT ",
            " FROM ",
            " WHERE ",
            " AND ",
            " OR ",
            " NOT ",
            " AS ",
            "'a/+/#'",
            "topic(",
            "NULL",
            "--",
        ),
    ]
)


def _refusal(parse: Callable[[str], object], text: str) -> RuleSqlError | None:
    """The error ``parse`` refuses ``text`` with, or None when it accepts it; anything else propagates."""
    try:
        parse(text)
    except RuleSqlError as error:
        return error
    return None


def _sql(text: str) -> object:
    return parse_rule_sql(text)


def _template(text: str) -> object:
    return parse_template(text, field="topic")


@settings(max_examples=400, deadline=None)
@given(st.lists(_SQL_ALPHABET, max_size=40).map("".join))
def test_random_text_either_parses_or_is_refused_with_a_position(text: str) -> None:
    error = _refusal(_sql, text)

    assert error is None or (0 <= error.offset <= len(text) and error.line >= 1 and error.column >= 1)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_unicode_never_raises_anything_else(text: str) -> None:
    error = _refusal(_sql, text)

    assert error is None or 0 <= error.offset <= len(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=100))
def test_arbitrary_templates_never_raise_anything_else(text: str) -> None:
    error = _refusal(_template, text)

    assert error is None or 0 <= error.offset <= len(text)


def test_the_package_exports_exactly_its_public_names() -> None:
    public = {
        name
        for name, value in vars(rules).items()
        if not name.startswith("_") and name != "annotations" and not isinstance(value, ModuleType)
    }

    assert sorted(rules.__all__) == rules.__all__
    assert set(rules.__all__) == public

"""Rule evaluation, table-driven from the examples of AWS's IoT SQL reference (SELECT, WHERE, operators, binary
payloads, functions)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.cloud.rules.evaluate import RuleMessage, evaluate, render_template
from edgewise.cloud.rules.sql import parse_rule_sql, parse_template

TOPIC = "topic/subtopic"
NOW_MS = 1_764_100_000_123


def message(
    payload: bytes | dict[str, Any], *, topic: str = TOPIC, client_id: str | None = "dev-1"
) -> RuleMessage:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return RuleMessage(topic=topic, payload=body, client_id=client_id, timestamp_ms=NOW_MS)


def run(sql: str, payload: bytes | dict[str, Any], **kwargs: Any) -> Any:
    output = evaluate(parse_rule_sql(sql), message(payload, **kwargs), new_uuid=lambda: "uuid-1")
    if output is None:
        return None
    try:
        return json.loads(output.payload)
    except ValueError:
        return output.payload


COLOR = {"color": "red", "temperature": 50}


@pytest.mark.parametrize(
    ("sql", "payload", "expected"),
    [
        # AWS SELECT clause examples.
        ("SELECT * FROM 'topic/subtopic'", COLOR, COLOR),
        ("SELECT color FROM 'topic/subtopic'", COLOR, {"color": "red"}),
        ("SELECT color AS my_color FROM 'topic/subtopic'", COLOR, {"my_color": "red"}),
        (
            "SELECT color as my_color, temperature as fahrenheit FROM 'topic/subtopic'",
            COLOR,
            {"my_color": "red", "fahrenheit": 50},
        ),
        ("SELECT *, 15 as speed FROM 'topic/subtopic'", COLOR, {**COLOR, "speed": 15}),
        # AWS SQL reference and WHERE clause examples.
        (
            "SELECT color AS rgb FROM 'topic/subtopic' WHERE temperature > 50",
            {"color": "red", "temperature": 100},
            {"rgb": "red"},
        ),
        (
            "SELECT color AS my_color FROM 'topic/subtopic' WHERE temperature > 50 AND color <> 'red'",
            {"color": "red", "temperature": 40},
            None,
        ),
        # Nested fields; a missing one is left out; a field of a non-object is Undefined.
        ("SELECT a.b.c AS v, a.x AS missing FROM '#'", {"a": {"b": {"c": [1, 2]}}}, {"v": [1, 2]}),
        ("SELECT a.b.c AS v FROM '#'", {"a": {"b": 3}}, {}),
        (
            "SELECT get(a, 1) AS second, get(o, 'k-1') AS odd FROM '#'",
            {"a": [5, 6], "o": {"k-1": 1}},
            {"second": 6, "odd": 1},
        ),
        # Arithmetic: numbers, numeric strings, string concatenation, integer division.
        ("SELECT temperature * 1.8 + 32 AS f FROM '#'", {"temperature": 100}, {"f": 212.0}),
        (
            "SELECT 5 / 2 AS i, 5.0 / 2 AS d, -7 % 3 AS m, 1 / 0 AS z FROM '#'",
            {},
            {"i": 2, "d": 2.5, "m": -1},
        ),
        ("SELECT '5' + 2 AS n, 'a' + 'b' AS s, 'a' + 1 AS u FROM '#'", {}, {"n": 7, "s": "ab"}),
        # Comparisons and boolean operators, with AWS's string booleans and Undefined.
        (
            "SELECT 1 = 1.0 AS a, '10' > 9 AS b, 'abc' < 'abd' AS c, x = 1 AS u FROM '#'",
            {},
            {"a": True, "b": True, "c": True},
        ),
        (
            "SELECT 'TRUE' AND true AS a, NOT 'false' AS b, 1 AND true AS u FROM '#'",
            {},
            {"a": True, "b": True},
        ),
        ("SELECT flag AS f FROM '#' WHERE flag", {"flag": "true"}, {"f": "true"}),
        ("SELECT flag FROM '#' WHERE flag", {"flag": 1}, None),
        (
            "SELECT isNull(n) AS a, isUndefined(m) AS b, isNull(m) AS c FROM '#'",
            {"n": None},
            {"a": True, "b": True, "c": False},
        ),
        # String and math functions.
        (
            "SELECT lower(s) AS l, upper(s) AS u, concat(s, 1, true) AS c, abs(-2) AS a, floor(1.5) AS f,"
            " ceil(1.2) AS ce, round(-1.5) AS r FROM '#'",
            {"s": "Ab"},
            {"l": "ab", "u": "AB", "c": "Ab1true", "a": 2, "f": 1, "ce": 2, "r": -2},
        ),
    ],
)
def test_documented_examples(sql: str, payload: dict[str, Any], expected: Any) -> None:
    assert run(sql, payload) == expected


def test_message_functions() -> None:
    output = run(
        "SELECT topic() AS t, topic(1) AS first, topic(3) AS last, topic(4) AS none, clientid() AS c,"
        " timestamp() AS ts, newuuid() AS id FROM 'dt/+/temp'",
        {},
        topic="dt/pump-1/temp",
    )

    assert output == {
        "t": "dt/pump-1/temp",
        "first": "dt",
        "last": "temp",
        "c": "dev-1",
        "ts": NOW_MS,
        "id": "uuid-1",
    }


def test_clientid_is_na_when_the_publisher_is_not_known() -> None:
    assert run("SELECT clientid() AS c FROM '#'", {}, client_id=None) == {"c": "n/a"}


def test_a_topic_outside_the_from_filter_gives_nothing() -> None:
    assert run("SELECT * FROM 'dt/+/temp'", COLOR, topic="dt/a/humidity") is None
    assert run("SELECT * FROM '#'", COLOR, topic="$aws/things/a/shadow/update") is None


# AWS's binary payload examples: SELECT * passes the bytes through, other references see no fields.
BINARY = b"\x00\x01binary\xff"


def test_select_star_passes_a_binary_payload_through() -> None:
    assert run("SELECT * FROM 'topic/subtopic'", BINARY) == BINARY


def test_where_on_a_binary_payload_is_not_true() -> None:
    assert run("SELECT * FROM 'topic/subtopic' WHERE device_type = 'thermostat'", BINARY) is None
    assert run("SELECT * FROM 'topic/subtopic' WHERE timestamp() % 2 = 1", BINARY) == BINARY


def test_encode_star_base64_carries_a_binary_payload_in_json() -> None:
    output = run("SELECT encode(*, 'base64') AS data, timestamp() AS ts FROM 'topic/subtopic'", BINARY)

    assert output == {"data": base64.b64encode(BINARY).decode(), "ts": NOW_MS}


def test_star_with_other_items_needs_a_json_object() -> None:
    assert run("SELECT *, 1 AS one FROM '#'", BINARY) is None
    assert run("SELECT *, 1 AS one FROM '#'", b"") == {"one": 1}
    assert run("SELECT *, 1 AS one FROM '#'", b"[1, 2]") is None


def test_a_json_payload_that_is_not_an_object_has_no_fields() -> None:
    assert run("SELECT a FROM '#'", b"42") == {}


def test_templates_substitute_from_the_original_message() -> None:
    template = parse_template("alerts/${topic(2)}/${reading.value}/${missing}/${lower('X')}", field="topic")

    rendered = render_template(template, message({"reading": {"value": 3}}, topic="dt/pump-1/temp"))

    assert rendered == "alerts/pump-1/3//x"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.sampled_from("abxyz"), children, max_size=4)
    ),
    max_leaves=20,
)
_QUERIES = [
    parse_rule_sql(sql)
    for sql in (
        "SELECT *, a + b AS s, a - b AS d, a * b AS m, a / b AS q, a % b AS r FROM '#' WHERE a > b OR a <= b",
        "SELECT a.b.x AS p, -a AS n, NOT a AS l, a = b AS e, a <> b AS ne, a AND b AS both, a OR b AS one FROM '#'",
        "SELECT abs(a) AS v1, floor(a) AS v2, ceil(b) AS v3, round(a) AS v4, lower(a) AS v5, upper(b) AS v6,"
        " concat(a, b) AS v7, get(a, b) AS v8, get(a, 0) AS v9, isNull(a) AS v10, encode(a, 'base64') AS v11"
        " FROM '#'",
    )
]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from("abxyz"), _JSON, max_size=5) | _JSON, st.sampled_from(_QUERIES))
def test_any_json_payload_evaluates_without_raising(payload: Any, query: Any) -> None:
    body = json.dumps(payload).encode()

    output = evaluate(query, RuleMessage(topic="t", payload=body, client_id=None, timestamp_ms=0))

    assert output is None or isinstance(json.loads(output.payload), dict)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(_QUERIES))
def test_any_binary_payload_evaluates_without_raising(payload: bytes, query: Any) -> None:
    evaluate(query, RuleMessage(topic="t", payload=payload, client_id=None, timestamp_ms=0))

"""JSON paths into telemetry payloads: the forms that parse, what each bad form says, and that extraction never
raises on any JSON document."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.ml.errors import DatasetError
from edgewise.ml.jsonpath import MAX_PATH_LENGTH, JsonPath, parse_path

DOCUMENT = {
    "temperature": 21.5,
    "sensors": {"temp": 19, "flags": [True, False]},
    "readings": [{"value": 1.25}, {"value": None}],
    "key with.dots": "x",
    "quote'd": 7,
    "0": "zero",
}


@pytest.mark.parametrize(
    ("text", "steps", "expected"),
    [
        ("temperature", ("temperature",), 21.5),
        ("$.temperature", ("temperature",), 21.5),
        ("$.sensors.temp", ("sensors", "temp"), 19),
        ("sensors.flags[1]", ("sensors", "flags", 1), False),
        ("readings[0].value", ("readings", 0, "value"), 1.25),
        ("$['key with.dots']", ("key with.dots",), "x"),
        ('["key with.dots"]', ("key with.dots",), "x"),
        ("$['quote\\'d']", ("quote'd",), 7),
        ("$", (), DOCUMENT),
        ("$[0]", (0,), None),
        ("['0']", ("0",), "zero"),
    ],
)
def test_valid_paths_parse_and_extract(text: str, steps: tuple[object, ...], expected: object) -> None:
    path = parse_path(text)

    assert path.text == text
    assert path.steps == steps
    assert path.extract(DOCUMENT) == expected


@pytest.mark.parametrize(
    "text",
    [
        "missing",
        "temperature.deeper",
        "readings[5].value",
        "readings[1].value",
        "sensors[0]",
        "readings.value",
    ],
)
def test_absent_or_mismatched_steps_give_none(text: str) -> None:
    assert parse_path(text).extract(DOCUMENT) is None


def test_last_key_names_a_field() -> None:
    assert parse_path("readings[0].value").last_key == "value"
    assert parse_path("$.a[3]").last_key == "a"
    assert parse_path("$[3]").last_key is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is empty"),
        ("x" * (MAX_PATH_LENGTH + 1), f"longer than {MAX_PATH_LENGTH} characters"),
        (".".join(["a"] * 33), "more than 32 steps"),
        ("$x", "neither '.' nor '['"),
        ("a..b", "empty key at position 2"),
        ("a.", "ends with '.'"),
        ("$.", "ends with '.'"),
        ("a b", "whitespace in a key"),
        ("a[1", "without its ']'"),
        ("a[-1]", "must be a non-negative integer"),
        ("a[x]", "must be a non-negative integer"),
        ("a[]", "must be a non-negative integer"),
        ("a[1234567890]", "larger than 999999999"),
        ("a['b", "without its closing '"),
        ("a['b'x]", "not followed by ']'"),
        ("a['']", "empty quoted key"),
        ("a['b\\x']", "escapes neither"),
        ("a.[0]", "'.' followed by '[' at position 1"),
        ("$.['a']", "'.' followed by '[' at position 1"),
        ("a]", "at position 1 where '.', '[' or the end was expected"),
        ("a'b", "at position 1 where '.', '[' or the end was expected"),
    ],
)
def test_bad_paths_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(DatasetError) as caught:
        parse_path(text, field="fields[0].path")

    assert str(caught.value).startswith("fields[0].path: ")
    assert problem in str(caught.value)


def test_a_path_made_directly_is_checked_too() -> None:
    with pytest.raises(DatasetError, match=r"path: 'a\.\.b' has an empty key"):
        JsonPath("a..b")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40) | st.text(alphabet="$.[]'\"\\0123ab ", max_size=20))
def test_any_text_parses_or_raises_dataset_error(text: str) -> None:
    try:
        path = parse_path(text)
    except DatasetError:
        return
    assert path.text == text
    assert parse_path(text).steps == path.steps


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["a", "b", "0", "k k"]), inner)
    ),
    max_leaves=20,
)
PATHS = st.sampled_from(["a", "a.b", "a[0]", "a[0].b", "$[1]", "$", "['k k'].a", "b[2][0]", "$.0"])


@settings(max_examples=150, deadline=None)
@given(JSON, PATHS)
def test_extract_never_raises_on_any_json_document(document: object, text: str) -> None:
    value = parse_path(text).extract(json.loads(json.dumps(document)))

    json.dumps(value)  # whatever comes back is part of the document

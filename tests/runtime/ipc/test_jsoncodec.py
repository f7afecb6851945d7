"""The IPC JSON codec: with orjson it reads and writes the same values as the json module, compact UTF-8."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.runtime.ipc import jsoncodec

# Values the json module can write: large integers, NaN and infinities included, and non-string keys.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
        st.dictionaries(st.integers(), inner, max_size=2),
    ),
    max_leaves=12,
)


def holds_float(value: Any) -> bool:
    if isinstance(value, dict):
        return any(map(holds_float, value.values()))
    if isinstance(value, list):
        return any(map(holds_float, value))
    return isinstance(value, float)


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN and the types of numbers compared too."""
    return json.dumps(a) == json.dumps(b) and type(a) is type(b)


def test_orjson_is_used_when_installed() -> None:
    # The dev install includes the fast extra; without it the json module's functions are used as they are.
    assert jsoncodec.BACKEND == "orjson"
    assert jsoncodec.dumps is jsoncodec._orjson_dumps
    assert jsoncodec.loads is jsoncodec._orjson_loads


@settings(max_examples=100, deadline=None)
@given(values)
def test_orjson_writes_what_the_json_module_reads_back_as_the_same_value(value: Any) -> None:
    try:
        expected = jsoncodec._json_dumps(value)
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            jsoncodec._orjson_dumps(value)
        return

    encoded = jsoncodec._orjson_dumps(value)

    assert same(json.loads(encoded), json.loads(expected))
    if not holds_float(value):
        assert encoded == expected  # floats may be spelled differently (1e16 against 1e+16), nothing else


@settings(max_examples=100, deadline=None)
@given(values)
def test_orjson_reads_what_the_json_module_writes_as_the_same_value(value: Any) -> None:
    try:
        encoded = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError):
        return
    try:
        expected = json.loads(encoded)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            jsoncodec._orjson_loads(encoded)
        return

    assert same(jsoncodec._orjson_loads(encoded), expected)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b"123456789012345678901234567890", 123456789012345678901234567890),
        (b"[-9223372036854775809]", [-9223372036854775809]),
        (b'{"big": 18446744073709551616}', {"big": 18446744073709551616}),
        (b"18446744073709551615", 18446744073709551615),
        (b"1e400", math.inf),
        (b'"\\ud800"', "\ud800"),
        (b"\xef\xbb\xbf{}", {}),
    ],
)
def test_what_orjson_reads_differently_or_refuses_is_read_by_the_json_module(text: bytes, value: Any) -> None:
    assert same(jsoncodec._orjson_loads(text), value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"a": None}, b'{"a":null}'),
        ([math.nan, math.inf], b"[NaN,Infinity]"),
        ({1: 2**64}, b'{"1":18446744073709551616}'),
        ({"é": "\u2028"}, '{"é":"\u2028"}'.encode()),
    ],
)
def test_what_orjson_writes_differently_or_refuses_is_written_by_the_json_module(
    value: Any, text: bytes
) -> None:
    assert jsoncodec._orjson_dumps(value) == text


def test_errors_are_the_json_modules() -> None:
    with pytest.raises(json.JSONDecodeError):
        jsoncodec.loads(b"{nope")
    with pytest.raises(TypeError):
        jsoncodec.dumps({"a": object()})
    with pytest.raises(UnicodeEncodeError):
        jsoncodec.dumps({"a": "\ud800"})

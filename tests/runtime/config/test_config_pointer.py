"""JSON pointer parsing and formatting (RFC 6901)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgewise.runtime.config import ConfigError, InvalidPointerError, format_pointer, parse_pointer


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("", ()),
        ("/", ("",)),
        ("/a", ("a",)),
        ("/a/b/0", ("a", "b", "0")),
        ("/a~1b", ("a/b",)),
        ("/m~0n", ("m~n",)),
        ("/~01", ("~1",)),
        ("/a//b", ("a", "", "b")),
    ],
)
def test_parse_pointer_returns_unescaped_keys(text: str, path: tuple[str, ...]) -> None:
    assert parse_pointer(text) == path


@pytest.mark.parametrize("text", ["a", "a/b", "~0"])
def test_parse_pointer_without_leading_slash_is_rejected(text: str) -> None:
    with pytest.raises(InvalidPointerError, match="must be empty or start with '/'") as caught:
        parse_pointer(text)
    assert caught.value.pointer == text


@pytest.mark.parametrize("text", ["/a~", "/a~2", "/~x/b", "/ok/~"])
def test_parse_pointer_with_bad_escape_is_rejected(text: str) -> None:
    with pytest.raises(ConfigError, match="'~' must be followed by '0' or '1'"):
        parse_pointer(text)


def test_format_pointer_escapes_tilde_and_slash() -> None:
    assert format_pointer(("a/b", "m~n", "")) == "/a~1b/m~0n/"
    assert format_pointer(()) == ""


@given(st.lists(st.text(alphabet="ab~/0 1", max_size=6), max_size=5).map(tuple))
def test_format_then_parse_gives_the_same_path(path: tuple[str, ...]) -> None:
    assert parse_pointer(format_pointer(path)) == path

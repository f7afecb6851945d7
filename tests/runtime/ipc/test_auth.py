"""Component tokens: issued once per component, resolvable, revocable."""

from __future__ import annotations

import re

import pytest

from edgewise.runtime.ipc.auth import TokenTable


def test_token_is_sixteen_uppercase_characters_and_stable_for_the_component() -> None:
    tokens = TokenTable()

    token = tokens.issue("com.example.A")

    assert re.fullmatch(r"[A-Z0-9]{16}", token)
    assert tokens.issue("com.example.A") == token
    assert tokens.component_for(token) == "com.example.A"


def test_components_get_different_tokens() -> None:
    tokens = TokenTable()

    issued = {tokens.issue(f"com.example.C{n}") for n in range(100)}

    assert len(issued) == 100
    assert len(tokens) == 100


def test_unknown_token_resolves_to_nothing() -> None:
    tokens = TokenTable()
    tokens.issue("com.example.A")

    assert tokens.component_for("ABCDEFGHIJKLMNOP") is None
    assert tokens.component_for("") is None


def test_revoked_token_stops_resolving_and_a_new_one_is_issued() -> None:
    tokens = TokenTable()
    old = tokens.issue("com.example.A")

    tokens.revoke("com.example.A")
    tokens.revoke("com.example.Unknown")

    assert tokens.component_for(old) is None
    new = tokens.issue("com.example.A")
    assert new != old
    assert tokens.component_for(new) == "com.example.A"


def test_empty_component_name_is_refused() -> None:
    with pytest.raises(ValueError, match="empty component name"):
        TokenTable().issue("")

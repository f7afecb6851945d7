"""Device-group selection rules, as Greengrass's client device auth writes them.

A rule is ``thingName: <pattern>`` terms joined by ``OR`` and ``AND``, ``AND`` binding tighter
(``thingName: sensor* AND thingName: *-east OR thingName: gateway`` is ``(sensor* and *-east) or gateway``).
A pattern is a thing name that may start and/or end with ``*`` (any run of characters, the empty one included);
``thingName: *`` selects every client device. A rule is kept as the OR of AND-ed patterns, so two rules that
say the same compare equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from edgewise.runtime.clientdevices.errors import ClientDeviceConfigurationError
from edgewise.runtime.clientdevices.names import AUTH

#: The longest rule accepted, so that matching stays cheap whatever a deployment holds.
MAX_RULE_LENGTH: Final = 4096
_TERM: Final = re.compile(r"thingName:\s*(\*?)([a-zA-Z0-9:_-]*)(\*?)")
_WORD: Final = re.compile(r"\s*(thingName:\s*\S*|OR|AND|\S+)")


@dataclass(frozen=True)
class NamePattern:
    """A thing name, or its start (``suffix_wildcard``), its end (``prefix_wildcard``) or a part of it (both)."""

    text: str
    prefix_wildcard: bool = False
    suffix_wildcard: bool = False

    def matches(self, thing_name: str) -> bool:
        if self.prefix_wildcard and self.suffix_wildcard:
            return self.text in thing_name
        if self.prefix_wildcard:
            return thing_name.endswith(self.text)
        if self.suffix_wildcard:
            return thing_name.startswith(self.text)
        return thing_name == self.text


@dataclass(frozen=True)
class SelectionRule:
    """The OR of ``alternatives``, each the AND of its patterns."""

    alternatives: tuple[tuple[NamePattern, ...], ...]

    def matches(self, thing_name: str) -> bool:
        return any(all(pattern.matches(thing_name) for pattern in both) for both in self.alternatives)


def parse_selection_rule(text: object, key: str) -> SelectionRule:
    """The rule ``text`` says.

    Raises:
        ClientDeviceConfigurationError: ``text`` is not a rule; ``key`` names where it was.
    """
    if not isinstance(text, str) or not text.strip():
        raise ClientDeviceConfigurationError(
            AUTH, key, f"must be a rule such as 'thingName: sensor*', not {text!r}"
        )
    if len(text) > MAX_RULE_LENGTH:
        raise ClientDeviceConfigurationError(
            AUTH, key, f"is {len(text)} characters; at most {MAX_RULE_LENGTH}"
        )
    words = [match.group(1) for match in _WORD.finditer(text)]
    alternatives: list[tuple[NamePattern, ...]] = []
    current: list[NamePattern] = []
    expect_term = True
    for word in words:
        if expect_term:
            current.append(_pattern(word, text, key))
        elif word == "OR":
            alternatives.append(tuple(current))
            current = []
        elif word != "AND":
            raise ClientDeviceConfigurationError(
                AUTH, key, f"{text!r} has {word!r} where OR or AND must join two terms"
            )
        expect_term = not expect_term
    if expect_term:
        raise ClientDeviceConfigurationError(AUTH, key, f"{text!r} ends with {words[-1]!r}, not with a term")
    alternatives.append(tuple(current))
    return SelectionRule(tuple(alternatives))


def _pattern(word: str, text: str, key: str) -> NamePattern:
    match = _TERM.fullmatch(word)
    if match is None:
        raise ClientDeviceConfigurationError(
            AUTH,
            key,
            f"{text!r} has {word!r} where a term 'thingName: <name>' must be (a name of letters, digits and "
            "':_-', with an optional * at its start or end)",
        )
    prefix, name, suffix = match.groups()
    if not name and not prefix:
        raise ClientDeviceConfigurationError(AUTH, key, f"{text!r} has a term without a thing name")
    if not name:  # a lone *: every name
        return NamePattern("", prefix_wildcard=True, suffix_wildcard=True)
    return NamePattern(name, prefix_wildcard=bool(prefix), suffix_wildcard=bool(suffix))

"""Device-group selection rules: Greengrass's ``thingName: pattern`` terms with OR and AND."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.runtime.clientdevices.errors import ClientDeviceConfigurationError
from edgewise.runtime.clientdevices.selection import parse_selection_rule

KEY = "deviceGroups.definitions.G.selectionRule"


@pytest.mark.parametrize(
    ("rule", "selected", "not_selected"),
    [
        ("thingName: sensor-1", ["sensor-1"], ["sensor-10", "a-sensor-1"]),
        ("thingName: sensor*", ["sensor", "sensor-1"], ["my-sensor"]),
        ("thingName: *-east", ["a-east", "-east"], ["a-west", "east"]),
        ("thingName: *pump*", ["pump", "big-pump-2"], ["pum-p"]),
        ("thingName: *", ["anything", "x"], []),
        ("thingName:a OR thingName: b", ["a", "b"], ["c"]),
        ("thingName: s* AND thingName: *-1", ["s-1"], ["s-2", "t-1"]),
        ("thingName: s* AND thingName: *-1 OR thingName: gw", ["s-1", "gw"], ["s-2", "gw-1"]),
        ("thingName: gw OR thingName: s* AND thingName: *-1", ["s-1", "gw"], ["s-2"]),
    ],
)
def test_rules_select_as_greengrass_documents_with_and_binding_tighter(
    rule: str, selected: list[str], not_selected: list[str]
) -> None:
    parsed = parse_selection_rule(rule, KEY)
    assert [name for name in selected if parsed.matches(name)] == selected
    assert [name for name in not_selected if parsed.matches(name)] == []


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ("", "must be a rule"),
        (42, "must be a rule"),
        ("thingName:", "without a thing name"),
        ("thingname: a", "where a term"),
        ("thingName: a OR", "ends with 'OR'"),
        ("thingName: a thingName: b", "where OR or AND must join"),
        ("thingName: a XOR thingName: b", "where OR or AND must join"),
        ("thingName: a*b", "where a term"),
        ("thingName: a.b", "where a term"),
        ("OR thingName: a", "where a term"),
    ],
)
def test_a_bad_rule_is_refused_naming_its_key(rule: object, problem: str) -> None:
    with pytest.raises(ClientDeviceConfigurationError) as caught:
        parse_selection_rule(rule, KEY)
    assert caught.value.key == KEY
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"aws.greengrass.clientdevices.Auth configuration {KEY} ")


_NAMES = st.text(alphabet="ab:-_", min_size=1, max_size=6)
_PATTERNS = st.tuples(st.booleans(), _NAMES, st.booleans())


def _regex(prefix: bool, name: str, suffix: bool) -> str:
    return (".*" if prefix else "") + re.escape(name) + (".*" if suffix else "")


@settings(max_examples=150, deadline=None)
@given(
    alternatives=st.lists(st.lists(_PATTERNS, min_size=1, max_size=3), min_size=1, max_size=3),
    thing=_NAMES,
)
def test_a_rule_selects_exactly_what_its_or_of_ands_of_globs_does(
    alternatives: list[list[tuple[bool, str, bool]]], thing: str
) -> None:
    text = " OR ".join(
        " AND ".join(f"thingName: {'*' if p else ''}{n}{'*' if s else ''}" for p, n, s in both)
        for both in alternatives
    )
    expected = any(all(re.fullmatch(_regex(*pattern), thing) for pattern in both) for both in alternatives)
    assert parse_selection_rule(text, KEY).matches(thing) == expected


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_a_rule_or_a_configuration_error(text: str) -> None:
    try:
        parse_selection_rule(text, KEY)
    except ClientDeviceConfigurationError as error:
        problem = error
    else:
        return
    assert problem.key == KEY

"""MQTT topic names and filters: what is valid, what matches, and what a policy filter covers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgewise.topics import (
    MAX_TOPIC_LENGTH,
    TopicError,
    filter_covers,
    filter_matches,
    has_wildcards,
    validate_filter,
    validate_topic,
)


@pytest.mark.parametrize(
    "topic", ["a", "a/b/c", "/leading", "trailing/", "a//b", "$aws/things/t/shadow", "é/ü"]
)
def test_concrete_topics_are_valid(topic: str) -> None:
    validate_topic(topic)


@pytest.mark.parametrize(
    ("topic", "problem"),
    [
        ("", "topic: must not be empty"),
        ("a/+", "contains a wildcard"),
        ("a/#", "contains a wildcard"),
        ("a+b", "contains a wildcard"),
        ("a\0b", "must not contain NUL"),
        ("x" * (MAX_TOPIC_LENGTH + 1), "longer than 65535 bytes"),
        ("é" * (MAX_TOPIC_LENGTH // 2 + 1), "longer than 65535 bytes"),  # counted in UTF-8 bytes
    ],
)
def test_invalid_topics_are_refused_with_the_problem(topic: str, problem: str) -> None:
    with pytest.raises(TopicError, match=problem):
        validate_topic(topic)


@pytest.mark.parametrize(
    "topic_filter", ["a", "#", "+", "a/#", "a/+/c", "+/+", "+/#", "/+", "a//#", "$aws/#"]
)
def test_well_formed_filters_are_valid(topic_filter: str) -> None:
    validate_filter(topic_filter)


@pytest.mark.parametrize(
    ("topic_filter", "problem"),
    [
        ("", "must not be empty"),
        ("a/#/b", "'#' other than as the whole last level"),
        ("#/", "'#' other than as the whole last level"),
        ("a#", "'#' other than as the whole last level"),
        ("a/b+", "'\\+' other than as a whole level"),
        ("++", "'\\+' other than as a whole level"),
        ("a\0", "must not contain NUL"),
        ("x" * (MAX_TOPIC_LENGTH + 1), "longer than 65535 bytes"),
    ],
)
def test_malformed_filters_are_refused_with_the_problem(topic_filter: str, problem: str) -> None:
    with pytest.raises(TopicError, match=problem):
        validate_filter(topic_filter)


@pytest.mark.parametrize(("text", "expected"), [("a/b", False), ("a/+", True), ("#", True), ("a+", True)])
def test_has_wildcards(text: str, expected: bool) -> None:
    assert has_wildcards(text) is expected


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+", "a", False),
        ("a/+", "a/", True),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("a/#", "ab", False),
        ("#", "anything/at/all", True),
        ("+/+", "/b", True),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("a/+/#", "a/b", True),
    ],
)
def test_filter_matches_follows_mqtt(topic_filter: str, topic: str, expected: bool) -> None:
    assert filter_matches(topic_filter, topic) is expected


@pytest.mark.parametrize(
    ("policy", "requested", "expected"),
    [
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/+/c", True),
        ("a/+/c", "a/#", False),
        ("a/#", "a/#", True),
        ("a/#", "a", True),
        ("a/#", "a/+/c", True),
        ("a/+", "a/#", False),
        ("a/b", "a/+", False),
        ("#", "#", True),
        ("a/b", "a/b/c", False),
        ("a/b/c", "a/b", False),
    ],
)
def test_filter_covers(policy: str, requested: str, expected: bool) -> None:
    assert filter_covers(policy, requested) is expected


# Plain levels only: a '$' first level is matched by no wildcard filter but still "covered" by a policy
# '#', which is how Greengrass's policy matching treats it.
_level = st.sampled_from(["a", "b", ""])
_topics = st.lists(_level, min_size=1, max_size=4).map("/".join).filter(bool)
_filters = st.builds(
    lambda levels, rest: "/".join(levels + (["#"] if rest else [])),
    st.lists(st.sampled_from(["a", "b", "", "+"]), max_size=4),
    st.booleans(),
).filter(bool)


@given(topic=_topics)
def test_a_topic_matches_itself_as_a_filter(topic: str) -> None:
    validate_filter(topic)
    assert filter_matches(topic, topic)


@given(policy=_filters, requested=_filters, topic=_topics)
def test_what_a_covering_policy_covers_it_also_matches(policy: str, requested: str, topic: str) -> None:
    if filter_covers(policy, requested) and filter_matches(requested, topic):
        assert filter_matches(policy, topic)


@given(topic_filter=_filters)
def test_every_filter_covers_itself(topic_filter: str) -> None:
    validate_filter(topic_filter)
    assert filter_covers(topic_filter, topic_filter)

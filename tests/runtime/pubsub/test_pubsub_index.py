"""The topic filter index agrees with the shared MQTT matching rules, whatever it holds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.runtime.pubsub._index import FilterIndex
from edgewise.topics import filter_matches

_level = st.sampled_from(["a", "b", "", "$sys"])
topics = st.lists(_level, min_size=1, max_size=4).map("/".join).filter(bool)
_filter_level = st.sampled_from(["a", "b", "", "+", "$sys"])
filters = st.builds(
    lambda levels, rest: "/".join(levels + (["#"] if rest else [])),
    st.lists(_filter_level, min_size=0, max_size=4),
    st.booleans(),
).filter(bool)


@settings(max_examples=300, deadline=None)
@given(stored=st.lists(filters, max_size=12), removed=st.sets(st.integers(0, 11)), topic=topics)
def test_match_finds_exactly_the_filters_that_match(stored: list[str], removed: set[int], topic: str) -> None:
    index: FilterIndex[int] = FilterIndex()
    for position, topic_filter in enumerate(stored):
        index.add(topic_filter, position)
    for position in removed:
        if position < len(stored):
            assert index.remove(stored[position], position)
    kept = [p for p in range(len(stored)) if p not in removed]

    assert sorted(index.match(topic)) == [p for p in kept if filter_matches(stored[p], topic)]
    assert len(index) == len(kept)


def test_removing_what_is_not_there_reports_false() -> None:
    index: FilterIndex[str] = FilterIndex()
    index.add("a/+", "x")
    assert not index.remove("a/+", "y")
    assert not index.remove("a/#", "x")
    assert not index.remove("a/b", "x")
    assert index.remove("a/+", "x")
    assert not index.remove("a/+", "x")
    assert len(index) == 0


def test_a_value_is_stored_once_per_filter() -> None:
    index: FilterIndex[str] = FilterIndex()
    index.add("a", "x")
    index.add("a", "x")
    index.add("a/#", "x")
    index.add("a/#", "x")
    assert len(index) == 2
    assert index.match("a") == ["x", "x"]  # one per filter

"""The sync's decisions (docs/runtime.md, "Conflicts"): which side changed, what both sides end up holding, and
the three-way merge (``desired`` from the cloud, ``reported`` from the device where both changed a field); the
replacement patch turns any state into any other through the shadow update semantics."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgewise.protocol.shadow.document import Shadow, UpdateRequest, apply_update
from edgewise.runtime.shadow.settings import SyncDirection
from edgewise.runtime.shadow.sync_decision import (
    SideView,
    SyncDecision,
    SyncRecord,
    decide,
    merge_states,
    replacement_patch,
    same,
)

BOTH = SyncDirection.BETWEEN_DEVICE_AND_CLOUD
UP = SyncDirection.DEVICE_TO_CLOUD
DOWN = SyncDirection.CLOUD_TO_DEVICE
BASE = {"desired": {"color": "red", "speed": 1}, "reported": {"color": "red", "speed": 1}}
RECORD = SyncRecord(local_version=4, cloud_version=9, state=BASE)

# JSON values as shadows hold them: no nulls, objects never empty, arrays of non-null values.
_leaf = st.one_of(st.booleans(), st.integers(-5, 5), st.sampled_from(["a", "b", ""]))
_key = st.sampled_from(["x", "y", "z"])
_value = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=2), st.dictionaries(_key, inner, min_size=1, max_size=3)
    ),
    max_leaves=6,
)
_section = st.dictionaries(_key, _value, min_size=1, max_size=3)
states = st.fixed_dictionaries({}, optional={"desired": _section, "reported": _section})


def _apply(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    previous = Shadow(current, {}, 1) if current else None
    outcome = apply_update(previous, UpdateRequest(patch), current_version=1, now=0, max_state_bytes=10**6)
    return outcome.shadow.state


@settings(max_examples=150, deadline=None)
@given(states, states)
def test_the_replacement_patch_turns_any_state_into_any_other(
    current: dict[str, Any], target: dict[str, Any]
) -> None:
    patch = replacement_patch(current, target)

    assert same(_apply(current, patch), target)
    assert (patch == {}) == same(current, target)


@settings(max_examples=150, deadline=None)
@given(states, states, states)
def test_a_merge_keeps_what_only_one_side_changed(
    base: dict[str, Any], local: dict[str, Any], cloud: dict[str, Any]
) -> None:
    assert same(merge_states(base, local, local), local)
    assert same(merge_states(base, base, cloud), cloud)
    assert same(merge_states(base, local, base), local)


@settings(max_examples=150, deadline=None)
@given(states, states, states)
def test_a_merged_field_comes_from_one_of_the_sides_with_desired_from_the_cloud_on_conflict(
    base: dict[str, Any], local: dict[str, Any], cloud: dict[str, Any]
) -> None:
    merged = merge_states(base, local, cloud)

    for section, owner in (("desired", cloud), ("reported", local)):
        for key, value in merged.get(section, {}).items():
            sides = [side.get(section, {}).get(key) for side in (local, cloud)]
            assert any(same(value, side) for side in sides) or isinstance(value, dict)
        for key in set(local.get(section, {})) & set(cloud.get(section, {})):
            mine, theirs = local[section][key], cloud[section][key]
            before = base.get(section, {}).get(key)
            objects = isinstance(mine, dict) and isinstance(theirs, dict)
            if not objects and not any(same(before, side) for side in (mine, theirs)):
                assert same(merged[section][key], owner[section][key])


def test_both_changed_the_same_fields_desired_from_the_cloud_reported_from_the_device() -> None:
    local = {"desired": {"color": "blue", "speed": 1}, "reported": {"color": "blue", "speed": 2}}
    cloud = {
        "desired": {"color": "green", "speed": 1, "mode": "eco"},
        "reported": {"color": "green", "speed": 1},
    }

    merged = merge_states(BASE, local, cloud)

    assert merged == {
        "desired": {"color": "green", "speed": 1, "mode": "eco"},
        "reported": {"color": "blue", "speed": 2},
    }


def test_a_field_removed_on_one_side_is_removed_and_nested_objects_merge_field_by_field() -> None:
    base = {"desired": {"light": {"on": True, "level": 3}, "fan": 1}}
    local = {"desired": {"light": {"on": False, "level": 3}}}
    cloud = {"desired": {"light": {"on": True, "level": 5}, "fan": 1}}

    assert merge_states(base, local, cloud) == {"desired": {"light": {"on": False, "level": 5}}}


def test_a_first_sync_unites_both_documents() -> None:
    local = {"reported": {"temperature": 20}}
    cloud = {"desired": {"temperature": 22}, "reported": {"temperature": 19, "humidity": 40}}

    assert merge_states(None, local, cloud) == {
        "desired": {"temperature": 22},
        "reported": {"temperature": 20, "humidity": 40},
    }


def view(version: int, state: dict[str, Any] | None) -> SideView:
    return SideView(version, state)


CHANGED_LOCALLY = {"desired": {"color": "red", "speed": 1}, "reported": {"color": "blue", "speed": 1}}
CHANGED_IN_CLOUD = {"desired": {"color": "green", "speed": 1}, "reported": {"color": "red", "speed": 1}}
MERGED = {"desired": {"color": "green", "speed": 1}, "reported": {"color": "blue", "speed": 1}}


@pytest.mark.parametrize(
    ("local", "cloud", "record", "direction", "expected"),
    [
        pytest.param(view(4, BASE), view(9, BASE), RECORD, BOTH, None, id="in sync"),
        pytest.param(view(0, None), view(0, None), None, BOTH, None, id="nowhere"),
        pytest.param(
            view(5, CHANGED_LOCALLY),
            view(9, BASE),
            RECORD,
            BOTH,
            SyncDecision(CHANGED_LOCALLY, False, True),
            id="local",
        ),
        pytest.param(
            view(4, BASE),
            view(10, CHANGED_IN_CLOUD),
            RECORD,
            BOTH,
            SyncDecision(CHANGED_IN_CLOUD, True, False),
            id="cloud",
        ),
        pytest.param(
            view(5, CHANGED_LOCALLY),
            view(10, CHANGED_IN_CLOUD),
            RECORD,
            BOTH,
            SyncDecision(MERGED, True, True),
            id="both",
        ),
        pytest.param(
            view(4, None), view(9, BASE), RECORD, BOTH, SyncDecision(None, False, True), id="deleted locally"
        ),
        pytest.param(
            view(4, BASE), view(9, None), RECORD, BOTH, SyncDecision(None, True, False), id="deleted in cloud"
        ),
        pytest.param(
            view(5, CHANGED_LOCALLY),
            view(9, None),
            RECORD,
            BOTH,
            SyncDecision(None, True, False),
            id="a delete wins",
        ),
        pytest.param(
            view(4, None),
            view(9, None),
            RECORD,
            BOTH,
            SyncDecision(None, False, False),
            id="both deleted: record it",
        ),
        pytest.param(
            view(1, CHANGED_LOCALLY),
            view(0, None),
            None,
            BOTH,
            SyncDecision(CHANGED_LOCALLY, False, True),
            id="first: local",
        ),
        pytest.param(
            view(3, None),
            view(2, CHANGED_IN_CLOUD),
            None,
            BOTH,
            SyncDecision(CHANGED_IN_CLOUD, True, False),
            id="first: cloud",
        ),
        pytest.param(
            view(2, BASE), view(7, BASE), None, BOTH, SyncDecision(BASE, False, False), id="first: equal"
        ),
        pytest.param(
            view(5, CHANGED_LOCALLY),
            view(10, CHANGED_IN_CLOUD),
            RECORD,
            UP,
            SyncDecision(CHANGED_LOCALLY, False, True),
            id="up: device wins",
        ),
        pytest.param(view(4, BASE), view(10, CHANGED_IN_CLOUD), RECORD, UP, None, id="up: cloud ignored"),
        pytest.param(
            view(4, None), view(9, BASE), RECORD, UP, SyncDecision(None, False, True), id="up: delete pushed"
        ),
        pytest.param(view(0, None), view(3, BASE), None, UP, None, id="up: first, cloud only"),
        pytest.param(
            view(5, CHANGED_LOCALLY),
            view(10, CHANGED_IN_CLOUD),
            RECORD,
            DOWN,
            SyncDecision(CHANGED_IN_CLOUD, True, False),
            id="down: cloud wins",
        ),
        pytest.param(
            view(5, CHANGED_LOCALLY), view(9, BASE), RECORD, DOWN, None, id="down: local kept local"
        ),
        pytest.param(
            view(4, BASE),
            view(9, None),
            RECORD,
            DOWN,
            SyncDecision(None, True, False),
            id="down: delete pulled",
        ),
        pytest.param(view(2, BASE), view(0, None), None, DOWN, None, id="down: first, local only"),
    ],
)
def test_decisions(
    local: SideView,
    cloud: SideView,
    record: SyncRecord | None,
    direction: SyncDirection,
    expected: SyncDecision | None,
) -> None:
    assert decide(local, cloud, record, direction) == expected


def test_a_cloud_get_answer_with_its_delta_is_compared_on_desired_and_reported_only() -> None:
    cloud = view(9, {**BASE, "delta": {"speed": 2}})

    assert decide(view(4, BASE), cloud, RECORD, BOTH) is None


def test_same_is_json_equality() -> None:
    assert same(1, 1.0)
    assert not same(True, 1)
    assert not same({"a": [1, 2]}, {"a": [2, 1]})

"""What the store's operations do to the tree: merge, set, remove, replace_all, component updates."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from edgewise.runtime.config import (
    ConfigChange,
    ConfigError,
    ConfigStore,
    InvalidPointerError,
    StaleUpdateError,
)

CONFIG = ("services", "hello", "configuration")


def test_merge_of_objects_keeps_the_keys_it_does_not_mention(store: ConfigStore) -> None:
    store.merge(("a",), {"x": 1, "y": {"z": 2}}, timestamp=10)
    store.merge(("a",), {"y": {"w": 3}}, timestamp=20)
    assert store.get(("a",)) == {"x": 1, "y": {"z": 2, "w": 3}}


def test_merge_replaces_lists_whole(store: ConfigStore) -> None:
    store.merge((), {"l": [1, 2, 3]}, timestamp=10)
    changes = store.merge((), {"l": [4]}, timestamp=20)
    assert store.get(("l",)) == [4]
    assert changes == [ConfigChange(("l",), "changed")]


def test_merge_with_an_older_timestamp_keeps_the_newer_value(store: ConfigStore) -> None:
    store.merge((), {"k": "new", "other": 1}, timestamp=20)
    changes = store.merge((), {"k": "old", "other": 2}, timestamp=10)
    assert store.get() == {"k": "new", "other": 1}
    assert changes == []


def test_merge_with_an_equal_timestamp_wins(store: ConfigStore) -> None:
    store.merge((), {"k": 1}, timestamp=10)
    store.merge((), {"k": 2}, timestamp=10)
    assert store.get(("k",)) == 2


def test_merge_of_an_equal_value_with_a_newer_timestamp_moves_the_timestamp(store: ConfigStore) -> None:
    store.merge((), {"k": 1}, timestamp=10)
    assert store.merge((), {"k": 1}, timestamp=30) == []
    assert store.timestamp(("k",)) == 30
    store.merge((), {"k": 2}, timestamp=20)
    assert store.get(("k",)) == 1


def test_merge_tells_json_types_apart(store: ConfigStore) -> None:
    store.merge((), {"k": 1}, timestamp=10)
    assert store.merge((), {"k": True}, timestamp=20) == [ConfigChange(("k",), "changed")]
    assert store.merge((), {"k": 1.0}, timestamp=30) == [ConfigChange(("k",), "changed")]
    assert json.dumps(store.get()) == '{"k": 1.0}'


def test_merge_accepts_null_and_empty_objects(store: ConfigStore) -> None:
    store.merge((), {"n": None, "e": {}, "l": []}, timestamp=10)
    assert store.get() == {"n": None, "e": {}, "l": []}
    assert store.contains(("n",))
    assert not store.contains(("missing",))


def test_merge_replaces_an_older_scalar_by_an_object_and_back(store: ConfigStore) -> None:
    store.merge((), {"k": 1}, timestamp=10)
    store.merge((), {"k": {"deep": True}}, timestamp=20)
    assert store.get() == {"k": {"deep": True}}
    store.merge((), {"k": "flat"}, timestamp=30)
    assert store.get() == {"k": "flat"}


def test_merge_keeps_an_object_whose_newest_leaf_is_newer_than_the_scalar(store: ConfigStore) -> None:
    store.merge((), {"k": {"a": 1}}, timestamp=10)
    store.merge(("k",), {"b": 2}, timestamp=30)
    store.merge((), {"k": "flat"}, timestamp=20)
    assert store.get() == {"k": {"a": 1, "b": 2}}


def test_merge_at_a_path_creates_the_objects_on_the_way(store: ConfigStore) -> None:
    changes = store.merge(("services", "hello", "configuration"), {"k": 1}, timestamp=10)
    assert store.get() == {"services": {"hello": {"configuration": {"k": 1}}}}
    assert changes == [ConfigChange(("services",), "changed")]


def test_strict_merge_with_a_stale_node_raises_and_changes_nothing(store: ConfigStore) -> None:
    store.merge((), {"a": 1, "b": {"c": 2}}, timestamp=10)
    store.merge(("b",), {"c": 3}, timestamp=50)
    with pytest.raises(
        StaleUpdateError, match="'/b/c' was modified at 50 ms, after the update's timestamp 20 ms"
    ) as caught:
        store.merge((), {"a": 9, "b": {"c": 9}}, timestamp=20, strict=True)
    assert caught.value.path == ("b", "c")
    assert caught.value.stored_timestamp == 50
    assert caught.value.update_timestamp == 20
    assert store.get() == {"a": 1, "b": {"c": 3}}


def test_strict_merge_without_stale_nodes_applies(store: ConfigStore) -> None:
    store.merge((), {"a": 1}, timestamp=10)
    store.merge((), {"a": 2, "b": 3}, timestamp=10, strict=True)
    assert store.get() == {"a": 2, "b": 3}


def test_set_replaces_a_newer_node_and_its_children(store: ConfigStore) -> None:
    store.merge((), {"k": {"a": 1, "b": 2}}, timestamp=100)
    changes = store.set(("k",), {"a": 1}, timestamp=5)
    assert store.get() == {"k": {"a": 1}}
    assert changes == [ConfigChange(("k", "b"), "removed")]
    assert store.timestamp(("k", "a")) == 5


def test_set_below_a_scalar_turns_it_into_an_object(store: ConfigStore) -> None:
    store.set(("k",), 1, timestamp=10)
    store.set(("k", "a", "b"), [1], timestamp=20)
    assert store.get() == {"k": {"a": {"b": [1]}}}


def test_set_at_the_root_requires_an_object(store: ConfigStore) -> None:
    with pytest.raises(ConfigError, match="the root must be an object, got a int"):
        store.set((), 5, timestamp=1)


def test_remove_deletes_the_node_whatever_its_timestamp(store: ConfigStore) -> None:
    store.merge((), {"a": {"b": 1, "c": 2}}, timestamp=100)
    assert store.remove(("a", "b"), timestamp=1) == [ConfigChange(("a", "b"), "removed")]
    assert store.get() == {"a": {"c": 2}}
    assert store.remove(("a", "missing"), timestamp=1) == []
    assert store.remove(("a", "c", "below-a-leaf"), timestamp=1) == []


def test_remove_of_the_root_empties_the_tree(store: ConfigStore) -> None:
    store.merge((), {"a": 1, "b": 2}, timestamp=10)
    changes = store.remove((), timestamp=20)
    assert store.get() == {}
    assert set(changes) == {ConfigChange(("a",), "removed"), ConfigChange(("b",), "removed")}


def test_get_returns_a_copy_that_callers_cannot_use_to_change_the_store(store: ConfigStore) -> None:
    value = {"l": [1, {"x": 2}]}
    store.merge((), value, timestamp=10)
    value["l"].append(3)
    got = store.get()
    got["l"][1]["x"] = 99
    assert store.get() == {"l": [1, {"x": 2}]}


def test_get_of_a_missing_path_or_below_a_leaf_is_none(store: ConfigStore) -> None:
    store.merge((), {"k": [1, 2]}, timestamp=10)
    assert store.get(("missing",)) is None
    assert store.get(("k", "0")) is None
    assert store.timestamp(("missing",)) is None


def test_timestamp_of_an_object_is_its_newest_leaf(store: ConfigStore) -> None:
    store.merge((), {"a": {"x": 1}}, timestamp=10)
    store.merge(("a",), {"y": {"z": 2}}, timestamp=40)
    store.merge(("a",), {"x": 3}, timestamp=20)
    assert store.timestamp(("a",)) == 40
    assert store.timestamp(()) == 40


def test_replace_all_restores_the_tree_exactly(store: ConfigStore) -> None:
    store.merge((), {"services": {"old": {"version": "1.0.0"}}, "system": {"x": 1}}, timestamp=10)
    backup: dict[str, Any] = {"system": {"x": 1.0, "y": [True, None]}, "services": {}}
    before = time.time_ns() // 1_000_000
    changes = store.replace_all(backup)
    assert json.dumps(store.get()) == json.dumps(backup)
    assert (store.timestamp(("system", "y")) or 0) >= before
    assert set(changes) == {
        ConfigChange(("services", "old"), "removed"),
        ConfigChange(("system", "x"), "changed"),
        ConfigChange(("system", "y"), "changed"),
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": {1: "x"}}, "Key 1 under '/a' is a int, not a string"),
        ({"a": {"b": {1, 2}}}, "Value at '/a/b' is a set, which is not a JSON value"),
        ({"a": [1, float("nan")]}, "Value at '/a/1' is nan, which JSON cannot hold"),
        ({"a": b"bytes"}, "Value at '/a' is a bytes"),
    ],
)
def test_merge_of_non_json_is_rejected_naming_the_place(
    store: ConfigStore, value: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        store.merge((), value, timestamp=1)
    assert store.get() == {}


def test_merge_of_a_non_object_is_rejected(store: ConfigStore) -> None:
    with pytest.raises(ConfigError, match=r"Value for '/a' must be an object, got a list"):
        store.merge(("a",), [1], timestamp=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("timestamp", [-1, 1.5, True, "10"])
def test_bad_timestamps_are_rejected(store: ConfigStore, timestamp: Any) -> None:
    with pytest.raises(ConfigError, match="timestamp must be a non-negative integer"):
        store.merge((), {"a": 1}, timestamp=timestamp)


def test_a_string_path_is_a_programming_error(store: ConfigStore) -> None:
    with pytest.raises(TypeError, match="not the string 'services'"):
        store.get("services")


def test_a_non_string_key_in_a_path_is_rejected(store: ConfigStore) -> None:
    with pytest.raises(ConfigError, match="Key 1 of path \\('a', 2\\) is a int"):
        store.get(("a", 2))  # type: ignore[arg-type]


def test_keys_are_case_sensitive(store: ConfigStore) -> None:
    store.merge((), {"Message": "a"}, timestamp=10)
    store.merge((), {"message": "b"}, timestamp=10)
    assert store.get() == {"Message": "a", "message": "b"}


def test_a_closed_store_refuses_changes_but_still_reads(store: ConfigStore) -> None:
    store.merge((), {"a": 1}, timestamp=10)
    store.close()
    with pytest.raises(RuntimeError, match="is closed"):
        store.merge((), {"a": 2}, timestamp=20)
    assert store.get() == {"a": 1}


# --- component updates: RESET, then defaults for what is missing, then MERGE (as Greengrass applies them) --------


def test_first_deployment_applies_defaults_then_merge(store: ConfigStore) -> None:
    store.apply_component_update(
        "hello", defaults={"msg": "hi", "n": 1, "l": [1, 2]}, merge={"n": 5}, reset=[], timestamp=1000
    )
    assert store.get(CONFIG) == {"msg": "hi", "n": 5, "l": [1, 2]}
    assert store.timestamp((*CONFIG, "msg")) == 1
    assert store.timestamp((*CONFIG, "n")) == 1000


def test_a_changed_default_does_not_change_a_present_value(store: ConfigStore) -> None:
    store.apply_component_update("hello", defaults={"msg": "hi"}, merge=None, reset=[], timestamp=1000)
    changes = store.apply_component_update(
        "hello", defaults={"msg": "hello", "new": True}, merge=None, reset=[], timestamp=2000
    )
    assert store.get(CONFIG) == {"msg": "hi", "new": True}
    assert changes == [ConfigChange((*CONFIG, "new"), "changed")]


def test_a_key_dropped_from_defaults_or_merge_stays(store: ConfigStore) -> None:
    store.apply_component_update("hello", defaults={"a": 1}, merge={"b": 2}, reset=[], timestamp=1000)
    store.apply_component_update("hello", defaults={}, merge={}, reset=[], timestamp=2000)
    assert store.get(CONFIG) == {"a": 1, "b": 2}


def test_reset_then_defaults_refill_the_reset_keys(store: ConfigStore) -> None:
    store.apply_component_update(
        "hello", defaults={"a": 1, "b": {"c": 2}}, merge=None, reset=[], timestamp=10
    )
    store.apply_component_update("hello", defaults={}, merge={"a": 7, "b": {"c": 8}}, reset=[], timestamp=20)
    store.apply_component_update(
        "hello", defaults={"a": 100, "b": {"c": 200}}, merge=None, reset=["/b/c"], timestamp=30
    )
    assert store.get(CONFIG) == {"a": 7, "b": {"c": 200}}


def test_reset_of_everything_then_defaults_gives_the_defaults(store: ConfigStore) -> None:
    store.apply_component_update("hello", defaults={"a": 1}, merge={"a": 2, "x": 3}, reset=[], timestamp=10)
    store.apply_component_update("hello", defaults={"a": 1}, merge=None, reset=[""], timestamp=20)
    assert store.get(CONFIG) == {"a": 1}


def test_reset_with_identical_defaults_reports_no_change(store: ConfigStore) -> None:
    store.apply_component_update("hello", defaults={"a": {"b": 1}}, merge=None, reset=[], timestamp=10)
    changes = store.apply_component_update(
        "hello", defaults={"a": {"b": 1}}, merge=None, reset=[""], timestamp=20
    )
    assert changes == []


def test_merge_replaces_lists_whole_in_a_component_update(store: ConfigStore) -> None:
    store.apply_component_update("hello", defaults={"l": [1, 2, 3]}, merge=None, reset=[], timestamp=10)
    store.apply_component_update("hello", defaults={"l": [1, 2, 3]}, merge={"l": [9]}, reset=[], timestamp=20)
    assert store.get((*CONFIG, "l")) == [9]


def test_an_older_deployment_does_not_overwrite_a_newer_update(store: ConfigStore) -> None:
    store.apply_component_update("hello", defaults={}, merge={"k": "new"}, reset=[], timestamp=2000)
    store.apply_component_update("hello", defaults={}, merge={"k": "old", "j": 1}, reset=[], timestamp=1000)
    assert store.get(CONFIG) == {"k": "new", "j": 1}


def test_a_component_without_configuration_gets_an_empty_object(store: ConfigStore) -> None:
    store.apply_component_update("hello", defaults={}, merge=None, reset=[], timestamp=10)
    assert store.get(CONFIG) == {}


def test_reset_into_a_list_element_is_rejected_and_nothing_changes(store: ConfigStore) -> None:
    store.apply_component_update(
        "hello", defaults={"a": {"l": [1, 2]}, "b": 1}, merge=None, reset=[], timestamp=10
    )
    with pytest.raises(ConfigError, match=r"'/a/l/0' addresses an element of the list at '/services/hello/"):
        store.apply_component_update(
            "hello", defaults={}, merge={"b": 2}, reset=["/b", "/a/l/0"], timestamp=20
        )
    assert store.get(CONFIG) == {"a": {"l": [1, 2]}, "b": 1}


def test_reset_with_bad_pointer_syntax_is_rejected_and_nothing_changes(store: ConfigStore) -> None:
    store.apply_component_update("hello", defaults={"b": 1}, merge=None, reset=[], timestamp=10)
    with pytest.raises(InvalidPointerError, match="'b'") as caught:
        store.apply_component_update("hello", defaults={}, merge={"b": 2}, reset=["", "b"], timestamp=20)
    assert caught.value.pointer == "b"
    assert store.get(CONFIG) == {"b": 1}


def test_a_bad_merge_value_is_rejected_before_reset_runs(store: ConfigStore) -> None:
    store.apply_component_update("hello", defaults={"b": 1}, merge=None, reset=[], timestamp=10)
    with pytest.raises(ConfigError, match="Value at '/services/hello/configuration/x' is a object"):
        store.apply_component_update("hello", defaults={}, merge={"x": object()}, reset=[""], timestamp=20)
    assert store.get(CONFIG) == {"b": 1}


def test_reset_may_name_a_whole_list_or_a_missing_key(store: ConfigStore) -> None:
    store.apply_component_update("hello", defaults={"l": [1]}, merge={"l": [1, 2]}, reset=[], timestamp=10)
    store.apply_component_update(
        "hello", defaults={"l": [1]}, merge=None, reset=["/l", "/no/such"], timestamp=20
    )
    assert store.get(CONFIG) == {"l": [1]}


def test_a_component_update_leaves_other_components_alone(store: ConfigStore) -> None:
    store.apply_component_update("other", defaults={"a": 1}, merge=None, reset=[], timestamp=10)
    store.apply_component_update("hello", defaults={"a": 2}, merge=None, reset=[""], timestamp=20)
    assert store.get(("services", "other", "configuration")) == {"a": 1}

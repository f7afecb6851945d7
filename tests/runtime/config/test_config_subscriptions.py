"""Who hears about a change: subscriptions by prefix, changes to ancestors, unsubscribing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edgewise.runtime.config import ConfigChange, ConfigStore

HELLO = ("services", "hello")
CONFIG = (*HELLO, "configuration")


def recorder(store: ConfigStore, prefix: tuple[str, ...]) -> list[ConfigChange]:
    heard: list[ConfigChange] = []
    store.subscribe(prefix, heard.append)
    return heard


def test_a_subscriber_hears_changes_at_and_under_its_prefix_only(store: ConfigStore) -> None:
    store.merge(HELLO, {"configuration": {"k": 1}, "version": "1.0.0"}, timestamp=10)
    heard = recorder(store, CONFIG)
    store.merge(CONFIG, {"k": 2, "new": {"x": 1}}, timestamp=20)
    store.merge(HELLO, {"version": "2.0.0"}, timestamp=20)
    store.merge(("services", "other", "configuration"), {"k": 3}, timestamp=20)
    store.remove((*CONFIG, "k"), timestamp=30)
    assert heard == [
        ConfigChange((*CONFIG, "k"), "changed"),
        ConfigChange((*CONFIG, "new"), "changed"),
        ConfigChange((*CONFIG, "k"), "removed"),
    ]


def test_a_subscriber_hears_a_change_exactly_at_its_prefix(store: ConfigStore) -> None:
    heard = recorder(store, (*CONFIG, "k"))
    store.merge(CONFIG, {"k": 1}, timestamp=10)
    store.set((*CONFIG, "k"), [1], timestamp=20)
    assert heard == [ConfigChange(("services",), "changed"), ConfigChange((*CONFIG, "k"), "changed")]


def test_a_subscriber_hears_when_an_ancestor_is_replaced(store: ConfigStore) -> None:
    store.merge(HELLO, {"configuration": {"k": 1}, "version": "1.0.0"}, timestamp=10)
    heard = recorder(store, (*CONFIG, "k"))
    store.set(HELLO, {"version": "2.0.0"}, timestamp=20)
    assert heard == [ConfigChange(CONFIG, "removed")]


def test_a_subscriber_hears_when_a_scalar_ancestor_becomes_an_object_holding_its_prefix(
    store: ConfigStore,
) -> None:
    store.merge((), {"a": 5}, timestamp=10)
    heard = recorder(store, ("a", "b"))
    store.merge((), {"a": {"b": 1}}, timestamp=20)
    assert heard == [ConfigChange(("a",), "changed")]


def test_an_ancestor_change_that_never_touched_the_prefix_is_not_heard(store: ConfigStore) -> None:
    store.merge((), {"a": {"x": 1}}, timestamp=10)
    heard = recorder(store, ("a", "b", "c"))
    store.set(("a",), 7, timestamp=20)
    store.remove(("a",), timestamp=30)
    assert heard == []


def test_the_root_subscriber_hears_everything(store: ConfigStore) -> None:
    heard = recorder(store, ())
    store.merge((), {"a": 1}, timestamp=10)
    store.remove((), timestamp=20)
    assert heard == [ConfigChange(("a",), "changed"), ConfigChange(("a",), "removed")]


def test_nothing_is_heard_when_only_a_timestamp_moves(store: ConfigStore) -> None:
    store.merge((), {"a": 1}, timestamp=10)
    heard = recorder(store, ())
    store.merge((), {"a": 1}, timestamp=20)
    store.merge((), {"a": 2}, timestamp=5)
    assert heard == []


def test_a_component_update_is_heard_as_its_net_change(store: ConfigStore) -> None:
    store.apply_component_update("hello", defaults={"a": 1, "b": 2}, merge=None, reset=[], timestamp=10)
    heard = recorder(store, CONFIG)
    store.apply_component_update("hello", defaults={"a": 1, "b": 3}, merge={"c": 4}, reset=[""], timestamp=20)
    assert heard == [ConfigChange((*CONFIG, "b"), "changed"), ConfigChange((*CONFIG, "c"), "changed")]


def test_after_unsubscribing_nothing_is_heard(store: ConfigStore) -> None:
    heard: list[ConfigChange] = []
    unsubscribe = store.subscribe((), heard.append)
    store.merge((), {"a": 1}, timestamp=10)
    unsubscribe()
    unsubscribe()
    store.merge((), {"a": 2}, timestamp=20)
    assert heard == [ConfigChange(("a",), "changed")]


def test_a_subscriber_removed_during_delivery_hears_no_more(store: ConfigStore) -> None:
    heard: list[ConfigChange] = []
    unsubscribe_first = store.subscribe((), heard.append)
    store.subscribe((), lambda change: unsubscribe_first())
    store.merge((), {"a": 1, "b": 2}, timestamp=10)
    assert heard == [ConfigChange(("a",), "changed")]


def test_callbacks_run_once_the_change_is_on_disk(store: ConfigStore, store_dir: Path) -> None:
    seen_on_disk: list[bool] = []
    store.subscribe(
        (), lambda change: seen_on_disk.append(b"durable-value" in (store_dir / "config.tlog").read_bytes())
    )
    store.merge((), {"a": "durable-value"}, timestamp=10)
    assert seen_on_disk == [True]


def test_a_failing_callback_is_logged_and_the_others_still_hear(
    store: ConfigStore, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(change: ConfigChange) -> None:
        raise ValueError("boom")

    store.subscribe((), explode)
    heard = recorder(store, ())
    with caplog.at_level(logging.ERROR):
        changes = store.merge((), {"a": 1}, timestamp=10)
    assert heard == changes == [ConfigChange(("a",), "changed")]
    assert "Configuration subscriber" in caplog.text
    assert "boom" in caplog.text

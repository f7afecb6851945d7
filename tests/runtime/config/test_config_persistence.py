"""The store on disk: what survives a reopen, a torn or damaged log, and a crash during compaction."""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgewise.runtime.config import ConfigError, ConfigStore, StaleUpdateError

LOG = "config.tlog"
SNAPSHOT = "config.snapshot.json"


def public(value: Any) -> Any:
    """The value without the keys starting with ``_`` (they are never written to disk)."""
    if isinstance(value, dict):
        return {key: public(item) for key, item in value.items() if not key.startswith("_")}
    return value


def has_private(value: Any) -> bool:
    return isinstance(value, dict) and any(key.startswith("_") or has_private(v) for key, v in value.items())


def timestamps(store: ConfigStore) -> dict[tuple[str, ...], int | None]:
    """The timestamp of every node whose subtree holds no in-memory-only key, by path."""
    found: dict[tuple[str, ...], int | None] = {}

    def walk(path: tuple[str, ...], value: Any) -> None:
        if not has_private(value):
            found[path] = store.timestamp(path)
        if isinstance(value, dict):
            for key, item in value.items():
                if not key.startswith("_"):
                    walk((*path, key), item)

    walk((), store.get())
    return found


def assert_same_on_disk(store: ConfigStore, reopened: ConfigStore) -> None:
    """``reopened`` holds exactly what ``store`` holds in memory, but for the in-memory-only keys."""
    assert json.dumps(reopened.get()) == json.dumps(public(store.get()))
    expected = timestamps(store)
    assert {path: reopened.timestamp(path) for path in expected} == expected


def log_lines(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (directory / LOG).read_bytes().splitlines()]


def write_history(store: ConfigStore) -> None:
    """A mix of every kind of change, including the ones replay must handle with care."""
    store.merge(("services", "hello"), {"version": "1.0.0", "lifecycle": {"run": "echo"}}, timestamp=10)
    store.apply_component_update(
        "hello", defaults={"a": 1, "l": [1, 2]}, merge={"b": {"c": 2}}, reset=[], timestamp=20
    )
    store.set(("system", "thingName"), "dev-1", timestamp=30)
    store.set(("x", "y"), 1, timestamp=31)
    store.set(("x",), 5, timestamp=32)
    store.set(("x", "z"), {"deep": [None]}, timestamp=33)
    store.merge((), {"k": 1}, timestamp=40)
    store.merge((), {"k": 1}, timestamp=45)
    store.remove(("services", "hello", "configuration", "l"), timestamp=50)
    store.merge(("services", "hello"), {"_private": {"token": "secret"}}, timestamp=60)


@pytest.fixture
def history(store_dir: Path) -> ConfigStore:
    """A store with some history, closed: its files are as a stopped runtime leaves them."""
    with ConfigStore.open(store_dir) as store:
        write_history(store)
    return store


def test_reopen_gives_the_same_tree_and_timestamps(store_dir: Path, history: ConfigStore) -> None:
    with ConfigStore.open(store_dir) as reopened:
        assert_same_on_disk(history, reopened)
        assert reopened.timestamp(("k",)) == 45


def test_in_memory_only_keys_never_reach_the_disk(store_dir: Path, history: ConfigStore) -> None:
    assert history.get(("services", "hello", "_private")) == {"token": "secret"}
    assert b"secret" not in (store_dir / LOG).read_bytes()
    with ConfigStore.open(store_dir) as reopened:
        assert not reopened.contains(("services", "hello", "_private"))
        reopened.compact()
    assert b"_private" not in (store_dir / SNAPSHOT).read_bytes()


def test_the_log_has_the_greengrass_line_shape(store_dir: Path) -> None:
    with ConfigStore.open(store_dir) as store:
        store.merge(("services", "x", "configuration"), {"k": 42}, timestamp=1625836341225)
        store.remove(("services", "x", "configuration", "k"), timestamp=1625836341226)
    assert log_lines(store_dir) == [
        {"TS": 1625836341225, "TP": ["services"], "W": "changed", "V": {"x": {"configuration": {"k": 42}}}},
        {"TS": 1625836341226, "TP": ["services", "x", "configuration", "k"], "W": "removed", "V": None},
    ]


def test_one_call_is_one_batch_of_lines(store_dir: Path) -> None:
    with ConfigStore.open(store_dir) as store:
        store.merge((), {"a": 1, "b": 2, "c": 3}, timestamp=10)
        store.merge((), {"a": 2, "b": 3, "c": 4}, timestamp=20)
    lines = log_lines(store_dir)
    assert [line.get("B") for line in lines] == [3, None, None, 3, None, None]


@pytest.mark.parametrize("last_change", ["one line", "a batch of lines"])
def test_a_torn_last_record_is_ignored_at_every_cut(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, last_change: str
) -> None:
    original = tmp_path / "original"
    with ConfigStore.open(original) as store:
        write_history(store)
        expected = public(store.get())
        start = (original / LOG).stat().st_size
        if last_change == "one line":
            store.merge(("system",), {"thingName": "dev-2"}, timestamp=70)
        else:
            store.apply_component_update(
                "hello", defaults={"n": 1}, merge={"a": 9, "m": [1]}, reset=["/b"], timestamp=70
            )
    data = (original / LOG).read_bytes()
    assert len(data) - start > 10
    for cut in range(start, len(data)):
        directory = tmp_path / f"cut-{cut}"
        directory.mkdir()
        (directory / LOG).write_bytes(data[:cut])
        caplog.clear()
        with ConfigStore.open(directory) as reopened:
            assert reopened.get() == expected, f"cut at byte {cut}"
            reopened.merge((), {"after": cut}, timestamp=80)
        assert (cut > start) == any(r.levelno == logging.WARNING for r in caplog.records), (
            f"cut at byte {cut}"
        )
        with ConfigStore.open(directory) as again:
            assert again.get() == {**expected, "after": cut}, f"cut at byte {cut}"
        shutil.rmtree(directory)


def test_a_garbled_last_line_is_ignored_with_a_warning(
    store_dir: Path, history: ConfigStore, caplog: pytest.LogCaptureFixture
) -> None:
    with (store_dir / LOG).open("ab") as file:
        file.write(b'{"TS": 1, "TP": ["a"], "W": "exploded"}\n')
    with caplog.at_level(logging.WARNING), ConfigStore.open(store_dir) as reopened:
        assert_same_on_disk(history, reopened)
    assert "Ignoring the torn end" in caplog.text
    assert "'W' is 'exploded'" in caplog.text


def test_a_damaged_line_in_the_middle_keeps_what_came_before(
    store_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with ConfigStore.open(store_dir) as store:
        store.merge((), {"a": 1}, timestamp=10)
        store.merge((), {"b": 2}, timestamp=20)
        store.merge((), {"c": 3}, timestamp=30)
    lines = (store_dir / LOG).read_bytes().splitlines(keepends=True)
    damaged = lines[0] + b"\x00garbage\n" + lines[2]
    (store_dir / LOG).write_bytes(damaged)
    with caplog.at_level(logging.WARNING), ConfigStore.open(store_dir) as reopened:
        assert reopened.get() == {"a": 1}
        reopened.merge((), {"d": 4}, timestamp=40)
    assert [r.levelname for r in caplog.records if "damaged" in r.getMessage()] == ["ERROR"]
    assert (store_dir / "config.tlog.corrupt").read_bytes() == damaged
    with ConfigStore.open(store_dir) as again:
        assert again.get() == {"a": 1, "d": 4}


def test_a_damaged_snapshot_stops_the_open(store_dir: Path, history: ConfigStore) -> None:
    with ConfigStore.open(store_dir) as store:
        store.compact()
    (store_dir / SNAPSHOT).write_text('{"format": 1, "tree": {"T": 1, "C": {"a": {"T": "x", "V": 1}}}}')
    with pytest.raises(
        ConfigError, match=r"config.snapshot.json' is damaged: node at \('a',\) has no integer 'T'"
    ):
        ConfigStore.open(store_dir)


def test_compaction_empties_the_log_and_keeps_the_tree(store_dir: Path, history: ConfigStore) -> None:
    with ConfigStore.open(store_dir) as store:
        store.compact()
        assert (store_dir / LOG).stat().st_size == 0
        store.merge((), {"after": True}, timestamp=99)
    with ConfigStore.open(store_dir) as reopened:
        assert reopened.get() == {**public(history.get()), "after": True}
        assert reopened.timestamp(("services", "hello", "configuration", "a")) == 1


def test_the_store_compacts_itself_after_enough_lines(store_dir: Path) -> None:
    with ConfigStore.open(store_dir, compact_after=5) as store:
        for index in range(12):
            store.merge((), {"k": index}, timestamp=index)
        assert len(log_lines(store_dir)) < 5
        assert (store_dir / SNAPSHOT).exists()
    with ConfigStore.open(store_dir) as reopened:
        assert reopened.get() == {"k": 11}


@pytest.mark.parametrize(
    "crash_point",
    [
        "snapshot half written",
        "snapshot written, not renamed",
        "snapshot renamed, log not emptied",
        "log emptied",
        "first snapshot half written",
    ],
)
def test_a_crash_during_compaction_still_opens_to_the_right_tree(tmp_path: Path, crash_point: str) -> None:
    before = tmp_path / "before"
    with ConfigStore.open(before) as store:
        if crash_point != "first snapshot half written":
            store.merge((), {"early": {"x": 1}, "gone": 1}, timestamp=5)
            store.compact()
        write_history(store)
        store.remove(("gone",), timestamp=90)
    # What the compaction would have written, made by running it on a copy.
    after = tmp_path / "after"
    shutil.copytree(before, after)
    with ConfigStore.open(after) as compacted:
        compacted.compact()
    new_snapshot = (after / SNAPSHOT).read_bytes()

    crashed = tmp_path / "crashed"
    shutil.copytree(before, crashed)
    if crash_point in ("snapshot half written", "first snapshot half written"):
        (crashed / (SNAPSHOT + ".tmp")).write_bytes(new_snapshot[: len(new_snapshot) // 2])
    elif crash_point == "snapshot written, not renamed":
        (crashed / (SNAPSHOT + ".tmp")).write_bytes(new_snapshot)
    elif crash_point == "snapshot renamed, log not emptied":
        (crashed / SNAPSHOT).write_bytes(new_snapshot)
    else:
        (crashed / SNAPSHOT).write_bytes(new_snapshot)
        (crashed / LOG).write_bytes(b"")

    with ConfigStore.open(crashed) as reopened:
        assert_same_on_disk(store, reopened)
        reopened.merge((), {"later": 1}, timestamp=100)
    assert not (crashed / (SNAPSHOT + ".tmp")).exists()
    with ConfigStore.open(crashed) as again:
        assert again.get() == {**public(store.get()), "later": 1}


def test_a_failed_log_write_changes_nothing(store_dir: Path) -> None:
    store = ConfigStore.open(store_dir)
    store.merge((), {"a": {"b": 1}}, timestamp=10)
    size = (store_dir / LOG).stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    # The kernel then refuses to grow any file past the limit (EFBIG), part-way through the batch.
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 20, hard))
    try:
        with pytest.raises(ConfigError, match="Could not write to the configuration log"):
            store.merge(("a",), {"b": 2, "c": "x" * 100}, timestamp=20)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert store.get() == {"a": {"b": 1}}
    assert (store_dir / LOG).stat().st_size == size
    store.merge(("a",), {"c": 3}, timestamp=30)
    store.close()
    with ConfigStore.open(store_dir) as reopened:
        assert reopened.get() == {"a": {"b": 1, "c": 3}}


def test_write_effective_dumps_the_public_tree_as_yaml(tmp_path: Path, history: ConfigStore) -> None:
    target = tmp_path / "out" / "effectiveConfig.yaml"
    target.parent.mkdir()
    target.write_text("stale: true\n")
    history.write_effective(target)
    assert yaml.safe_load(target.read_text()) == public(history.get())
    assert "secret" not in target.read_text()
    assert sorted(p.name for p in target.parent.iterdir()) == ["effectiveConfig.yaml"]


# --- random histories -------------------------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "c", "_p"])
PATHS = st.lists(KEYS, max_size=3).map(tuple)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(max_size=2)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=6,
)
OBJECTS = st.dictionaries(KEYS, VALUES, max_size=3)
STAMPS = st.integers(0, 40)
OPERATIONS = st.one_of(
    st.tuples(st.just("merge"), PATHS, OBJECTS, STAMPS, st.booleans()),
    st.tuples(st.just("set"), PATHS, VALUES, STAMPS),
    st.tuples(st.just("remove"), PATHS, STAMPS),
    st.tuples(
        st.just("component"),
        st.sampled_from(["a", "b"]),
        OBJECTS,
        st.none() | OBJECTS,
        st.lists(st.sampled_from(["", "/a", "/a/b", "/b/0", "/_p"]), max_size=2),
        STAMPS,
    ),
    st.tuples(st.just("replace_all"), OBJECTS),
    st.tuples(st.just("compact")),
    st.tuples(st.just("reopen")),
)


def apply(store: ConfigStore, operation: tuple[Any, ...]) -> None:
    kind, *args = operation
    before = store.get()
    refused: ConfigError | None = None
    try:
        if kind == "merge":
            path, value, stamp, strict = args
            store.merge(path, value, timestamp=stamp, strict=strict)
        elif kind == "set":
            path, value, stamp = args
            store.set(path, value if path or isinstance(value, dict) else {"v": value}, timestamp=stamp)
        elif kind == "remove":
            path, stamp = args
            store.remove(path, timestamp=stamp)
        elif kind == "component":
            name, defaults, merge, reset, stamp = args
            store.apply_component_update(name, defaults=defaults, merge=merge, reset=reset, timestamp=stamp)
        elif kind == "replace_all":
            store.replace_all(args[0])
        elif kind == "compact":
            store.compact()
    except ConfigError as exc:
        refused = exc
    if refused is not None:
        # Only these two refusals can come from valid input, and a refusal changes nothing.
        assert isinstance(refused, StaleUpdateError) or "element of the list" in str(refused)
        assert store.get() == before


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPERATIONS, max_size=12), st.sampled_from([3, 10_000]))
def test_a_random_history_reopens_to_the_tree_in_memory(
    operations: list[tuple[Any, ...]], compact_after: int
) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        store = ConfigStore.open(directory, compact_after=compact_after, clock=lambda: 1000)
        try:
            for operation in operations:
                if operation[0] == "reopen":
                    store.close()
                    reopened = ConfigStore.open(directory, compact_after=compact_after, clock=lambda: 1000)
                    assert_same_on_disk(store, reopened)
                    store = reopened
                else:
                    apply(store, operation)
            store.close()
            with ConfigStore.open(directory) as reopened:
                assert_same_on_disk(store, reopened)
                assert LOG in os.listdir(directory)
                assert set(os.listdir(directory)) <= {LOG, SNAPSHOT}
        finally:
            store.close()

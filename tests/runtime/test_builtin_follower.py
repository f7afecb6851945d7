"""A built-in follows its node in the services tree: applied at start and after each change, failures logged
and survived."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.waiting import eventually

from edgewise.runtime.builtin_follower import BuiltinFollower
from edgewise.runtime.config import ConfigStore

NAME = "aws.greengrass.Example"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ConfigStore]:
    opened = ConfigStore.open(tmp_path / "config")
    yield opened
    opened.close()


def _configure(store: ConfigStore, name: str, value: Any) -> None:
    store.set(("services", name, "configuration"), value, timestamp=time.time_ns() // 1000)


class Recorder:
    """An ``apply`` that records the configuration it saw; it fails on ``{"fail": true}``."""

    def __init__(self, store: ConfigStore) -> None:
        self.seen: list[Any] = []
        self._store = store

    async def apply(self) -> None:
        configuration = self._store.get(("services", NAME, "configuration"))
        self.seen.append(configuration)
        if configuration == {"fail": True}:
            raise ValueError("cannot use it")


async def test_applies_at_start_and_after_each_change_of_its_nodes_only(store: ConfigStore) -> None:
    recorder = Recorder(store)
    _configure(store, NAME, {"a": 1})
    follower = BuiltinFollower(store, (NAME,), recorder.apply, what=NAME)
    await follower.start()
    try:
        assert recorder.seen == [{"a": 1}]
        _configure(store, NAME, {"a": 2})
        await eventually(lambda: recorder.seen[-1] == {"a": 2}, what="the change applied")
        _configure(store, "com.example.Other", {"b": 1})
        _configure(store, NAME, {"a": 3})
        await eventually(lambda: recorder.seen[-1] == {"a": 3}, what="the next change applied")
        assert {"b": 1} not in recorder.seen
        follower.reapply()
        await eventually(lambda: len(recorder.seen) == 4, what="the asked-for apply")
    finally:
        await follower.close()


async def test_a_failing_apply_is_logged_and_the_following_goes_on(
    store: ConfigStore, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(store)
    follower = BuiltinFollower(store, (NAME,), recorder.apply, what=NAME)
    await follower.start()
    try:
        with caplog.at_level(logging.ERROR):
            _configure(store, NAME, {"fail": True})
            await eventually(lambda: recorder.seen[-1] == {"fail": True}, what="the failing apply")
            await eventually(
                lambda: f"{NAME} could not apply its configuration" in caplog.text, what="the failure logged"
            )
        _configure(store, NAME, {"a": 1})
        await eventually(lambda: recorder.seen[-1] == {"a": 1}, what="the next change applied")
        with pytest.raises(RuntimeError, match="already followed"):
            await follower.start()
    finally:
        await follower.close()

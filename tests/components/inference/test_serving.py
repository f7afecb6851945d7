"""The inference server without IPC: a message becomes a published result, a message that does not fit is
counted and skipped, and a new model version swaps in between two messages, the old one kept loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgewise.components.inference.config import ServedModelConfig
from edgewise.components.inference.model import load_model
from edgewise.components.inference.serving import InferenceServer
from tests.components.inference.packages import KEY, write_hot_package

TRUSTED = [KEY.public_key()]


def served(version: str, *, passthrough: tuple[str, ...] = ("seq",)) -> ServedModelConfig:
    return ServedModelConfig(
        name="hot",
        component="edgewise.models.hot",
        version=version,
        input_topic="sensors/+/reading",
        output_topic="ml/hot/results",
        passthrough=passthrough,
    )


@pytest.fixture
def root(tmp_path: Path, hot_at_30: bytes, hot_at_20: bytes) -> Path:
    write_hot_package(served("1.0.0").package_dir(tmp_path), hot_at_30, version="1")
    write_hot_package(served("2.0.0").package_dir(tmp_path), hot_at_20, version="2")
    return tmp_path


def reading(seq: int, temp: float) -> bytes:
    return json.dumps({"seq": seq, "sensors": {"temp": temp}, "hum": 50}).encode()


def test_messages_become_results_and_misfits_are_counted_not_fatal(root: Path) -> None:
    published: list[tuple[str, dict[str, object]]] = []
    server = InferenceServer(
        root,
        publish=lambda config, result: published.append((config.output_topic, result)),
        thing="edge-1",
        clock=lambda: 1700000000.5,
    )
    server.install(served("1.0.0"), server.load(served("1.0.0"), TRUSTED))

    assert server.handle("hot", "sensors/a/reading", reading(1, 45.0)) == 1
    assert server.handle("hot", "sensors/a/reading", b"not json") == 0
    assert server.handle("hot", "sensors/a/reading", {"seq": 2, "hum": 1}) == 0
    assert server.handle("hot", "sensors/b/reading", {"seq": 3, "sensors": {"temp": 5}, "hum": 1}) == 1
    assert server.handle("unknown", "sensors/a/reading", reading(4, 45.0)) == 0

    assert [topic for topic, _ in published] == ["ml/hot/results"] * 2
    first = published[0][1]
    assert {
        key: first[key] for key in ("model", "version", "thing", "topic", "timestamp", "label", "passthrough")
    } == {
        "model": "hot",
        "version": "1",
        "thing": "edge-1",
        "topic": "sensors/a/reading",
        "timestamp": 1700000000500,
        "label": "hot",
        "passthrough": {"seq": 1},
    }
    assert published[1][1]["label"] == "cool"
    assert server.counter_lines() == [
        "counters model=hot version=1 messages=4 results=2 skipped=1 malformed=1 failed=0"
    ]
    assert server.counter_lines() == []  # nothing changed since


def test_a_new_version_swaps_in_between_messages_and_the_previous_one_stays_loaded(root: Path) -> None:
    published: list[dict[str, object]] = []
    server = InferenceServer(root, publish=lambda config, result: published.append(result))
    server.install(served("1.0.0"), server.load(served("1.0.0"), TRUSTED))
    server.handle("hot", "t", reading(1, 25.0))

    assert server.needs_load(served("2.0.0"))
    new = load_model(served("2.0.0").package_dir(root), TRUSTED)
    old_windows = server.served["hot"].active.windows
    server.install(served("2.0.0", passthrough=()), new)
    server.handle("hot", "t", reading(2, 25.0))

    # 25 degrees is cool for version 1 (hot above 30) and hot for version 2 (above 20).
    assert [(result["version"], result["label"]) for result in published] == [("1", "cool"), ("2", "hot")]
    assert "passthrough" not in published[1]
    entry = server.served["hot"]
    assert entry.active.windows is old_windows  # the same inputs: the series carry over
    assert entry.previous is not None
    assert entry.previous.manifest.version == "1"
    assert not server.needs_load(served("1.0.0"))

    server.install(served("1.0.0"))  # back to the previous one, no load needed
    server.handle("hot", "t", reading(3, 25.0))
    assert (published[-1]["version"], published[-1]["label"]) == ("1", "cool")
    assert entry.previous is new
    assert entry.counters.messages == 3

    server.remove("hot")
    assert server.handle("hot", "t", reading(4, 25.0)) == 0

"""The streaming drift detector (river) on a model's score stream: it fires on a shifted stream and not on a stable
one, and the server publishes a drift event on the detector's topic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgewise.components.inference.config import DriftDetectorConfig, ServedModelConfig
from edgewise.components.inference.drift import ScoreDriftDetector
from edgewise.components.inference.serving import InferenceServer
from tests.components.inference.packages import KEY, write_hot_package

DETECTORS = [
    DriftDetectorConfig("adwin", "ml/m/drift", delta=0.002),
    DriftDetectorConfig("page-hinkley", "ml/m/drift", delta=0.005, threshold=5.0),
]


@pytest.mark.parametrize("config", DETECTORS, ids=lambda config: config.kind)
def test_a_detector_fires_on_a_shifted_score_stream_and_not_on_a_stable_one(
    config: DriftDetectorConfig,
) -> None:
    rng = np.random.default_rng(7)
    stable = rng.normal(0.2, 0.05, 1000)
    shifted = np.concatenate([rng.normal(0.2, 0.05, 500), rng.normal(0.6, 0.05, 500)])

    detector = ScoreDriftDetector(config)
    assert not any(detector.update(float(score)) for score in stable)
    detector = ScoreDriftDetector(config)
    fired = [index for index, score in enumerate(shifted) if detector.update(float(score))]
    assert fired
    assert 500 <= fired[0] < 600


def test_the_server_publishes_a_drift_event_when_the_scores_shift(tmp_path: Path, hot_at_30: bytes) -> None:
    config = ServedModelConfig(
        name="hot",
        component="edgewise.models.hot",
        version="1.0.0",
        input_topic="sensors/+/reading",
        output_topic="ml/hot/results",
        drift_detector=DriftDetectorConfig("adwin", "ml/hot/drift"),
    )
    write_hot_package(config.package_dir(tmp_path), hot_at_30, version="1")
    events: list[tuple[str, dict[str, object]]] = []
    server = InferenceServer(
        tmp_path, publish=lambda _, result: None, notify=lambda topic, event: events.append((topic, event))
    )
    server.install(config, server.load(config, [KEY.public_key()]))
    # Sure answers (far from 30 degrees, top probability ~1), then doubtful ones (~0.5 at 29.9 degrees).
    temps = [5.0, 45.0] * 100 + [29.9] * 100
    for seq, temp in enumerate(temps):
        server.handle("hot", f"sensors/{seq}", {"sensors": {"temp": temp}, "hum": 50})

    assert events
    topic, event = events[0]
    assert topic == "ml/hot/drift"
    assert set(event) == {"model", "version", "detector", "at", "value"}
    assert (event["model"], event["version"], event["detector"]) == ("hot", "1", "adwin")
    assert isinstance(event["at"], int)
    assert event["value"] == pytest.approx(0.53, abs=0.01)
    assert server.served["hot"].counters.drift_events == len(events)
    assert server.counter_lines()[0].endswith(f"driftEvents={len(events)}")

"""The challenger: a second real model run in shadow on the champion's rows, never giving the result; agreements
and disagreements counted, disagreements captured, a challenger that cannot load leaving the champion serving."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest

from edgewise.components.inference.capture import CaptureWriter
from edgewise.components.inference.config import CaptureConfig, ChallengerConfig, ServedModelConfig
from edgewise.components.inference.errors import ModelLoadError
from edgewise.components.inference.model import load_model
from edgewise.components.inference.serving import InferenceServer
from edgewise.components.inference.shadow import agrees, challenger_for
from tests.components.inference.packages import KEY, write_hot_package
from tests.components.inference.streams import MemoryStreams
from tests.support.waiting import wait_until

TRUSTED = [KEY.public_key()]


def served(challenger_version: str = "2.0.0", **capture: object) -> ServedModelConfig:
    return ServedModelConfig(
        name="hot",
        component="edgewise.models.hot",
        version="1.0.0",
        input_topic="sensors/+/reading",
        output_topic="ml/hot/results",
        capture=CaptureConfig(stream="captures", **capture),  # type: ignore[arg-type]
        challenger=ChallengerConfig("edgewise.models.hot", challenger_version, sample_rate=1.0, timeout_s=30),
    )


@pytest.fixture
def root(tmp_path: Path, hot_at_30: bytes, hot_at_20: bytes) -> Path:
    write_hot_package(served().package_dir(tmp_path), hot_at_30, version="1")
    write_hot_package(served().challenger.package_dir(tmp_path), hot_at_20, version="2")  # type: ignore[union-attr]
    return tmp_path


def test_the_challenger_runs_in_shadow_and_its_disagreements_are_counted_and_captured(root: Path) -> None:
    streams = MemoryStreams()
    published: list[dict[str, object]] = []
    server = InferenceServer(
        root,
        publish=lambda _, result: published.append(result),
        capture=CaptureWriter(streams.open),
        rng=random.Random(1),
    )
    config = served(disagreement=True)
    champion = server.load(config, TRUSTED)
    challenger = server.load_challenger(config, champion, TRUSTED)
    assert challenger is not None
    server.install(config, champion, challenger)

    # Version 1 says hot above 30 degrees, version 2 above 20: they disagree on 25 only.
    temps = [5.0, 25.0, 45.0, 25.0, 5.0]
    for temp in temps:
        server.handle("hot", "sensors/a/reading", {"sensors": {"temp": temp}, "hum": 50})
    counters = server.served["hot"].counters
    wait_until(
        lambda: counters.challenger_agreements + counters.challenger_disagreements == 5, what="shadow runs"
    )
    server.close()

    assert [result["label"] for result in published] == ["cool", "cool", "hot", "cool", "cool"]
    assert {result["version"] for result in published} == {"1"}
    assert (counters.challenger_agreements, counters.challenger_disagreements) == (3, 2)
    records = streams.messages["captures"]
    assert [record["features"]["temp"] for record in records] == [25.0, 25.0]
    assert {record["reason"] for record in records} == {"disagreement"}
    assert records[0]["output"]["label"] == "cool"
    challenger_part = records[0]["challenger"]
    assert challenger_part["output"]["label"] == "hot"
    assert (challenger_part["component"], challenger_part["version"], challenger_part["agrees"]) == (
        "edgewise.models.hot",
        "2",
        False,
    )
    line = server.counter_lines()[0]
    assert "captured=2 captureDropped=0" in line
    assert "challengerAgreements=3 challengerDisagreements=2 challengerDropped=0 challengerTimeouts=0" in line
    assert "challengerLatencyMs=" in line


def test_a_challenger_that_fails_to_load_is_logged_and_the_champion_serves_alone(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = InferenceServer(
        root, publish=lambda _, result: None, capture=CaptureWriter(MemoryStreams().open)
    )
    config = served("9.0.0")
    champion = server.load(config, TRUSTED)
    with caplog.at_level(logging.ERROR):
        assert server.load_challenger(config, champion, TRUSTED) is None
    assert "challenger package" in caplog.text
    assert "9.0.0" in caplog.text
    assert "the champion serves without a challenger" in caplog.text
    server.install(config, champion, None)
    assert server.handle("hot", "t", {"sensors": {"temp": 25.0}, "hum": 1}) == 1
    assert server.served["hot"].counters.challenger_agreements == 0


def test_a_challenger_must_read_the_champions_rows(root: Path) -> None:
    champion = load_model(served().package_dir(root), TRUSTED)
    model = load_model(served().challenger.package_dir(root), TRUSTED)  # type: ignore[union-attr]
    config = ChallengerConfig("edgewise.models.hot", "2.0.0")
    assert challenger_for(champion, model, config).columns == (0, 1)
    other = root / "other"
    write_hot_package(
        other,
        bytes((root / "packages/artifacts/edgewise.models.hot/2.0.0/model.onnx").read_bytes()),
        window={"size": 2, "step": 1, "features": ["mean"], "fftBands": 4, "resampleMs": 100},
        feature_names=("temp__mean", "hum__mean"),
    )
    with pytest.raises(ModelLoadError, match="'inputs' and 'window' differ"):
        challenger_for(champion, load_model(other, TRUSTED), config)


def test_agreement_by_kind() -> None:
    assert agrees("classifier", {"label": "a", "score": 0.9}, {"label": "a", "score": 0.6}, 0.0)
    assert not agrees("classifier", {"label": "a"}, {"label": "b"}, 1.0)
    assert agrees("anomaly", {"score": 1.0, "anomaly": True}, {"score": 9.0, "anomaly": True}, 0.0)
    assert not agrees("anomaly", {"score": 1.0, "anomaly": True}, {"score": 1.0, "anomaly": False}, 1.0)
    assert agrees("anomaly", {"score": 1.0}, {"score": 1.05}, 0.1)
    assert agrees("regressor", {"prediction": 100.0}, {"prediction": 109.0}, 0.1)
    assert not agrees("regressor", {"prediction": 100.0}, {"prediction": 111.0}, 0.1)

"""Capture: the decision (disagreement, score, sample), the record's shape, and the writer that appends records
off the message path, dropping them when its queue is full and counting them when the stream manager fails."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest

from edgewise.components.inference.capture import CaptureWriter, capture_reason, score_of
from edgewise.components.inference.config import CaptureConfig, ServedModelConfig
from edgewise.components.inference.serving import Counters, InferenceServer
from edgewise.protocol.capture import CAPTURE_FORMAT, capture_record, read_capture
from tests.components.inference.packages import KEY, write_hot_package
from tests.components.inference.streams import MemoryStreams


@pytest.mark.parametrize(
    ("config", "score", "disagreed", "draw", "reason"),
    [
        (CaptureConfig(disagreement=True), 0.5, True, 0.9, "disagreement"),
        (CaptureConfig(disagreement=False, sample_rate=0.5), 0.5, True, 0.9, None),
        (CaptureConfig(disagreement=True), 0.5, False, 0.9, None),
        (CaptureConfig(disagreement=True), 0.5, None, 0.9, None),
        (CaptureConfig(score_above=0.8), 0.81, None, 0.9, "score"),
        (CaptureConfig(score_above=0.8), 0.8, None, 0.9, None),
        (CaptureConfig(score_above=0.8), None, None, 0.9, None),
        (CaptureConfig(sample_rate=0.1), 0.5, None, 0.09, "sample"),
        (CaptureConfig(sample_rate=0.1), 0.5, None, 0.1, None),
        (CaptureConfig(sample_rate=0.0), 0.5, None, 0.0, None),
        (CaptureConfig(sample_rate=1.0, score_above=0.1, disagreement=True), 0.5, True, 0.0, "disagreement"),
        (CaptureConfig(sample_rate=1.0, score_above=0.1), 0.5, False, 0.0, "score"),
    ],
)
def test_the_capture_decision(
    config: CaptureConfig, score: float | None, disagreed: bool | None, draw: float, reason: str | None
) -> None:
    assert capture_reason(config, score=score, disagreed=disagreed, draw=draw) == reason


def test_the_score_a_result_is_judged_by() -> None:
    assert score_of("anomaly", {"score": 2.5, "anomaly": True}) == 2.5
    assert score_of("classifier", {"label": "hot", "score": 0.75}) == 0.75
    assert score_of("regressor", {"prediction": -3}) == -3.0
    assert score_of("regressor", {"prediction": float("nan")}) is None
    assert score_of("anomaly", {"score": None}) is None


def test_a_record_has_the_capture_format_and_nan_features_become_null() -> None:
    record = capture_record(
        model="m",
        version="3",
        source="sensors/a",
        timestamp_ms=17,
        feature_names=("a", "b"),
        values=[1.5, float("nan")],
        output={"score": 0.2, "anomaly": False},
        challenger=None,
        reason="sample",
    )
    assert json.loads(json.dumps(record, allow_nan=False)) == {
        "format": CAPTURE_FORMAT,
        "model": "m",
        "version": "3",
        "source": "sensors/a",
        "timestamp": 17,
        "features": {"a": 1.5, "b": None},
        "output": {"score": 0.2, "anomaly": False},
        "challenger": None,
        "reason": "sample",
    }
    # What the cloud's drift checks read back: the numbers only.
    captured = read_capture(record)
    assert captured is not None
    assert (captured.features, captured.score) == ({"a": 1.5}, 0.2)
    assert read_capture({**record, "format": "other/1"}) is None
    assert read_capture({"format": CAPTURE_FORMAT, "features": "x"}) is None
    assert read_capture([record]) is None


def test_a_full_queue_drops_and_counts_and_the_rest_is_appended_in_order() -> None:
    streams = MemoryStreams()
    streams.hold.clear()
    writer = CaptureWriter(streams.open, size=2)
    counters = Counters()
    offered = [writer.offer("s", {"n": n}, counters) for n in range(6)]
    # The writer thread takes at most one record out of the queue while the stream holds it.
    assert offered[:2] == [True, True]
    assert offered.count(False) == counters.capture_dropped >= 3
    streams.hold.set()
    writer.close()

    kept = [message["n"] for message in streams.messages["s"]]
    assert kept == [n for n, accepted in enumerate(offered) if accepted]
    assert counters.captured == len(kept)
    assert streams.opened == 1


def test_a_stream_manager_that_cannot_be_reached_is_logged_once_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def unreachable() -> MemoryStreams:
        raise ConnectionRefusedError("connection refused on port 8088")

    writer = CaptureWriter(unreachable)
    counters = Counters()
    with caplog.at_level(logging.ERROR):
        for n in range(5):
            writer.offer("s", {"n": n}, counters)
        writer.close()
    assert counters.capture_failed == 5
    assert counters.captured == 0
    errors = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "cannot reach the stream manager: connection refused on port 8088" in errors[0]
    assert "captureFailed" in errors[0]


def test_the_server_captures_results_above_the_score_with_their_features(
    tmp_path: Path, hot_at_30: bytes
) -> None:
    config = ServedModelConfig(
        name="hot",
        component="edgewise.models.hot",
        version="1.0.0",
        input_topic="sensors/+/reading",
        output_topic="ml/hot/results",
        capture=CaptureConfig(stream="captures", score_above=0.99),
    )
    write_hot_package(config.package_dir(tmp_path), hot_at_30, version="1")
    streams = MemoryStreams()
    published: list[dict[str, object]] = []
    server = InferenceServer(
        tmp_path,
        publish=lambda _, result: published.append(result),
        capture=CaptureWriter(streams.open),
        rng=random.Random(0),
        clock=lambda: 1000.0,
    )
    server.install(config, server.load(config, [KEY.public_key()]))
    for temp in (45.0, 30.0, 5.0):
        server.handle("hot", "sensors/a/reading", {"sensors": {"temp": temp}, "hum": 50})
    server.close()

    sure = [result for result in published if float(result["score"]) > 0.99]  # type: ignore[arg-type]
    assert 0 < len(sure) < len(published)  # 30 degrees is close to the threshold: not captured
    records = streams.messages["captures"]
    assert [record["features"] for record in records] == [{"temp": temp, "hum": 50.0} for temp in (45.0, 5.0)]
    assert records[0] == {
        "format": "edgewise.capture/1",
        "model": "hot",
        "version": "1",
        "source": "sensors/a/reading",
        "timestamp": 1000000,
        "features": {"temp": 45.0, "hum": 50.0},
        "output": {key: published[0][key] for key in ("label", "score", "probabilities")},
        "challenger": None,
        "reason": "score",
    }
    served = server.served["hot"]
    assert served.counters.captured == 2
    assert server.counter_lines()[0].endswith("captured=2 captureDropped=0 captureFailed=0")

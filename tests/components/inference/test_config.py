"""The inference component's configuration: what a valid one gives, and the field each bad value is named by."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from edgewise.components.inference.config import (
    DEFAULT_COUNTERS_INTERVAL_S,
    CaptureConfig,
    ChallengerConfig,
    DriftDetectorConfig,
    InferenceConfig,
    ServedModelConfig,
    parse_config,
)
from edgewise.components.inference.errors import InferenceConfigError
from edgewise.protocol.capture import DEFAULT_CAPTURE_STREAM
from edgewise.protocol.model_package import key_id, public_key_text
from tests.components.inference.packages import KEY

KEY_TEXT = public_key_text(KEY.public_key())


def config(**model: Any) -> dict[str, Any]:
    entry = {
        "component": "edgewise.models.anomaly",
        "version": "3.0.0",
        "inputTopic": "sensors/+/reading",
        "outputTopic": "ml/anomaly/results",
        "iotCoreTopic": "",
    }
    entry.update(model)
    return {"trustedKeys": [KEY_TEXT], "models": {"anomaly": entry}, "accessControl": {"ignored": True}}


def test_a_full_configuration_parses_into_served_models() -> None:
    parsed = parse_config(
        config(iotCoreTopic="fleet/anomaly", passthrough=["seq", "$.meta['a.b']"])
        | {"countersIntervalSeconds": "5"}
    )

    assert parsed.trusted_keys == (KEY_TEXT,)
    assert [key_id(key) for key in parsed.public_keys()] == [key_id(KEY.public_key())]
    assert parsed.counters_interval_s == 5.0
    model = parsed.models["anomaly"]
    assert model == ServedModelConfig(
        name="anomaly",
        component="edgewise.models.anomaly",
        version="3.0.0",
        input_topic="sensors/+/reading",
        output_topic="ml/anomaly/results",
        iot_core_topic="fleet/anomaly",
        passthrough=("seq", "$.meta['a.b']"),
    )
    assert model.package_dir(Path("/gg")) == Path("/gg/packages/artifacts/edgewise.models.anomaly/3.0.0")


def test_defaults_serve_nothing_and_an_empty_iot_core_topic_or_null_means_none() -> None:
    assert parse_config({}) == InferenceConfig((), {}, DEFAULT_COUNTERS_INTERVAL_S)
    assert parse_config({"models": None}).models == {}
    assert parse_config(config()).models["anomaly"].iot_core_topic is None
    assert parse_config(config(iotCoreTopic=None)).models["anomaly"].iot_core_topic is None


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"trustedKeys": "rsa:abc"}, "trustedKeys[0]", "must start with 'ed25519:'"),
        ({"trustedKeys": [1]}, "trustedKeys[0]", "not int"),
        ({"trustedKeys": {"a": 1}}, "trustedKeys", "must be a list"),
        ({"countersIntervalSeconds": 0}, "countersIntervalSeconds", "from 0.1 to 86400"),
        ({"countersIntervalSeconds": "soon"}, "countersIntervalSeconds", "from 0.1 to 86400"),
        ({"models": []}, "models", "must be an object"),
        ({"models": {"bad name": {}}}, "models.bad name", "a model name is"),
        ({"models": {"m": "x"}}, "models.m", "must be an object"),
    ],
)
def test_a_bad_top_level_value_names_its_field(change: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(InferenceConfigError, match=problem) as caught:
        parse_config(config() | change)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"configuration {field}: ")


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"component": ""}, "component", "is required"),
        ({"component": ".."}, "component", "is not a component name"),
        ({"component": "a/b"}, "component", "is not a component name"),
        ({"version": "3"}, "version", "3"),
        ({"version": "../1.0.0"}, "version", "1.0.0"),
        ({"inputTopic": "a/#/b"}, "inputTopic", "#"),
        ({"outputTopic": "results/+"}, "outputTopic", "is a filter"),
        ({"outputTopic": None}, "outputTopic", "is required"),
        ({"iotCoreTopic": 5}, "iotCoreTopic", "must be a topic name"),
        ({"iotCoreTopic": "a/#"}, "iotCoreTopic", "is a filter"),
        ({"passthrough": "seq"}, "passthrough", "must be a list"),
        ({"passthrough": ["a..b"]}, "passthrough[0]", "'a..b'"),
        ({"inputTopics": "x"}, "inputTopics", "is not a setting"),
    ],
)
def test_a_bad_model_setting_names_the_model_and_the_setting(
    change: dict[str, Any], field: str, problem: str
) -> None:
    data = config()
    entry = copy.deepcopy(data["models"]["anomaly"])
    entry.update(change)
    data["models"]["anomaly"] = entry

    with pytest.raises(InferenceConfigError, match=problem) as caught:
        parse_config(data)
    assert caught.value.field == f"models.anomaly.{field}"


def test_capture_challenger_and_drift_detector_parse_with_their_defaults() -> None:
    full = parse_config(
        config(
            capture={"stream": "Pump captures", "sampleRate": 0.25, "scoreAbove": 0.9, "disagreement": True},
            challenger={
                "component": "edgewise.models.anomaly",
                "version": "4.0.0",
                "sampleRate": 0.5,
                "timeoutSeconds": 2,
                "tolerance": 0,
            },
            driftDetector={
                "kind": "page-hinkley",
                "on": "score",
                "topic": "drift/x",
                "delta": 0.1,
                "threshold": 9,
            },
        )
    ).models["anomaly"]
    assert full.capture == CaptureConfig("Pump captures", 0.25, 0.9, True)
    assert full.challenger == ChallengerConfig("edgewise.models.anomaly", "4.0.0", 0.5, 2.0, 0.0)
    assert full.challenger.package_dir(Path("/gg")) == Path(
        "/gg/packages/artifacts/edgewise.models.anomaly/4.0.0"
    )
    assert full.drift_detector == DriftDetectorConfig("page-hinkley", "drift/x", "score", 0.1, 9.0)

    defaults = parse_config(
        config(
            capture={},
            challenger={"component": "edgewise.models.other", "version": "1.0.0"},
            driftDetector={"kind": "adwin"},
        )
    ).models["anomaly"]
    assert defaults.capture == CaptureConfig(DEFAULT_CAPTURE_STREAM, 0.0, None, False)
    assert defaults.challenger is not None
    assert (defaults.challenger.sample_rate, defaults.challenger.timeout_s) == (1.0, 1.0)
    assert defaults.drift_detector == DriftDetectorConfig("adwin", "ml/anomaly/drift", "score", 0.002)
    none = parse_config(config(capture=None, challenger=None, driftDetector=None)).models["anomaly"]
    assert (none.capture, none.challenger, none.drift_detector) == (None, None, None)


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"capture": []}, "capture", "must be an object"),
        ({"capture": {"rate": 1}}, "capture.rate", "is not a setting"),
        ({"capture": {"stream": "a/b"}}, "capture.stream", "must be a stream name"),
        ({"capture": {"sampleRate": 1.5}}, "capture.sampleRate", "share from 0 to 1"),
        ({"capture": {"sampleRate": True}}, "capture.sampleRate", "share from 0 to 1"),
        ({"capture": {"scoreAbove": "high"}}, "capture.scoreAbove", "a number, or null"),
        ({"capture": {"disagreement": "yes"}}, "capture.disagreement", "true or false"),
        ({"challenger": {"version": "1.0.0"}}, "challenger.component", "is required"),
        ({"challenger": {"component": "a/b", "version": "1.0.0"}}, "challenger.component", "not a component"),
        ({"challenger": {"component": "m", "version": "x"}}, "challenger.version", "x"),
        (
            {"challenger": {"component": "m", "version": "1.0.0", "sampleRate": -0.1}},
            "challenger.sampleRate",
            "0 to 1",
        ),
        (
            {"challenger": {"component": "m", "version": "1.0.0", "timeoutSeconds": 0}},
            "challenger.timeoutSeconds",
            "above 0",
        ),
        ({"driftDetector": {"kind": "cusum"}}, "driftDetector.kind", '"adwin" or "page-hinkley"'),
        ({"driftDetector": {"kind": "adwin", "on": "features"}}, "driftDetector.on", 'must be "score"'),
        ({"driftDetector": {"kind": "adwin", "topic": "a/+"}}, "driftDetector.topic", "is a filter"),
        ({"driftDetector": {"kind": "adwin", "delta": 1}}, "driftDetector.delta", "between 0 and 1"),
        (
            {"driftDetector": {"kind": "adwin", "threshold": 5}},
            "driftDetector.threshold",
            "page-hinkley setting",
        ),
        ({"driftDetector": {"kind": "page-hinkley", "threshold": -1}}, "driftDetector.threshold", "above 0"),
    ],
)
def test_a_bad_capture_challenger_or_detector_setting_names_its_field(
    change: dict[str, Any], field: str, problem: str
) -> None:
    with pytest.raises(InferenceConfigError, match=problem) as caught:
        parse_config(config(**change))
    assert caught.value.field == f"models.anomaly.{field}"


def test_a_drift_detector_without_river_installed_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "river" else find_spec(name, *args)
    )
    with pytest.raises(InferenceConfigError, match="pip install river") as caught:
        parse_config(config(driftDetector={"kind": "adwin"}))
    assert caught.value.field == "models.anomaly.driftDetector"

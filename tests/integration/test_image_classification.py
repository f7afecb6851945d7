"""The image classification pair in a real runtime: edgewise.ml.ImageClassification and its model store
deployed from their shipped recipes and artifacts, classifying digit images the test writes as PGM and PNG,
and publishing to AWS IoT Core, here a real Mosquitto with mutual TLS, where a paho client reads the results.

One run, in order: the component classifies the folder (three digits, a broken image, a text file); then a
configuration update names one image and a new topic, with the access policy to match.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from edgewise.components import ARTIFACTS_DIR, RECIPES_DIR
from edgewise.components.image_classification.classifier import ImageClassifier
from tests.components.image_classification.digits import LABELS, MODEL, gray_pixels, held_out, pgm, png
from tests.support.device_config import write_device_config
from tests.support.mosquitto import Mosquitto
from tests.support.pki import CertificateAuthority
from tests.support.runtime_process import RuntimeProcess, running
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
COMPONENT = "edgewise.ml.ImageClassification"
STORE = "edgewise.ml.ImageClassification.ModelStore"
TOPIC = "ml/onnx/image-classification"
CUSTOM_TOPIC = "factory/line-1/digits"
THING = "camera-1"


def write_digits(folder: Path) -> dict[str, str]:
    """A held-out 3, 5 and 8 that the committed model gets right, in three encodings; name -> digit."""
    X_test, y_test = held_out()
    classifier = ImageClassifier.load(MODEL, LABELS)

    def clear(row: Any, digit: int) -> bool:
        top = classifier.classify(1.0 - row.reshape(8, 8) / 16.0)[0]
        return top.label == str(digit) and top.score >= 0.5

    rows = {
        digit: next(
            row for row, label in zip(X_test, y_test, strict=True) if label == digit and clear(row, digit)
        )
        for digit in (3, 5, 8)
    }
    files = {
        "a-three.pgm": pgm(gray_pixels(rows[3]), binary=False),
        "b-five.pgm": pgm(gray_pixels(rows[5], upscale=4), binary=True),
        "c-eight.png": png(gray_pixels(rows[8], upscale=2), filter_type=4),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "d-broken.pgm").write_bytes(b"P5 8 8 255\n")
    (folder / "notes.txt").write_text("not an image")
    return {"a-three.pgm": "3", "b-five.pgm": "5", "c-eight.png": "8"}


def results(observer: Any, topic: str) -> list[dict[str, Any]]:
    return [json.loads(payload) for payload in observer.payloads(topic)]


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("image-classification")
    recipes, images = tmp / "recipes", tmp / "images"
    recipes.mkdir()
    images.mkdir()
    for name in (COMPONENT, STORE):
        shutil.copy(RECIPES_DIR / f"{name}-1.0.0.yaml", recipes)
    expected = write_digits(images)
    ca = CertificateAuthority(tmp / "pki")
    found: dict[str, Any] = {"expected": expected}
    with Mosquitto(tmp / "broker", ca) as broker, broker.client("cloud-observer") as observer:
        config = write_device_config(tmp / "edgewise.yaml", thing=THING, ca=ca, port=broker.port)
        observer.subscribe(TOPIC, qos=1)
        observer.subscribe(CUSTOM_TOPIC, qos=1)
        with running(tmp / "root", "--config", str(config)) as runtime:
            first = _deploy(
                runtime,
                recipes,
                rootComponentVersionsToAdd={COMPONENT: "1.0.0"},
                componentToConfiguration={
                    COMPONENT: {"MERGE": {"ImageDirectory": str(images), "InferenceInterval": "0.5"}}
                },
            )
            found["first"] = first
            wait_until(
                lambda: (
                    {result["image"] for result in results(observer, TOPIC)} >= set(expected)
                    and sum(result["image"] == "a-three.pgm" for result in results(observer, TOPIC)) >= 2
                ),
                timeout=20,
                what="two rounds of results on the default topic",
            )
            found["states"] = runtime.states()
            second = _deploy(
                runtime,
                recipes,
                componentToConfiguration={
                    COMPONENT: {
                        "MERGE": {
                            "ImageName": "b-five.pgm",
                            "PublishResultsOnTopic": CUSTOM_TOPIC,
                            "accessControl": {
                                "aws.greengrass.ipc.mqttproxy": {
                                    f"{COMPONENT}:mqttproxy:1": {
                                        "operations": ["aws.greengrass#PublishToIoTCore"],
                                        "resources": [CUSTOM_TOPIC],
                                    }
                                }
                            },
                        }
                    }
                },
            )
            found["second"] = second
            wait_until(
                lambda: len(results(observer, CUSTOM_TOPIC)) >= 2, timeout=15, what="results on the new topic"
            )
            found["default"] = results(observer, TOPIC)
            found["custom"] = results(observer, CUSTOM_TOPIC)
            found["log"] = runtime.log(COMPONENT)
    return found


def _deploy(runtime: RuntimeProcess, recipes: Path, **request: Any) -> dict[str, Any]:
    return runtime.wait_deployment(runtime.deploy(recipes, artifacts=ARTIFACTS_DIR, **request), timeout=40)


def test_the_folder_is_classified_and_published_to_iot_core_like_greengrass(outcome: dict[str, Any]) -> None:
    assert outcome["first"]["status"] == "SUCCEEDED", outcome["first"]
    assert outcome["states"][COMPONENT] == "RUNNING"
    assert STORE in outcome["states"]
    expected = outcome["expected"]
    published = outcome["default"]
    assert {result["image"] for result in published} == set(expected)
    for result in published:
        assert result["inference-type"] == "image-classification"
        assert result["inference-description"] == "Top 5 predictions with score 0.3 or above "
        top = result["inference-results"]
        assert top[0]["Label"] == expected[result["image"]], result
        assert float(top[0]["Score"]) >= 0.3
        assert isinstance(result["timestamp"], str)


def test_a_bad_image_is_logged_and_skipped(outcome: dict[str, Any]) -> None:
    log = outcome["log"]
    assert "image skipped: d-broken.pgm: PGM has 0 pixel bytes, 64 expected" in log
    assert "notes.txt" not in log
    assert "model digits-8x8.onnx loaded: 10 labels, input 8x8" in log


def test_a_configuration_update_changes_the_image_and_the_topic(outcome: dict[str, Any]) -> None:
    assert outcome["second"]["status"] == "SUCCEEDED", outcome["second"]
    custom = outcome["custom"]
    assert {result["image"] for result in custom} == {"b-five.pgm"}
    assert all(result["inference-results"][0]["Label"] == "5" for result in custom)

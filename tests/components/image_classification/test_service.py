"""A round of classification over a real folder: results shaped like Greengrass's sample, one per readable image
in name order, bad images logged and skipped; and the configuration keys as Greengrass writes them."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from edgewise.components.image_classification.classifier import ImageClassifier
from edgewise.components.image_classification.config import (
    DEFAULT_TOPIC,
    ClassificationConfig,
    parse_config,
)
from edgewise.components.image_classification.errors import ImageClassificationConfigError
from edgewise.components.image_classification.service import classify_round
from tests.components.image_classification.digits import LABELS, MODEL, gray_pixels, held_out, pgm, png


@pytest.fixture(scope="module")
def classifier() -> ImageClassifier:
    return ImageClassifier.load(MODEL, LABELS)


@pytest.fixture
def folder(tmp_path: Path, classifier: ImageClassifier) -> dict[str, str]:
    """Three digits the model gets right, a broken image, a text file and a hidden image; name -> digit."""
    X_test, y_test = held_out()
    wanted: dict[str, str] = {}
    for row, digit in zip(X_test, y_test, strict=True):
        if str(digit) in wanted.values() or len(wanted) == 3:
            continue
        image = gray_pixels(row, upscale=2)
        name = f"{len(wanted)}-digit.{'png' if len(wanted) == 1 else 'pgm'}"
        data = png(image, filter_type=4) if name.endswith("png") else pgm(image, binary=True)
        (tmp_path / name).write_bytes(data)
        if classifier.classify((image / 255.0).astype(float))[0].label == str(digit):
            wanted[name] = str(digit)
        else:
            (tmp_path / name).unlink()
    (tmp_path / "9-broken.pgm").write_bytes(b"P5 8 8 255\n\x00")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.pgm").write_bytes(pgm(gray_pixels(X_test[0]), binary=True))
    return wanted


def test_a_round_gives_one_greengrass_shaped_result_per_readable_image(
    tmp_path: Path, folder: dict[str, str], classifier: ImageClassifier, caplog: pytest.LogCaptureFixture
) -> None:
    config = ClassificationConfig(image_directory=tmp_path, max_results=3, score_threshold=0.0)

    with caplog.at_level(logging.ERROR):
        results = classify_round(classifier, config)

    assert [result["image"] for result in results] == list(folder)
    for result in results:
        assert set(result) == {
            "timestamp",
            "inference-type",
            "inference-description",
            "inference-results",
            "image",
        }
        assert result["inference-type"] == "image-classification"
        assert result["inference-description"] == "Top 3 predictions with score 0 or above "
        top = result["inference-results"]
        assert isinstance(top, list)
        assert len(top) == 3
        assert top[0]["Label"] == folder[str(result["image"])]
        scores = [float(entry["Score"]) for entry in top]
        assert scores == sorted(scores, reverse=True)
    assert "image skipped: 9-broken.pgm: PGM has 1 pixel bytes, 64 expected" in caplog.text


def test_image_name_picks_one_image_and_the_threshold_drops_unlikely_classes(
    tmp_path: Path, folder: dict[str, str], classifier: ImageClassifier
) -> None:
    name = list(folder)[1]
    config = ClassificationConfig(image_directory=tmp_path, image_name=name, score_threshold=0.3)

    results = classify_round(classifier, config)

    assert [result["image"] for result in results] == [name]
    top = results[0]["inference-results"]
    assert isinstance(top, list)
    assert 1 <= len(top) <= 3
    assert all(float(entry["Score"]) >= 0.3 for entry in top)


def test_a_missing_folder_gives_an_empty_round(tmp_path: Path, classifier: ImageClassifier) -> None:
    assert classify_round(classifier, ClassificationConfig(image_directory=tmp_path / "none")) == []


def test_greengrass_style_configuration_is_read(tmp_path: Path) -> None:
    config = parse_config(
        {
            "ImageDirectory": "/tmp/images/",
            "ImageName": "image.pgm",
            "InferenceInterval": "60",
            "PublishResultsOnTopic": "ml/custom/topic",
            "Accelerator": "GPU",
            "UseCamera": "true",
            "ModelResourceKey": {"model": "m.onnx", "labels": "l.txt"},
            "accessControl": {},
        },
        default_directory=tmp_path,
    )

    assert config == ClassificationConfig(
        image_directory=Path("/tmp/images/"),
        image_name="image.pgm",
        interval_s=60.0,
        topic="ml/custom/topic",
        accelerator="gpu",
        use_camera=True,
    )
    defaults = parse_config({}, default_directory=tmp_path)
    assert (defaults.image_directory, defaults.image_name, defaults.interval_s) == (tmp_path, "", 3600.0)
    assert (defaults.topic, defaults.max_results, defaults.score_threshold) == (DEFAULT_TOPIC, 5, 0.3)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"InferenceInterval": "soon"}, "configuration InferenceInterval: 'soon' is not a number"),
        ({"InferenceInterval": 0}, "configuration InferenceInterval: 0 s is not between 0.1 and 604800"),
        ({"InferenceInterval": "nan"}, "configuration InferenceInterval: 'nan' is not a finite number"),
        ({"ImageName": "../etc/passwd"}, "configuration ImageName: '../etc/passwd' must be a file name"),
        ({"ImageDirectory": 5}, "configuration ImageDirectory: must be a string, not int"),
        (
            {"PublishResultsOnTopic": "ml/#"},
            "configuration PublishResultsOnTopic: topic: 'ml/#' contains a wildcard",
        ),
        ({"MaxResults": 2.5}, "configuration MaxResults: 2.5 is not a whole number 1..1000"),
        ({"ScoreThreshold": "2"}, "configuration ScoreThreshold: 2 is not between 0 and 1"),
        ({"InferenceInterval": [1]}, "configuration InferenceInterval: must be a number, not list"),
    ],
)
def test_unusable_values_are_refused_naming_the_key(
    tmp_path: Path, values: dict[str, object], message: str
) -> None:
    with pytest.raises(ImageClassificationConfigError) as raised:
        parse_config(values, default_directory=tmp_path)

    assert str(raised.value).startswith(message)


def test_the_process_exits_1_naming_the_file_when_the_model_store_cannot_be_loaded(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("zero\none\n")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgewise.components.image_classification",
            "--model",
            str(MODEL),
            "--labels",
            str(labels),
            "--default-image-directory",
            str(tmp_path / "images"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 1
    assert (
        "ERROR model not loaded: labels.txt: has 2 labels, the model digits-8x8.onnx outputs 10 classes"
        in completed.stderr
    )

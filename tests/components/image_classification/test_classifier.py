"""The committed digits model store and the classifier around it: the model still loads and classifies the
held-out digits, images are resized by area and scaled as the model's metadata says, and a model store that
does not fit together is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgewise.components import RECIPES_DIR
from edgewise.components.image_classification.classifier import (
    IMAGE_METADATA_KEY,
    ImageClassifier,
    ImageInput,
    area_resize,
    read_labels,
)
from edgewise.components.image_classification.errors import ImageModelError
from edgewise.components.image_classification.images import read_image
from edgewise.recipe import load_recipe
from edgewise.runtime.deployment.packages import file_digest
from tests.components.image_classification.digits import LABELS, MODEL, STORE, gray_pixels, held_out, pgm, png


@pytest.fixture(scope="module")
def classifier() -> ImageClassifier:
    return ImageClassifier.load(MODEL, LABELS)


def test_the_committed_model_classifies_the_held_out_digits_in_onnx_runtime() -> None:
    import onnxruntime

    X_test, y_test = held_out()
    session = onnxruntime.InferenceSession(MODEL.read_bytes(), providers=["CPUExecutionProvider"])
    (labels,) = session.run(["label"], {"input": X_test.astype(np.float32)})

    assert float((np.asarray(labels).ravel() == y_test).mean()) >= 0.9
    assert MODEL.stat().st_size < 16 * 1024
    metadata = session.get_modelmeta().custom_metadata_map[IMAGE_METADATA_KEY]
    assert json.loads(metadata) == {"width": 8, "height": 8, "scale": 16.0, "invert": True}


def test_the_held_out_digits_classify_through_image_files(classifier: ImageClassifier) -> None:
    X_test, y_test = held_out()
    right = 0
    for index, (row, digit) in enumerate(zip(X_test, y_test, strict=True)):
        pixels = gray_pixels(row, upscale=index % 4 + 1)
        data = png(pixels, filter_type=index % 5) if index % 2 else pgm(pixels, binary=index % 3 == 0)
        predictions = classifier.classify(read_image(data, name="digit"))
        right += predictions[0].label == str(digit)
        assert [p.score for p in predictions] == sorted((p.score for p in predictions), reverse=True)
        assert sum(p.score for p in predictions) == pytest.approx(1.0, abs=1e-5)

    assert classifier.labels == [str(digit) for digit in range(10)]
    assert right / len(y_test) >= 0.9


def test_area_resize_averages_what_each_output_pixel_covers() -> None:
    image = np.arange(16.0).reshape(4, 4)

    np.testing.assert_allclose(area_resize(np.kron(image, np.ones((3, 3))), 4, 4), image)
    np.testing.assert_allclose(area_resize(image, 2, 2), [[2.5, 4.5], [10.5, 12.5]])
    # 3 -> 2: the middle source pixel is split half and half between the two output pixels.
    np.testing.assert_allclose(area_resize(np.array([[0.0, 3.0, 6.0]]), 1, 2), [[1.0, 5.0]])
    np.testing.assert_allclose(area_resize(np.array([[0.2]]), 2, 3), np.full((2, 3), 0.2))


def test_the_input_row_is_inverted_and_scaled() -> None:
    spec = ImageInput(width=2, height=1, scale=16.0, invert=True)

    np.testing.assert_allclose(spec.row(np.array([[1.0, 1.0, 0.0, 0.0]])), [[0.0, 16.0]])
    assert ImageInput(width=2, height=1).row(np.array([[0.25, 0.5]])).tolist() == [[0.25, 0.5]]


def _store(tmp_path: Path, labels: str) -> tuple[Path, Path]:
    shutil.copy(MODEL, tmp_path / "model.onnx")
    (tmp_path / "labels.txt").write_text(labels)
    return tmp_path / "model.onnx", tmp_path / "labels.txt"


def test_labels_that_do_not_match_the_model_are_refused(tmp_path: Path) -> None:
    model, labels = _store(tmp_path, "zero\none\ntwo\n")

    with pytest.raises(
        ImageModelError, match=r"labels\.txt: has 3 labels, the model model\.onnx outputs 10 classes"
    ):
        ImageClassifier.load(model, labels)


@pytest.mark.parametrize(
    ("text", "problem"),
    [("", "holds no labels"), ("a\n\nb\n", "line 2 is empty"), (b"\xff\n", "is not UTF-8 text")],
)
def test_unusable_labels_files_are_refused(tmp_path: Path, text: str | bytes, problem: str) -> None:
    path = tmp_path / "labels.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())

    with pytest.raises(ImageModelError, match=f"labels.txt: {problem}"):
        read_labels(path)


def test_a_file_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not onnx")
    (tmp_path / "labels.txt").write_text("a\n")

    with pytest.raises(ImageModelError, match=r"model\.onnx: does not load in ONNX Runtime"):
        ImageClassifier.load(tmp_path / "model.onnx", tmp_path / "labels.txt")


def _relabelled_model(tmp_path: Path, metadata: str | None) -> Path:
    import onnx

    model = onnx.load(str(MODEL))
    del model.metadata_props[:]
    if metadata is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = IMAGE_METADATA_KEY, metadata
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_without_metadata_a_square_input_of_brightness_is_assumed(tmp_path: Path) -> None:
    classifier = ImageClassifier.load(_relabelled_model(tmp_path, None), LABELS)

    assert classifier.image_input == ImageInput(width=8, height=8, scale=1.0, invert=False)


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ('{"width": 4, "height": 4}', "says 4x4 pixels, the model takes 64"),
        ('{"width": 8}', "edgewise.image.height must be a whole number"),
        ('{"width": 8, "height": 8, "invert": "yes"}', "invert must be true or false"),
        ("[1]", "must be a JSON object"),
        ("{", "metadata is not JSON"),
    ],
)
def test_bad_image_metadata_is_refused(tmp_path: Path, metadata: str, problem: str) -> None:
    with pytest.raises(ImageModelError, match=problem):
        ImageClassifier.load(_relabelled_model(tmp_path, metadata), LABELS)


def test_the_recipes_load_and_name_the_committed_artifacts_by_digest() -> None:
    store = load_recipe(RECIPES_DIR / "edgewise.ml.ImageClassification.ModelStore-1.0.0.yaml")
    component = load_recipe(RECIPES_DIR / "edgewise.ml.ImageClassification-1.0.0.yaml")

    artifacts = store.manifests[0].artifacts
    assert {artifact.file_name for artifact in artifacts} == {MODEL.name, LABELS.name}
    for artifact in artifacts:
        assert artifact.digest == file_digest(STORE / artifact.file_name)
    assert "edgewise.ml.ImageClassification.ModelStore" in component.dependencies

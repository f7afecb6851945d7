"""Loading a model package on the device: a real exported classifier verifies, loads, passes its smoke test and
labels rows; a tampered, foreign or inconsistent package is refused naming the file or the field."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgewise.components.inference.errors import ModelLoadError
from edgewise.components.inference.model import load_model, smoke_test_problem
from edgewise.protocol.model_package import (
    MANIFEST_FILE,
    MODEL_FILE,
    SIGNATURE_FILE,
    PackageError,
    SignatureError,
)
from tests.components.inference.packages import KEY, hot_classifier, write_hot_package

TRUSTED = [KEY.public_key()]


def test_a_real_package_loads_and_labels_rows_with_scores_and_probabilities(
    tmp_path: Path, hot_at_30: bytes
) -> None:
    write_hot_package(tmp_path, hot_at_30, version="7")

    model = load_model(tmp_path, TRUSTED)

    assert model.manifest.version == "7"
    assert model.package_dir == tmp_path
    results = model.predict(np.array([[5.0, 40.0], [45.0, 40.0]]))
    assert [result["label"] for result in results] == ["cool", "hot"]
    assert all(isinstance(result["score"], float) and result["score"] > 0.9 for result in results)
    probabilities = results[1]["probabilities"]
    assert isinstance(probabilities, dict)
    assert set(probabilities) == {"cool", "hot"}
    assert probabilities["hot"] == pytest.approx(1 - probabilities["cool"], abs=1e-6)


def test_a_model_that_labels_by_class_index_gives_the_class_values(tmp_path: Path) -> None:
    write_hot_package(tmp_path, hot_classifier(30.0, indexed=True))

    results = load_model(tmp_path, TRUSTED).predict(np.array([[5.0, 40.0], [45.0, 40.0]]))

    assert [result["label"] for result in results] == ["cool", "hot"]


def test_a_model_file_changed_after_signing_is_refused_naming_it(tmp_path: Path, hot_at_30: bytes) -> None:
    write_hot_package(tmp_path, hot_at_30)
    data = bytearray((tmp_path / MODEL_FILE).read_bytes())
    data[-3] ^= 0x20
    (tmp_path / MODEL_FILE).write_bytes(bytes(data))

    with pytest.raises(PackageError, match=f"^{MODEL_FILE}: SHA-256"):
        load_model(tmp_path, TRUSTED)


def test_a_package_signed_by_an_untrusted_key_is_refused(tmp_path: Path, hot_at_30: bytes) -> None:
    write_hot_package(tmp_path, hot_at_30)

    with pytest.raises(SignatureError, match=SIGNATURE_FILE):
        load_model(tmp_path, [Ed25519PrivateKey.generate().public_key()])


def resign(directory: Path, **changes: object) -> None:
    manifest = json.loads((directory / MANIFEST_FILE).read_bytes())
    manifest.update(changes)
    body = json.dumps(manifest).encode()
    (directory / MANIFEST_FILE).write_bytes(body)
    (directory / SIGNATURE_FILE).write_text(base64.b64encode(KEY.sign(body)).decode())


def test_a_model_that_does_not_give_its_example_output_fails_the_smoke_test(
    tmp_path: Path, hot_at_30: bytes, hot_at_20: bytes
) -> None:
    # Signed and intact, but the example output was made by another model: 25 degrees is hot at 20, not at 30.
    write_hot_package(tmp_path, hot_at_20, example=((25.0, 50.0),))
    (tmp_path / MODEL_FILE).write_bytes(hot_at_30)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_bytes())
    resign(tmp_path, files={**manifest["files"], MODEL_FILE: hashlib.sha256(hot_at_30).hexdigest()})

    with pytest.raises(ModelLoadError, match=r"^smoke test: labels\[0\]: expected 'hot', got 'cool'"):
        load_model(tmp_path, TRUSTED)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"inputName": "features"}, "field 'inputName' is 'features' but model.onnx takes ['input']"),
        ({"featureNames": ["temp"], "inputExample": [[1.0]]}, "lists 1 features but model.onnx takes 2"),
    ],
)
def test_a_manifest_that_does_not_fit_the_model_is_refused(
    tmp_path: Path, hot_at_30: bytes, changes: dict[str, object], problem: str
) -> None:
    write_hot_package(tmp_path, hot_at_30)
    resign(tmp_path, **changes)

    with pytest.raises(ModelLoadError) as caught:
        load_model(tmp_path, TRUSTED)
    assert problem in str(caught.value)


def test_the_smoke_comparison_is_within_the_tolerance_relative_beyond_one() -> None:
    expected = {"labels": [1, 0], "scores": [0.5, 1000.0], "probabilities": None}

    assert smoke_test_problem(expected, {"labels": [1, 0], "scores": [0.50009, 1000.09]}) is None
    assert smoke_test_problem(expected, {"labels": [1, 0], "scores": [0.5002, 1000.0]}) == (
        "scores[0]: expected 0.5, got 0.5002 (tolerance 0.0001)"
    )
    assert smoke_test_problem(expected, {"labels": [1], "scores": [0.5, 1000.0]}) == (
        "labels: expected 2 values, got [1]"
    )
    assert (
        smoke_test_problem(expected, {"labels": None, "scores": None})
        == "labels: expected 2 values, got None"
    )

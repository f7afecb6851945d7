"""Manifests built from a registered version's result, and the recipe of the component that ships them."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from edgewise.components.inference.model import load_model
from edgewise.components.inference.verify import INFERENCE_DEPENDENCY, INSTALL_SCRIPT
from edgewise.ml.errors import ExportError
from edgewise.ml.export import native_outputs, to_onnx
from edgewise.ml.jsonpath import parse_path
from edgewise.ml.packaging import build_manifest, model_component_recipe
from edgewise.ml.training.tasks import Task
from edgewise.protocol.model_package import InputField, ModelManifest, key_id, verify_package, write_package
from edgewise.recipe import parse_recipe

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
KEY_ID = key_id(KEY.public_key())
RNG = np.random.default_rng(5)
X = RNG.normal(size=(120, 2))


def _result(task: Task, features: list[str], model: Any) -> tuple[dict[str, Any], bytes]:
    onnx_bytes, outputs = to_onnx(model, task, len(features))
    if task == Task.ANOMALY:
        outputs = dataclasses.replace(outputs, threshold=float(np.quantile(-model.decision_function(X), 0.9)))
    example = X[:3].tolist()
    example[1][0] = float("nan")  # a row with a missing value cannot go into a manifest
    return {
        "task": str(task),
        "learner": "x",
        "features": features,
        "outputs": outputs.to_json(),
        "inputExample": example,
    }, onnx_bytes


@pytest.fixture(scope="module")
def classifier() -> tuple[dict[str, Any], bytes, Any]:
    model = LogisticRegression().fit(X, (X[:, 0] > X[:, 1]).astype(np.int64))
    result, onnx_bytes = _result(Task.CLASSIFICATION, ["temp", "vibration.rms"], model)
    return result, onnx_bytes, model


def test_a_manifest_from_a_result_packages_and_loads_on_a_device(
    classifier: tuple[dict[str, Any], bytes, Any], tmp_path: Path
) -> None:
    result, onnx_bytes, model = classifier
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    manifest = build_manifest("pump", "3", result, onnx_bytes, key_id=KEY_ID, created=created)

    assert (manifest.name, manifest.version, manifest.task) == ("pump", "3", "classification")
    # Trained on an uploaded table: one row per message, each feature read from the payload key of its name.
    assert manifest.inputs == (InputField("temp", "temp"), InputField("vibration.rms", "['vibration.rms']"))
    assert parse_path(manifest.inputs[1].path).extract({"vibration.rms": 2.5}) == 2.5
    assert manifest.window is None
    assert manifest.feature_names == ("temp", "vibration.rms")
    assert manifest.input_name == "input"
    assert manifest.outputs.classes == (0, 1)
    assert manifest.input_example == (tuple(X[0]), tuple(X[2]))
    native = native_outputs(model, manifest.outputs, np.array(manifest.input_example))
    assert native.labels is not None
    assert manifest.example_output["labels"] == native.labels.tolist()
    probabilities = np.asarray(manifest.example_output["probabilities"], dtype=np.float64)
    np.testing.assert_allclose(probabilities, np.asarray(native.probabilities), atol=1e-5)
    assert manifest.runtime["onnxruntime"]
    assert manifest.runtime["skl2onnx"]
    assert manifest.created == "2026-01-02T03:04:05+00:00"
    assert manifest.key_id == KEY_ID
    assert ModelManifest.from_json(json.loads(json.dumps(manifest.to_json()))) == manifest

    write_package(tmp_path, manifest=manifest, onnx=onnx_bytes, private_key=KEY)
    loaded = load_model(tmp_path, [KEY.public_key()])
    assert loaded.manifest == verify_package(tmp_path, [KEY.public_key()])
    assert loaded.predict(np.array([[2.0, -2.0]]))[0]["label"] == 1


def test_a_windowed_dataset_gives_the_inputs_and_the_window(tmp_path: Path) -> None:
    model = make_pipeline(StandardScaler(), IsolationForest(n_estimators=20, random_state=0)).fit(X)
    result, onnx_bytes = _result(Task.ANOMALY, ["temp__std", "pressure__mean"], model)
    spec = {
        "fields": [{"name": "temp", "path": "sensors.temp"}, {"name": "pressure", "path": "$.p"}],
        "resampleMs": 1000,
        "window": {"size": 8, "step": 4, "features": ["mean", "std"], "fftBands": 4},
        "label": None,
    }

    manifest = build_manifest("anomaly", "1", result, onnx_bytes, key_id=KEY_ID, dataset_spec=spec)

    assert manifest.inputs == (InputField("temp", "sensors.temp"), InputField("pressure", "$.p"))
    assert manifest.window == {
        "size": 8,
        "step": 4,
        "features": ["mean", "std"],
        "fftBands": 4,
        "resampleMs": 1000,
    }
    assert manifest.outputs.threshold == result["outputs"]["threshold"]
    assert set(np.asarray(manifest.example_output["labels"]).tolist()) <= {0, 1}
    write_package(tmp_path, manifest=manifest, onnx=onnx_bytes, private_key=KEY)
    assert load_model(tmp_path, [KEY.public_key()]).layout.columns == (
        1,
        2,
    )  # field-major: temp__mean, temp__std, pressure__mean, ...


def test_features_a_device_cannot_compute_are_refused(classifier: tuple[dict[str, Any], bytes, Any]) -> None:
    result, onnx_bytes, _ = classifier
    spec = {"fields": [{"name": "temp", "path": "t"}], "resampleMs": 500, "window": {"size": 4, "step": 1}}

    with pytest.raises(ExportError, match=r"result\.features: 'vibration\.rms' is not a window feature"):
        build_manifest("pump", "1", {**result, "features": ["temp__mean", "vibration.rms"]}, onnx_bytes,
                       key_id=KEY_ID, dataset_spec=spec)  # fmt: skip
    with pytest.raises(ExportError, match=r"result\.features: 'temp' is not a payload field"):
        build_manifest(
            "pump", "1", result, onnx_bytes, key_id=KEY_ID, inputs=[InputField("vibration.rms", "v")]
        )
    with pytest.raises(ExportError, match=r"result.inputExample\[0\]: must be a list of 2 numbers"):
        build_manifest("pump", "1", {**result, "inputExample": [[1.0]]}, onnx_bytes, key_id=KEY_ID)
    with pytest.raises(ExportError, match=r"result\.outputs\.kind"):
        build_manifest("pump", "1", {**result, "outputs": {"kind": "ranker"}}, onnx_bytes, key_id=KEY_ID)
    with pytest.raises(ExportError, match="version: 'v1' is not a model version number"):
        build_manifest("pump", "v1", result, onnx_bytes, key_id=KEY_ID)


def test_the_recipe_ships_the_package_and_verifies_it_on_install() -> None:
    files = {
        name: f"s3://models/pump/7/{name}" for name in ("model.onnx", "manifest.json", "manifest.json.sig")
    }

    recipe = model_component_recipe("pump", "7", files)

    assert recipe["ComponentName"] == "edgewise.models.pump"
    assert recipe["ComponentVersion"] == "7.0.0"
    assert recipe["ComponentDependencies"] == INFERENCE_DEPENDENCY
    (manifest,) = recipe["Manifests"]
    assert [artifact["Uri"] for artifact in manifest["Artifacts"]] == list(files.values())
    assert manifest["Lifecycle"]["Install"]["Script"] == INSTALL_SCRIPT
    parsed = parse_recipe(recipe, source_name="model recipe")
    assert (parsed.name, str(parsed.version)) == ("edgewise.models.pump", "7.0.0")
    assert [artifact.file_name for artifact in parsed.manifests[0].artifacts] == list(files)


def test_the_recipe_names_the_package_files_when_no_uris_are_given(
    classifier: tuple[dict[str, Any], bytes, Any],
) -> None:
    result, onnx_bytes, _ = classifier
    manifest = build_manifest("pump", "2", result, onnx_bytes, key_id=KEY_ID)

    for recipe in (model_component_recipe("pump", "2"), model_component_recipe("pump", "2", manifest)):
        uris = [artifact["Uri"] for artifact in recipe["Manifests"][0]["Artifacts"]]
        assert uris == [
            f"edgewise:models/pump/2/{name}" for name in ("model.onnx", "manifest.json", "manifest.json.sig")
        ]
    with pytest.raises(ExportError, match=r"files: the package's manifest\.json\.sig has no artifact URI"):
        model_component_recipe(
            "pump", "2", {"model.onnx": "s3://b/model.onnx", "manifest.json": "s3://b/manifest.json"}
        )

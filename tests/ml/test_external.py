"""Models a notebook logs with MLflow into a real SQLite store, converted for Edgewise: each flavor that converts
passes the fidelity gate and makes a package that verifies; a model without a converter, one whose float32
conversion disagrees, one without an input example and a native Booster are refused saying why."""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path
from typing import Any

import lightgbm
import mlflow
import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
import xgboost
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from mlflow import MlflowClient
from skl2onnx import to_onnx as skl2onnx_to_onnx
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LinearRegression, LogisticRegression

from edgewise.ml.errors import ExportError, FidelityError
from edgewise.ml.export import onnx_session
from edgewise.ml.external import convert_mlflow_model, find_mlflow_model
from edgewise.ml.packaging import build_manifest
from edgewise.ml.registry import ModelRegistry
from edgewise.protocol.model_package import key_id, verify_package, write_package

COLUMNS = ["temp", "vibration", "rpm"]


class ThresholdClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A notebook's own estimator, which no ONNX converter knows."""

    def fit(self, X: Any, y: Any) -> ThresholdClassifier:
        self.classes_ = np.unique(y)
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict_proba(self, X: Any) -> npt.NDArray[np.float64]:
        high = 1.0 / (1.0 + np.exp(-np.asarray(X, dtype=np.float64)[:, 0]))
        return np.column_stack([1.0 - high, high])

    def predict(self, X: Any) -> npt.NDArray[Any]:
        labels: npt.NDArray[Any] = np.asarray(self.classes_)[self.predict_proba(X).argmax(axis=1)]
        return labels


def _log(experiment: str, flavor: Any, model: object, name: str, **options: Any) -> None:
    """What a notebook runs: log the model in a run of ``experiment`` and register it under ``name``.

    The experiment is given to the run rather than set process-wide (``mlflow.set_experiment``), so that no
    other test meets it.
    """
    with warnings.catch_warnings():
        # MLflow's own warnings while it infers a signature from a DataFrame (its code, not ours).
        warnings.filterwarnings("ignore", message="Operation with range is deprecated", module="mlflow")
        warnings.filterwarnings(
            "ignore", message="Hint: Inferred schema contains integer", category=UserWarning
        )
        # MLflow reads the estimator's predict() hints and warns that it cannot check data against ``Any``.
        warnings.filterwarnings(
            "ignore", message=".*Any type hint is inferred as AnyType", category=UserWarning
        )
        with mlflow.start_run(experiment_id=experiment):
            # Requirements given, so that MLflow does not import the model in a subprocess to infer them.
            flavor.log_model(model, name="model", registered_model_name=name, pip_requirements=[], **options)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelRegistry, Path]:
    root = tmp_path_factory.mktemp("notebook")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(size=(120, 3)), columns=COLUMNS)
    X = frame.to_numpy()
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    with pytest.MonkeyPatch.context() as patch:
        # The notebook's environment: MLflow's fluent API reads the store from it.
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        log = functools.partial(_log, mlflow.create_experiment("notebook", (root / "artifacts").as_uri()))
        pickled = {"serialization_format": "cloudpickle"}
        log(mlflow.sklearn, LogisticRegression().fit(frame, y), "churn", input_example=frame[:5], **pickled)
        forest = IsolationForest(n_estimators=20, random_state=0).fit(X)
        log(mlflow.sklearn, forest, "outliers", input_example=X[:5], **pickled)
        regressor = lightgbm.LGBMRegressor(n_estimators=8, verbose=-1).fit(frame, X[:, 2])
        log(mlflow.lightgbm, regressor, "load", input_example=frame[:5], **pickled)
        exported = skl2onnx_to_onnx(
            LogisticRegression().fit(X, y), X[:1].astype(np.float32), options={"zipmap": False}
        )
        log(mlflow.onnx, exported, "exported", input_example=X[:5].astype(np.float32))
        log(mlflow.sklearn, ThresholdClassifier().fit(X, y), "custom", input_example=X[:5], **pickled)
        # float32 arithmetic cannot give the difference of two products near 1e9 to 1e-4.
        cancelling = LinearRegression().fit(X, y)
        cancelling.coef_, cancelling.intercept_ = np.array([1000.0, -1000.0, 0.0]), 0.0
        log(mlflow.sklearn, cancelling, "cancelling", input_example=X[:5] + 1e6, **pickled)
        log(mlflow.sklearn, LogisticRegression().fit(X, y), "unexampled", **pickled)
        booster = xgboost.train({"objective": "reg:squarederror"}, xgboost.DMatrix(X, label=X[:, 2]), 4)
        log(mlflow.xgboost, booster, "booster", input_example=X[:5])
    return ModelRegistry(uri, str(root / "artifacts")), root


def _converted(registry: tuple[ModelRegistry, Path], name: str) -> tuple[Path, dict[str, Any]]:
    store, root = registry
    files = store.download(name, "1", root / "downloads" / name)
    return files, convert_mlflow_model(files)


def _packaged(files: Path, name: str, result: dict[str, Any]) -> Path:
    private = Ed25519PrivateKey.generate()
    onnx_bytes = (files / "model.onnx").read_bytes()
    manifest = build_manifest(name, "1", result, onnx_bytes, key_id=key_id(private.public_key()))
    package = files.parent / f"{name}-package"
    write_package(package, manifest=manifest, onnx=onnx_bytes, private_key=private)
    verified = verify_package(package, [private.public_key()])
    assert verified.window is None
    assert [(field.name, field.path) for field in verified.inputs] == [
        (name, name) for name in result["features"]
    ]
    return package


def test_a_scikit_learn_classifier_logged_from_a_dataframe_converts_and_packages(
    registry: tuple[ModelRegistry, Path],
) -> None:
    files, result = _converted(registry, "churn")

    assert registry[0].get_version("churn", version="1").source.startswith("models:/m-")
    assert json.loads((files / "result.json").read_text()) == result
    assert (result["task"], result["learner"], result["features"]) == (
        "classification",
        "LogisticRegression",
        COLUMNS,
    )
    assert result["outputs"]["classes"] == [0, 1]
    assert result["fidelity"]["passed"] is True
    # The logged example and four jittered copies of it.
    assert result["fidelity"]["rows"] == 25
    assert result["sizeBytes"] == len((files / "model.onnx").read_bytes())
    assert result["latency"]["p50Ms"] > 0
    assert len(result["inputExample"]) == 5
    assert result["source"]["flavor"] == "sklearn"
    _packaged(files, "churn", result)


def test_an_isolation_forest_is_an_anomaly_model_flagging_what_it_flags(
    registry: tuple[ModelRegistry, Path],
) -> None:
    files, result = _converted(registry, "outliers")

    assert result["task"] == "anomaly"
    assert result["features"] == ["f0", "f1", "f2"]
    assert (result["outputs"]["scoreSign"], result["outputs"]["threshold"]) == (-1, 0.0)
    assert result["fidelity"]["passed"] is True
    _packaged(files, "outliers", result)


def test_a_lightgbm_regressor_converts(registry: tuple[ModelRegistry, Path]) -> None:
    files, result = _converted(registry, "load")

    assert (result["task"], result["learner"], result["features"]) == ("regression", "LGBMRegressor", COLUMNS)
    assert result["fidelity"]["passed"] is True
    _packaged(files, "load", result)


def test_an_onnx_model_is_taken_as_it_is_with_its_input_renamed(registry: tuple[ModelRegistry, Path]) -> None:
    files, result = _converted(registry, "exported")

    logged = onnx_session(next((registry[1] / "artifacts").rglob("model.onnx")).read_bytes())
    converted = onnx_session((files / "model.onnx").read_bytes())
    rows = np.asarray(result["inputExample"], dtype=np.float32)
    assert [item.name for item in converted.get_inputs()] == ["input"]
    assert logged.get_inputs()[0].name != "input"
    np.testing.assert_array_equal(
        converted.run(["probabilities"], {"input": rows})[0],
        logged.run(["probabilities"], {logged.get_inputs()[0].name: rows})[0],
    )
    assert result["task"] == "classification"
    assert result["outputs"]["classes"] == [0, 1]
    assert result["fidelity"] is None
    _packaged(files, "exported", result)


def test_a_model_no_converter_knows_is_refused_naming_it(registry: tuple[ModelRegistry, Path]) -> None:
    with pytest.raises(ExportError, match="no ONNX conversion for ThresholdClassifier"):
        _converted(registry, "custom")


def test_a_conversion_that_disagrees_is_refused_with_the_gates_reason(
    registry: tuple[ModelRegistry, Path],
) -> None:
    with pytest.raises(FidelityError, match=r"LinearRegression differs .* beyond the tolerance") as refused:
        _converted(registry, "cancelling")

    assert "worst at row" in str(refused.value)
    assert not (registry[1] / "downloads" / "cancelling" / "model.onnx").exists()


def test_a_model_logged_without_an_input_example_is_refused_naming_it(
    registry: tuple[ModelRegistry, Path],
) -> None:
    with pytest.raises(ExportError, match="input_example: the sklearn model was logged without one"):
        _converted(registry, "unexampled")


def test_a_native_booster_is_refused_saying_what_to_log(registry: tuple[ModelRegistry, Path]) -> None:
    with pytest.raises(
        ExportError, match=r"xgboost\.core\.Booster is a native Booster; log the scikit-learn API"
    ):
        _converted(registry, "booster")


def test_run_sources_and_models_below_the_version_directory_come_through(
    registry: tuple[ModelRegistry, Path],
) -> None:
    store, root = registry
    client = MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)
    churn = client.get_model_version("churn", "1")
    client.create_registered_model("by-run")
    client.create_model_version("by-run", source=f"runs:/{churn.run_id}/model", run_id=churn.run_id)
    saved = root / "saved"
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Hint: Inferred schema contains integer", category=UserWarning
        )
        small = LogisticRegression().fit(np.eye(3), [0, 1, 1])
        options: dict[str, Any] = {"serialization_format": "cloudpickle", "pip_requirements": []}
        mlflow.sklearn.save_model(small, saved / "nested" / "model", input_example=np.eye(3), **options)
    client.create_registered_model("nested")
    client.create_model_version("nested", source=saved.as_uri())

    by_run, _ = _converted(registry, "by-run")
    nested, result = _converted(registry, "nested")

    assert (by_run / "MLmodel").is_file()
    assert find_mlflow_model(nested) == nested / "nested" / "model"
    assert (nested / "model.onnx").is_file()
    assert result["features"] == ["f0", "f1", "f2"]

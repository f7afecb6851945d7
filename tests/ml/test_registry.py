"""The model registry on a real MLflow SQLite store: register training jobs, versions, aliases, downloads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from edgewise.ml.errors import MlNameError, RegistryError
from edgewise.ml.export import FidelityReport, LatencyReport, to_onnx
from edgewise.ml.registry import ModelRegistry, ModelVersionInfo
from edgewise.ml.training.tasks import Task


def _job_dir(directory: Path, *, score: float, c: float) -> Path:
    """A training job's output as the job writes it: model.onnx, result.json, model.pkl."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] > 0).astype(np.int64)
    model = LogisticRegression(C=c).fit(X, y)
    onnx_bytes, outputs = to_onnx(model, Task.CLASSIFICATION, 2)
    directory.mkdir(parents=True)
    (directory / "model.onnx").write_bytes(onnx_bytes)
    (directory / "model.pkl").write_bytes(b"pickled")
    result = {
        "task": "classification",
        "learner": "lrl1",
        "metric": "roc_auc",
        "score": score,
        "features": ["temp", "vibration"],
        "label": "label",
        "classes": [0, 1],
        "outputs": outputs.to_json(),
        "fidelity": FidelityReport(60, 0, 1e-7, 1e-4, passed=True, reason="").to_json(),
        "latency": LatencyReport(p50_ms=0.02, p99_ms=0.05, rows=200).to_json(),
        "sizeBytes": len(onnx_bytes),
        "leaderboard": [
            {"learner": "lgbm", "params": {"n_estimators": 4}, "metric": "roc_auc", "score": score + 0.1,
             "fitsBudget": False},
            {"learner": "lrl1", "params": {"C": c}, "metric": "roc_auc", "score": score, "fitsBudget": True},
        ],
        "inputExample": X[:2].tolist(),
        "reference": {"temp": X[:, 0].tolist()},
        "request": {"task": "classification", "label": "label", "timeBudgetS": 2.0, "budget": {"maxSizeBytes": 9}},
    }  # fmt: skip
    (directory / "result.json").write_text(json.dumps(result), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelRegistry, Path, list[ModelVersionInfo]]:
    root = tmp_path_factory.mktemp("mlflow")
    registry = ModelRegistry(f"sqlite:///{root / 'mlflow.db'}", str(root / "artifacts"))
    registered = [
        registry.register_training(
            "pump",
            _job_dir(root / "job-1", score=0.8, c=1.0),
            dataset="pumps",
            dataset_sha256="a" * 64,
            job_id="j1",
        ),
        registry.register_training(
            "pump",
            _job_dir(root / "job-2", score=0.9, c=0.5),
            dataset="pumps",
            dataset_sha256="b" * 64,
            job_id="j2",
        ),
        registry.register_training(
            "fan",
            _job_dir(root / "job-3", score=0.7, c=2.0),
            dataset="fans",
            dataset_sha256="c" * 64,
            job_id="j3",
        ),
    ]
    return registry, root, registered


def test_registering_a_job_logs_its_run_and_makes_a_version(
    store: tuple[ModelRegistry, Path, list[ModelVersionInfo]],
) -> None:
    _, root, (first, second, fan) = store

    assert (first.name, first.version, second.version, fan.version) == ("pump", "1", "2", "1")
    assert second.tags == {
        "edgewise.task": "classification",
        "edgewise.learner": "lrl1",
        "edgewise.dataset": "pumps",
        "edgewise.dataset_sha256": "b" * 64,
        "edgewise.job": "j2",
    }
    assert second.metrics["score"] == 0.9
    assert second.metrics["latency_p50_ms"] == 0.02
    assert second.metrics["latency_p99_ms"] == 0.05
    assert second.metrics["fidelity_max_abs_delta"] == 1e-7
    assert second.metrics["size_bytes"] == (root / "job-2" / "model.onnx").stat().st_size
    assert second.params["learner"] == "lrl1"
    assert second.params["metric"] == "roc_auc"
    # The winner is the best row of the winning learner that fits the budget, not the best row overall.
    assert second.params["learner.C"] == "0.5"
    assert second.params["request.timeBudgetS"] == "2.0"
    assert json.loads(second.params["request.budget"]) == {"maxSizeBytes": 9}
    assert second.run_id
    assert second.source.endswith("/model")
    assert second.source.startswith((root / "artifacts" / "pump").resolve().as_uri())
    assert second.created_ms >= first.created_ms > 0


def test_models_and_versions_are_listed_newest_first(
    store: tuple[ModelRegistry, Path, list[ModelVersionInfo]],
) -> None:
    registry, _, _ = store

    models = registry.list_models()

    assert [(model.name, model.latest_version) for model in models] == [("fan", "1"), ("pump", "2")]
    assert [version.version for version in registry.versions("pump")] == ["2", "1"]
    assert registry.get_model("pump").created_ms > 0


def test_aliases_point_at_one_version_and_move(
    store: tuple[ModelRegistry, Path, list[ModelVersionInfo]],
) -> None:
    registry, _, _ = store

    registry.set_alias("pump", "production", "1")
    registry.set_alias("pump", "candidate", "2")
    assert registry.get_model("pump").aliases == {"production": "1", "candidate": "2"}
    assert registry.get_version("pump", alias="production").version == "1"
    assert registry.get_version("pump", version="1").aliases == ("production",)

    registry.set_alias("pump", "production", "2")
    assert registry.get_version("pump", alias="production").version == "2"
    assert [(version.version, version.aliases) for version in registry.versions("pump")] == [
        ("2", ("candidate", "production")),
        ("1", ()),
    ]

    registry.delete_alias("pump", "candidate")
    assert registry.get_model("pump").aliases == {"production": "2"}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda registry: registry.get_model("nope"), "model 'nope': not found"),
        (lambda registry: registry.versions("nope"), "model 'nope': not found"),
        (lambda registry: registry.get_version("pump", version="7"), "model 'pump' version '7': not found"),
        (
            lambda registry: registry.get_version("pump", alias="gone"),
            "alias: model 'pump' has no alias 'gone'",
        ),
        (lambda registry: registry.set_alias("pump", "x", "9"), "model 'pump' version '9': not found"),
        (lambda registry: registry.delete_alias("pump", "gone"), "alias: model 'pump' has no alias 'gone'"),
        (
            lambda registry: registry.download("fan", "5", Path("unused")),
            "model 'fan' version '5': not found",
        ),
    ],
)
def test_a_missing_model_version_or_alias_is_not_found(
    store: tuple[ModelRegistry, Path, list[ModelVersionInfo]], call: object, message: str
) -> None:
    registry, _, _ = store

    with pytest.raises(RegistryError, match=message) as raised:
        call(registry)  # type: ignore[operator]

    assert raised.value.not_found


def test_bad_requests_are_errors_that_are_not_not_found(
    store: tuple[ModelRegistry, Path, list[ModelVersionInfo]], tmp_path: Path
) -> None:
    registry, _, _ = store

    with pytest.raises(RegistryError, match="reserved") as reserved:
        registry.set_alias("pump", "latest", "1")
    assert not reserved.value.not_found
    with pytest.raises(RegistryError, match="give exactly one"):
        registry.get_version("pump")
    with pytest.raises(MlNameError, match="name: "):
        registry.get_model("no/such")
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    with pytest.raises(RegistryError, match=r"has no result\.json") as no_result:
        registry.register_training("pump", tmp_path, dataset="d", dataset_sha256="0" * 64, job_id="j")
    assert not no_result.value.not_found


def test_download_copies_the_version_files(
    store: tuple[ModelRegistry, Path, list[ModelVersionInfo]], tmp_path: Path
) -> None:
    registry, root, _ = store

    destination = registry.download("pump", "1", tmp_path / "pump-1")

    assert sorted(path.name for path in destination.iterdir()) == ["model.onnx", "model.pkl", "result.json"]
    assert (destination / "model.onnx").read_bytes() == (root / "job-1" / "model.onnx").read_bytes()
    assert json.loads((destination / "result.json").read_text())["score"] == 0.8

"""The cloud's model registry, packaging and deployment, on a real cloud served by uvicorn with a real MLflow
store: models and versions listed, aliases moved and their history, a version packaged as a signed component
whose files verify against the cloud's key, a deployment that keeps the target's components and tells the
inference component to serve the model, and ``edgewise model ...`` through the CLI."""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from edgewise.cli.main import app as cli_app
from edgewise.cloud.app import create_app, initialize
from edgewise.cloud.components import LocalArtifactStore
from edgewise.cloud.datasets.models import Dataset
from edgewise.cloud.db import create_database_engine, create_session_factory
from edgewise.cloud.deployments.models import Deployment
from edgewise.cloud.jobs.secrets import SecretSealer
from edgewise.cloud.models import signing
from edgewise.cloud.models.registry import open_registry, tracking_uri
from edgewise.cloud.registry import service as things
from edgewise.cloud.settings import CloudSettings
from edgewise.components.inference.config import CaptureConfig, ChallengerConfig, parse_config
from edgewise.ml.datasets import DatasetSpec, dataset_bytes
from edgewise.ml.export import FidelityReport, LatencyReport, to_onnx
from edgewise.protocol.model_package import ModelManifest, parse_public_key, verify_package
from tests.support.api_server import served_api

FEATURES = ["temp__mean", "temp__std", "vibration__mean", "vibration__std"]
SPEC = {
    "fields": [{"name": "temp", "path": "sensors.temp"}, {"name": "vibration", "path": "vibration"}],
    "resampleMs": 1000,
    "window": {"size": 4, "step": 2, "features": ["mean", "std"], "fftBands": 4},
    "label": None,
}
DATASET_SHA256 = "d" * 64
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-AbCdEf"
PASSWORD = "hunter2-correct-horse"


def _job_dir(directory: Path, *, seed: int) -> Path:
    """A training job's output as the job writes it: a small classifier over window features."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(80, len(FEATURES)))
    y = (X[:, 0] + X[:, 2] > 0).astype(np.int64)
    model = LogisticRegression().fit(X, y)
    onnx_bytes, outputs = to_onnx(model, "classification", len(FEATURES))
    directory.mkdir(parents=True)
    (directory / "model.onnx").write_bytes(onnx_bytes)
    result = {
        "task": "classification",
        "learner": "lrl1",
        "metric": "roc_auc",
        "score": 0.9 + seed / 100,
        "features": FEATURES,
        "label": "label",
        "classes": [0, 1],
        "outputs": outputs.to_json(),
        "fidelity": FidelityReport(20, 0, 1e-7, 1e-4, passed=True, reason="").to_json(),
        "latency": LatencyReport(p50_ms=0.02, p99_ms=0.05, rows=200).to_json(),
        "sizeBytes": len(onnx_bytes),
        "leaderboard": [
            {"learner": "lrl1", "params": {"C": 1.0}, "metric": "roc_auc", "score": 0.9, "fitsBudget": True}
        ],
        "inputExample": X[:3].tolist(),
        "reference": {},
    }
    (directory / "result.json").write_text(json.dumps(result), encoding="utf-8")
    return directory


@dataclass(frozen=True)
class Cloud:
    settings: CloudSettings
    api_url: str
    token: str

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url + "/api/v1", headers={"Authorization": f"Bearer {self.token}"}, timeout=60
        )

    def cli(self, *args: str) -> Any:
        env = {"COLUMNS": "200", "EDGEWISE_API_TOKEN": self.token, "EDGEWISE_API_URL": self.api_url}
        result = CliRunner().invoke(cli_app, ["model", *args, "--json"], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


def _register(cloud: CloudSettings, root: Path) -> None:
    """pump versions 1 and 2 (trained on the dataset in the datasets table), fan version 1 (on a dataset whose
    row is gone, its Parquet file still stored), and raw version 1 registered with the MLflow client from a
    notebook's files (no ONNX)."""
    store = LocalArtifactStore(cloud.data_dir / "artifacts")
    parquet = dataset_bytes(
        pa.table({name: [0.5] for name in FEATURES}),
        spec=DatasetSpec.from_json({**SPEC, "resampleMs": 500}),
        source={"kind": "telemetry"},
    )
    stored_sha256 = store.put(io.BytesIO(parquet)).sha256
    registry = open_registry(cloud)
    for name, seed, sha256 in (
        ("pump", 1, DATASET_SHA256),
        ("pump", 2, DATASET_SHA256),
        ("fan", 3, stored_sha256),
    ):
        registry.register_training(
            name,
            _job_dir(root / f"job-{seed}", seed=seed),
            dataset="vibrations",
            dataset_sha256=sha256,
            job_id=f"job-{seed}",
        )
    notebook = root / "notebook"
    notebook.mkdir()
    (notebook / "model.pkl").write_bytes(b"a pickled estimator")
    client = MlflowClient(tracking_uri=tracking_uri(cloud), registry_uri=tracking_uri(cloud))
    client.create_registered_model("raw")
    client.create_model_version("raw", source=notebook.as_uri())


def _fleet(settings: CloudSettings) -> None:
    """Group plant (things a, b) and the training dataset's row."""
    engine = create_database_engine(settings.database_url)
    try:
        with create_session_factory(engine)() as session:
            things.create_group(session, "plant")
            for name in ("a", "b"):
                things.create_thing(session, name)
                things.add_thing_to_group(session, "plant", name)
            session.add(
                Dataset(
                    name="vibrations",
                    sha256=DATASET_SHA256,
                    size_bytes=1,
                    rows=1,
                    spec=SPEC,
                    source={"kind": "telemetry"},
                    summary={},
                    created_by="test",
                )
            )
            session.commit()
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    root = tmp_path_factory.mktemp("models")
    first = initialize(root / "cloud")
    assert first.admin_token is not None
    _fleet(first.settings)
    _register(first.settings, root)
    with served_api(create_app(first.settings)) as url:
        yield Cloud(first.settings, url, first.admin_token)


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def test_models_versions_and_a_version_with_its_training_result(cloud: Cloud) -> None:
    with cloud.client() as client:
        models = _ok(client.get("/models"))
        pump = _ok(client.get("/models/pump"))
        versions = _ok(client.get("/models/pump/versions"))
        detail = _ok(client.get("/models/pump/versions/2"))

    assert [(model["name"], model["latestVersion"]) for model in models["data"]] == [
        ("fan", "1"),
        ("pump", "2"),
        ("raw", "1"),
    ]
    assert [version["version"] for version in pump["versions"]] == ["2", "1"]
    assert versions["count"] == 2
    assert versions["data"][0]["tags"]["edgewise.dataset"] == "vibrations"
    assert detail["metrics"]["score"] == pytest.approx(0.92)
    assert (detail["task"], detail["learner"], detail["features"]) == ("classification", "lrl1", FEATURES)
    assert detail["fidelity"]["passed"] is True
    assert detail["leaderboard"][0]["learner"] == "lrl1"


def test_missing_models_versions_and_aliases_are_404_naming_them(cloud: Cloud) -> None:
    with cloud.client() as client:
        ghost = client.get("/models/ghost")
        version = client.get("/models/pump/versions/9")
        package = client.post("/models/pump/package", json={"version": "9"})
        alias = client.post("/models/pump/package", json={"alias": "nobody"})
        both = client.post("/models/pump/package", json={"version": "1", "alias": "champion"})
        nowhere = client.post(
            "/models/pump/deploy",
            json={"version": "2", "group": "nowhere", "inputTopic": "in", "outputTopic": "out"},
        )

    assert ghost.status_code == 404
    assert "'ghost'" in ghost.json()["message"]
    assert version.status_code == 404
    assert "pump/9" in version.json()["message"]
    assert package.status_code == 404
    assert "pump/9" in package.json()["message"]
    assert alias.status_code == 404
    assert "pump@nobody" in alias.json()["message"]
    assert both.status_code == 422
    assert "exactly one of 'version' and 'alias'" in both.json()["message"]
    assert nowhere.status_code == 404
    assert "'nowhere'" in nowhere.json()["message"]


def test_alias_moves_are_recorded_newest_first(cloud: Cloud) -> None:
    with cloud.client() as client:
        first = _ok(client.put("/models/fan/aliases/staging", json={"version": "1"}))
        _ok(client.put("/models/fan/aliases/staging", json={"version": "1"}))
        _ok(client.delete("/models/fan/aliases/staging"), 204)
        missing = client.delete("/models/fan/aliases/staging")
        reserved = client.put("/models/fan/aliases/latest", json={"version": "1"})
        model = _ok(client.get("/models/fan"))
        history = _ok(client.get("/models/fan/aliases/staging/history"))

    assert (first["version"], first["previousVersion"], first["actor"]) == ("1", None, "admin")
    assert missing.status_code == 404
    assert reserved.status_code == 422
    assert "alias" in reserved.json()["message"]
    assert "staging" not in model["aliases"]
    assert [(event["version"], event["previousVersion"]) for event in history["data"]] == [
        (None, "1"),
        ("1", "1"),
        ("1", None),
    ]


def _verified(
    component: dict[str, Any], store: LocalArtifactStore, public_key: str, directory: Path
) -> ModelManifest:
    """The manifest of a published model component, its files read back from the store and verified."""
    assert sorted(artifact["fileName"] for artifact in component["artifacts"]) == [
        "manifest.json",
        "manifest.json.sig",
        "model.onnx",
    ]
    directory.mkdir()
    for artifact in component["artifacts"]:
        reader = store.open(artifact["sha256"])
        try:
            content = reader.read()
        finally:
            reader.close()
        assert hashlib.sha256(content).hexdigest() == artifact["sha256"]
        (directory / artifact["fileName"]).write_bytes(content)
    return verify_package(directory, [parse_public_key(public_key)])


def test_a_packaged_version_is_a_component_whose_signed_files_verify(cloud: Cloud, tmp_path: Path) -> None:
    with cloud.client() as client:
        packaged = _ok(client.post("/models/pump/package", json={"version": "1"}), 201)
        again = _ok(client.post("/models/pump/package", json={"version": "1"}), 200)
        client.post("/models/fan/package", json={"version": "1"}).raise_for_status()
        key = _ok(client.get("/models/signing-key"))
        component = _ok(client.get("/components/edgewise.models.pump/versions/1.0.0"))
        fan_component = _ok(client.get("/components/edgewise.models.fan/versions/1.0.0"))

    assert (packaged["componentName"], packaged["componentVersion"], packaged["created"]) == (
        "edgewise.models.pump",
        "1.0.0",
        True,
    )
    assert again["created"] is False
    assert again["keyId"] == key["keyId"] == packaged["keyId"]
    assert key["publicKey"] == signing.load_or_create(cloud.settings.data_dir).public_key_text()
    store = LocalArtifactStore(cloud.settings.data_dir / "artifacts")
    manifest = _verified(component, store, key["publicKey"], tmp_path / "pump")
    fan = _verified(fan_component, store, key["publicKey"], tmp_path / "fan")
    assert (manifest.name, manifest.version, manifest.key_id) == ("pump", "1", key["keyId"])
    assert [(field.name, field.path) for field in manifest.inputs] == [
        ("temp", "sensors.temp"),
        ("vibration", "vibration"),
    ]
    assert manifest.window is not None
    assert manifest.window["resampleMs"] == 1000
    assert manifest.feature_names == tuple(FEATURES)
    # fan's dataset row is gone: its spec comes from the stored Parquet file's metadata.
    assert [field.name for field in fan.inputs] == ["temp", "vibration"]
    assert fan.window is not None
    assert fan.window["resampleMs"] == 500


def test_a_version_without_onnx_cannot_be_packaged(cloud: Cloud) -> None:
    with cloud.client() as client:
        response = client.post("/models/raw/package", json={"version": "1"})

    assert response.status_code == 422
    assert "'raw' version 1 has no model.onnx" in response.json()["message"]


def test_deploying_to_a_group_keeps_its_components_and_configures_inference(cloud: Cloud) -> None:
    hello = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": "com.example.Hello",
        "ComponentVersion": "1.0.0",
        "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": {"Run": "echo hello"}}],
    }
    secrets = [{"arn": SECRET_ARN, "versionId": "v1", "secretString": PASSWORD}]
    with cloud.client() as client:
        _ok(client.post("/components", json={"recipe": hello, "artifacts": {}}), 201)
        _ok(
            client.post(
                "/deployments",
                json={
                    "targetArn": "plant",
                    "components": {
                        "com.example.Hello": {"componentVersion": "1.0.0"},
                        "aws.greengrass.SecretManager": {
                            "componentVersion": "2.12.0",
                            "configurationUpdate": {"merge": {"secrets": secrets}},
                        },
                    },
                },
            ),
            201,
        )
        _ok(client.put("/models/pump/aliases/champion", json={"version": "2"}))
        first = _ok(
            client.post(
                "/models/pump/deploy",
                json={
                    "alias": "champion",
                    "group": "plant",
                    "inputTopic": "sensors/+/reading",
                    "outputTopic": "ml/pump/results",
                    "iotCoreTopic": "fleet/ml/pump",
                },
            ),
            201,
        )
        second = _ok(
            client.post(
                "/models/fan/deploy",
                json={
                    "version": "1",
                    "targetArn": "arn:aws:iot:us-east-1:123:thinggroup/plant",
                    "inputTopic": "fans/+",
                    "outputTopic": "ml/fan/results",
                },
            ),
            201,
        )
        deployment = _ok(client.get(f"/deployments/{second['deploymentId']}"))
        key = _ok(client.get("/models/signing-key"))["publicKey"]

    assert (first["modelVersion"], first["componentVersion"]) == ("2", "2.0.0")
    assert first["targetArn"].endswith(":thinggroup/plant")
    components = deployment["components"]
    assert components["com.example.Hello"] == {"componentVersion": "1.0.0"}
    assert components["edgewise.models.pump"] == {"componentVersion": "2.0.0"}
    assert components["edgewise.models.fan"] == {"componentVersion": "1.0.0"}
    merge = components["edgewise.ml.Inference"]["configurationUpdate"]["merge"]
    assert components["edgewise.ml.Inference"]["componentVersion"] == "1.0.0"
    assert merge["trustedKeys"] == [key]
    assert merge["models"] == {
        "pump": {
            "component": "edgewise.models.pump",
            "version": "2.0.0",
            "inputTopic": "sensors/+/reading",
            "outputTopic": "ml/pump/results",
            "iotCoreTopic": "fleet/ml/pump",
        },
        "fan": {
            "component": "edgewise.models.fan",
            "version": "1.0.0",
            "inputTopic": "fans/+",
            "outputTopic": "ml/fan/results",
            "iotCoreTopic": "",
        },
    }
    # The secret the group had still opens for the device, sealed anew for the new deployment.
    engine = create_database_engine(cloud.settings.database_url)
    try:
        with create_session_factory(engine)() as session:
            row = session.query(Deployment).filter_by(deployment_id=second["deploymentId"]).one()
            opened = SecretSealer.load_or_create(cloud.settings.data_dir).open(
                {"components": row.components}, job_id=row.deployment_id
            )
    finally:
        engine.dispose()
    listed = opened["components"]["aws.greengrass.SecretManager"]["configurationUpdate"]["merge"]["secrets"]
    assert listed == secrets


def test_the_model_cli(cloud: Cloud) -> None:
    listed = cloud.cli("list")
    described = cloud.cli("describe", "pump")
    version = cloud.cli("describe", "pump", "--version", "1")
    versions = cloud.cli("versions", "fan")
    moved = cloud.cli("alias", "fan", "challenger", "1")
    deleted = cloud.cli("alias", "fan", "challenger", "--delete")
    history = cloud.cli("alias", "fan", "challenger", "--history")
    packaged = cloud.cli("package", "fan", "--version", "1")
    deployed = cloud.cli(
        "deploy",
        "fan",
        "--version",
        "1",
        "--thing",
        "a",
        "--input-topic",
        "fans/a",
        "--output-topic",
        "out/fan",
    )
    key = cloud.cli("signing-key")

    assert "pump" in [model["name"] for model in listed]
    assert [item["version"] for item in described["versions"]] == ["2", "1"]
    assert version["learner"] == "lrl1"
    assert [item["version"] for item in versions] == ["1"]
    assert moved["version"] == "1"
    assert deleted["deleted"] is True
    assert [(event["version"], event["previousVersion"]) for event in history] == [(None, "1"), ("1", None)]
    assert packaged["componentName"] == "edgewise.models.fan"
    assert deployed["targetArn"].endswith(":thing/a")
    assert deployed["componentVersion"] == "1.0.0"
    assert key["publicKey"].startswith("ed25519:")


def test_deploying_with_capture_and_a_challenger_adds_the_stream_manager_and_redeploying_without_resets(
    cloud: Cloud,
) -> None:
    common = ("--thing", "b", "--input-topic", "pumps/+", "--output-topic", "ml/pump/results")
    deployed = cloud.cli(
        *("deploy", "pump", "--version", "2", *common, "--capture-sample-rate", "0.5"),
        *("--capture-score-above", "0.9", "--capture-stream", "PumpCapture"),
        *("--challenger-version", "1", "--drift-detector", "page-hinkley"),
    )
    plain = cloud.cli("deploy", "pump", "--version", "2", *common)
    with cloud.client() as client:
        first = _ok(client.get(f"/deployments/{deployed['deploymentId']}"))["components"]
        second = _ok(client.get(f"/deployments/{plain['deploymentId']}"))["components"]
        challenger = _ok(client.get("/components/edgewise.models.pump.challenger/versions/1.0.0"))
        version_1 = _ok(client.get("/components/edgewise.models.pump/versions/1.0.0"))

    assert first["aws.greengrass.StreamManager"] == {"componentVersion": "2.12.0"}
    assert first["edgewise.models.pump"] == {"componentVersion": "2.0.0"}
    assert first["edgewise.models.pump.challenger"] == {"componentVersion": "1.0.0"}
    # The challenger ships version 1's signed package under a component name of its own.
    files = sorted((artifact["fileName"], artifact["sha256"]) for artifact in challenger["artifacts"])
    assert files == sorted((artifact["fileName"], artifact["sha256"]) for artifact in version_1["artifacts"])
    update = first["edgewise.ml.Inference"]["configurationUpdate"]
    assert update["merge"]["models"]["pump"] == {
        "component": "edgewise.models.pump",
        "version": "2.0.0",
        "inputTopic": "pumps/+",
        "outputTopic": "ml/pump/results",
        "iotCoreTopic": "",
        "capture": {"stream": "PumpCapture", "sampleRate": 0.5, "scoreAbove": 0.9, "disagreement": True},
        "challenger": {"component": "edgewise.models.pump.challenger", "version": "1.0.0"},
        "driftDetector": {"kind": "page-hinkley"},
    }
    served = parse_config(update["merge"]).models["pump"]
    assert (served.capture, served.challenger) == (
        CaptureConfig(stream="PumpCapture", sample_rate=0.5, score_above=0.9, disagreement=True),
        ChallengerConfig(component="edgewise.models.pump.challenger", version="1.0.0"),
    )
    assert served.drift_detector is not None
    assert served.drift_detector.kind == "page-hinkley"
    assert update["reset"] == []
    # Without the options: the entry has none of the sections, the device resets them, the stream manager stays.
    update = second["edgewise.ml.Inference"]["configurationUpdate"]
    assert set(update["merge"]["models"]["pump"]) == {
        "component", "version", "inputTopic", "outputTopic", "iotCoreTopic"
    }  # fmt: skip
    assert update["reset"] == [
        "/models/pump/capture",
        "/models/pump/challenger",
        "/models/pump/driftDetector",
    ]
    assert second["aws.greengrass.StreamManager"] == {"componentVersion": "2.12.0"}
    assert "edgewise.models.pump.challenger" not in second


def test_deploy_refuses_two_challengers_and_a_bad_capture_setting_naming_the_field(cloud: Cloud) -> None:
    body = {"version": "2", "thing": "b", "inputTopic": "pumps/+", "outputTopic": "ml/pump/results"}
    with cloud.client() as client:
        both = client.post(
            "/models/pump/deploy", json=body | {"challengerVersion": "1", "challengerAlias": "x"}
        )
        rate = client.post("/models/pump/deploy", json=body | {"captureSampleRate": 1.5})
        stream = client.post("/models/pump/deploy", json=body | {"captureStream": "no/slash"})
    assert both.status_code == 422
    assert "'challengerVersion' and 'challengerAlias'" in both.json()["message"]
    assert rate.status_code == 422
    assert "captureSampleRate" in rate.text
    assert stream.status_code == 422
    assert "captureStream" in stream.text


def test_a_model_logged_from_a_notebook_is_converted_and_packaged_or_refused_saying_why(
    cloud: Cloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data scientist's notebook, pointed at the cloud's MLflow store, logs and registers two models."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri(cloud.settings))
    experiment = mlflow.create_experiment("notebooks", artifact_location=(tmp_path / "mlruns").as_uri())
    frame = pd.DataFrame(np.random.default_rng(8).normal(size=(60, 2)), columns=["temp", "vibration"])
    model = LogisticRegression().fit(frame, (frame["temp"] > frame["vibration"]).astype(np.int64))
    with warnings.catch_warnings():
        # MLflow's own warnings while it infers the signature (its code, not Edgewise's).
        warnings.filterwarnings("ignore", message="Operation with range is deprecated", module="mlflow")
        warnings.filterwarnings(
            "ignore", message="Hint: Inferred schema contains integer", category=UserWarning
        )
        warnings.filterwarnings(
            "ignore", message=".*Any type hint is inferred as AnyType", category=UserWarning
        )
        for name, example in (("notebook", frame[:5]), ("bare", None)):
            with mlflow.start_run(experiment_id=experiment):
                mlflow.sklearn.log_model(
                    model, name="model", input_example=example, registered_model_name=name,
                    serialization_format="cloudpickle", pip_requirements=[],
                )  # fmt: skip

    with cloud.client() as client:
        packaged = _ok(client.post("/models/notebook/package", json={"version": "1"}), 201)
        refused = client.post("/models/bare/package", json={"version": "1"})
        key = _ok(client.get("/models/signing-key"))
        component = _ok(client.get("/components/edgewise.models.notebook/versions/1.0.0"))

    assert packaged["componentName"] == "edgewise.models.notebook"
    store = LocalArtifactStore(cloud.settings.data_dir / "artifacts")
    manifest = _verified(component, store, key["publicKey"], tmp_path / "notebook")
    # No dataset spec: one row per message, each feature read from the payload key of its name.
    assert manifest.window is None
    assert [(field.name, field.path) for field in manifest.inputs] == [
        ("temp", "temp"),
        ("vibration", "vibration"),
    ]
    assert manifest.feature_names == ("temp", "vibration")
    assert (manifest.task, manifest.outputs.classes) == ("classification", (0, 1))
    assert refused.status_code == 422
    assert (
        "'bare' version 1: input_example: the sklearn model was logged without one"
        in refused.json()["message"]
    )

    # The cloud endpoint serves the notebook's model too, converted the same way, with its own predictions.
    rows = frame[:3].to_numpy().tolist()
    with cloud.client() as client:
        invoked = _ok(client.post("/models/notebook/invoke", json={"version": "1", "rows": rows}))
    assert [prediction["label"] for prediction in invoked["predictions"]] == model.predict(frame[:3]).tolist()

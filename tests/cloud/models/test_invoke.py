"""Inference in the cloud, on the real cloud of test_models (uvicorn + MLflow store): predictions for rows and
for instances equal the native models' and the device's reading, an alias moved through the API is followed on
the next request while registry lookups are otherwise kept a while, every row is checked naming its index and feature, the session cache loads a version once, keeps a bound and
checks the ONNX file, metrics count requests, and ``edgewise model invoke`` / ``metrics`` through the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from edgewise.cloud.errors import InvalidRequestError, NotFoundError
from edgewise.cloud.models.invoke import ServedModels, VersionLookups
from edgewise.cloud.models.registry import open_registry
from edgewise.components.inference.model import LoadedModel
from edgewise.components.inference.window import InputLayout
from edgewise.ml.export import native_outputs, onnx_session, to_onnx
from edgewise.ml.packaging import build_manifest
from edgewise.ml.registry import ModelRegistry, ModelVersionInfo
from edgewise.protocol.model_package import OutputSpec
from tests.cloud.models.test_models import Cloud, cloud  # noqa: F401 (the module's fixture: a served cloud)

FEATURES = ["temp", "pressure", "flow", "vibration"]


@dataclasses.dataclass(frozen=True)
class Trained:
    model: Any
    onnx: bytes
    result: dict[str, Any]


def _write_job(directory: Path, model: Any, task: str, X: np.ndarray, **outputs_change: Any) -> Trained:
    onnx_bytes, outputs = to_onnx(model, task, len(FEATURES))
    outputs = dataclasses.replace(outputs, **outputs_change)
    result = {
        "task": task,
        "learner": "test",
        "metric": "score",
        "score": 0.9,
        "features": FEATURES,
        "outputs": outputs.to_json(),
        "sizeBytes": len(onnx_bytes),
        "leaderboard": [],
        "inputExample": X[:3].tolist(),
        "reference": {},
    }
    directory.mkdir(parents=True)
    (directory / "model.onnx").write_bytes(onnx_bytes)
    (directory / "result.json").write_text(json.dumps(result), encoding="utf-8")
    return Trained(model, onnx_bytes, result)


@dataclasses.dataclass(frozen=True)
class Models:
    press: dict[str, Trained]  # classifier, versions 1 and 2
    flow: Trained  # regressor
    vibe: Trained  # anomaly detector with a threshold
    rows: np.ndarray


@pytest.fixture(scope="module")
def models(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Models:  # noqa: F811
    root = tmp_path_factory.mktemp("invoke-jobs")
    rng = np.random.default_rng(7)
    X = rng.normal(size=(120, len(FEATURES)))
    press = {}
    for version, weights in (("1", [1.0, 0.5, 0.0, 0.0]), ("2", [0.0, 0.0, -1.0, 1.0])):
        classifier = LogisticRegression().fit(X, (X @ np.array(weights) > 0).astype(np.int64))
        press[version] = _write_job(root / f"press-{version}", classifier, "classification", X)
    regressor = LinearRegression().fit(X, X @ np.array([2.0, -1.0, 0.5, 3.0]) + 1.0)
    flow = _write_job(root / "flow", regressor, "regression", X)
    detector = make_pipeline(StandardScaler(), IsolationForest(n_estimators=20, random_state=0)).fit(X)
    vibe = _write_job(root / "vibe", detector, "anomaly", X, threshold=0.0)
    registry = open_registry(cloud.settings)
    for name, job in (("press", "press-1"), ("press", "press-2"), ("flow", "flow"), ("vibe", "vibe")):
        registry.register_training(name, root / job, dataset="d", dataset_sha256="e" * 64, job_id=job)
    rows = np.vstack([rng.normal(size=(20, len(FEATURES))), [[6.0, -6.0, 6.0, -6.0]]])
    return Models(press=press, flow=flow, vibe=vibe, rows=rows)


def _invoke(client: httpx.Client, name: str, **body: Any) -> httpx.Response:
    # Python's JSON (the server's parser) reads NaN, which httpx refuses to send: encode it here.
    return client.post(
        f"/models/{name}/invoke", content=json.dumps(body), headers={"Content-Type": "application/json"}
    )


def _ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def _device_reading(trained: Trained, name: str, version: str, rows: np.ndarray) -> list[dict[str, object]]:
    """What the device's inference component answers for ``rows``."""
    manifest = build_manifest(name, version, trained.result, trained.onnx, key_id="0" * 16)
    loaded = LoadedModel(
        manifest=manifest,
        package_dir=Path("."),
        layout=InputLayout.from_manifest(manifest),
        session=onnx_session(trained.onnx),
    )
    return loaded.predict(rows)


def test_predictions_for_rows_and_instances_are_the_native_models_and_the_devices(
    cloud: Cloud,  # noqa: F811
    models: Models,
) -> None:
    rows = models.rows.tolist()
    instances = [dict(reversed(list(zip(FEATURES, row, strict=True)))) for row in rows]
    with cloud.client() as client:
        press = _ok(_invoke(client, "press", version="1", rows=rows))
        press_instances = _ok(_invoke(client, "press", version="1", instances=instances))
        flow = _ok(_invoke(client, "flow", version="1", rows=rows))
        vibe = _ok(_invoke(client, "vibe", version="1", instances=instances))

    native = models.press["1"].model
    assert (press["model"], press["version"]) == ("press", "1")
    assert press["latencyMs"] > 0
    assert [p["label"] for p in press["predictions"]] == native.predict(models.rows).tolist()
    probabilities = [[p["probabilities"]["0"], p["probabilities"]["1"]] for p in press["predictions"]]
    np.testing.assert_allclose(probabilities, native.predict_proba(models.rows), atol=1e-5)
    assert [p["score"] for p in press["predictions"]] == pytest.approx(
        native.predict_proba(models.rows).max(axis=1).tolist(), abs=1e-5
    )
    assert press_instances["predictions"] == press["predictions"]
    assert press["predictions"] == _device_reading(models.press["1"], "press", "1", models.rows)

    assert [set(p) for p in flow["predictions"]] == [{"prediction"}] * len(rows)
    assert [p["prediction"] for p in flow["predictions"]] == pytest.approx(
        models.flow.model.predict(models.rows).tolist(), rel=1e-5
    )
    expected = native_outputs(
        models.vibe.model, dataclasses.replace(_outputs(models.vibe), threshold=0.0), models.rows
    )
    assert expected.labels is not None
    assert expected.scores is not None
    assert [p["score"] for p in vibe["predictions"]] == pytest.approx(expected.scores.tolist(), abs=1e-5)
    assert [p["anomaly"] for p in vibe["predictions"]] == [bool(label) for label in expected.labels]
    assert vibe["predictions"][-1]["anomaly"] is True  # the far-away row
    assert vibe["predictions"] == _device_reading(models.vibe, "vibe", "1", models.rows)


def _outputs(trained: Trained) -> OutputSpec:
    return OutputSpec.from_json(trained.result["outputs"])


def test_an_alias_moved_through_the_api_is_followed_by_the_next_request(
    cloud: Cloud,  # noqa: F811
    models: Models,
) -> None:
    rows = models.rows.tolist()
    with cloud.client() as client:
        assert client.put("/models/press/aliases/champion", json={"version": "1"}).status_code == 200
        first = _ok(_invoke(client, "press", alias="champion", rows=rows))
        assert client.put("/models/press/aliases/champion", json={"version": "2"}).status_code == 200
        second = _ok(_invoke(client, "press", alias="champion", rows=rows))

    assert first["version"] == "1"
    assert second["version"] == "2"
    for answer, version in ((first, "1"), (second, "2")):
        labels = models.press[version].model.predict(models.rows).tolist()
        assert [p["label"] for p in answer["predictions"]] == labels
    assert [p["label"] for p in first["predictions"]] != [p["label"] for p in second["predictions"]]


def test_rows_that_do_not_fit_are_refused_naming_the_row_and_the_feature(
    cloud: Cloud,  # noqa: F811
    models: Models,
) -> None:
    good = [0.1, 0.2, 0.3, 0.4]
    instance = dict(zip(FEATURES, good, strict=True))
    cases = {
        "short": ({"rows": [good, [1.0, 2.0, 3.0]]}, ["rows[1]", "has 3 values", "4 features"]),
        "text": (
            {"rows": [good, good, [0.1, "hot", 0.3, 0.4]]},
            ["rows[2]", "'pressure'", "must be a number"],
        ),
        "bool": ({"rows": [[0.1, 0.2, True, 0.4]]}, ["rows[0]", "'flow'", "must be a number"]),
        "null": ({"rows": [[0.1, 0.2, 0.3, None]]}, ["rows[0]", "'vibration'", "not null"]),
        "nan": ({"rows": [good, [math.nan, 0.2, 0.3, 0.4]]}, ["rows[1]", "'temp'", "finite"]),
        "huge": ({"rows": [[0.1, 1e39, 0.3, 0.4]]}, ["rows[0]", "'pressure'", "float32"]),
        "missing": (
            {"instances": [instance, {"temp": 1.0, "pressure": 2.0, "vibration": 3.0}]},
            ["instances[1]", "'flow' is missing"],
        ),
        "unknown": ({"instances": [{**instance, "humidity": 0.5}]}, ["instances[0]", "'humidity'"]),
        "too many": ({"rows": [good] * 10_001}, ["rows", "10000"]),
        "empty": ({"rows": []}, ["rows"]),
        "both": ({"rows": [good], "instances": [instance]}, ["exactly one of 'rows' and 'instances'"]),
        "neither": ({}, ["exactly one of 'rows' and 'instances'"]),
    }
    with cloud.client() as client:
        answers = {case: _invoke(client, "flow", version="1", **body) for case, (body, _) in cases.items()}
        both_versions = _invoke(client, "flow", version="1", alias="champion", rows=[good])
        ghost = _invoke(client, "ghost", version="1", rows=[good])
        no_alias = _invoke(client, "flow", alias="nobody", rows=[good])
        no_version = _invoke(client, "flow", version="9", rows=[good])
        no_onnx = _invoke(client, "raw", version="1", rows=[good])

    for case, (_, words) in cases.items():
        answer = answers[case]
        assert answer.status_code == 422, (case, answer.text)
        for word in words:
            assert word in answer.json()["message"], (case, word, answer.json()["message"])
    assert both_versions.status_code == 422
    assert [ghost.status_code, no_alias.status_code, no_version.status_code] == [404, 404, 404]
    assert "'ghost/1'" in ghost.json()["message"]
    assert "flow@nobody" in no_alias.json()["message"]
    assert no_onnx.status_code == 422
    assert "model.onnx" in no_onnx.json()["message"]


def test_metrics_count_requests_errors_rows_and_latency_and_a_read_only_token_may_invoke(
    cloud: Cloud,  # noqa: F811
    models: Models,
) -> None:
    rows = models.rows[:5].tolist()
    with cloud.client() as client:
        before = _ok(client.get("/models/vibe/invoke-metrics"))
        created = client.post("/tokens", json={"name": "viewer", "role": "read-only"})
        assert created.status_code == 201, created.text
        viewer = httpx.Client(
            base_url=client.base_url,
            headers={"Authorization": f"Bearer {created.json()['token']}"},
            timeout=60,
        )
        with viewer:
            _ok(_invoke(viewer, "vibe", version="1", rows=rows))
            _ok(_invoke(viewer, "vibe", version="1", instances=[dict(zip(FEATURES, rows[0], strict=True))]))
            assert _invoke(viewer, "vibe", version="1", rows=[[1.0]]).status_code == 422
            after = _ok(viewer.get("/models/vibe/invoke-metrics"))
            refused = viewer.put("/models/vibe/aliases/champion", json={"version": "1"})
        ghost = client.get("/models/ghost/invoke-metrics")

    assert after["model"] == "vibe"
    assert after["requests"] - before["requests"] == 3
    assert after["errors"] - before["errors"] == 1
    assert after["rows"] - before["rows"] == 6
    assert after["versions"]["1"] - before["versions"].get("1", 0) == 3
    assert after["samples"] == after["requests"]
    assert 0 < after["latencyP50Ms"] <= after["latencyP99Ms"]
    assert refused.status_code == 403
    assert ghost.status_code == 404


class _LookupCountingRegistry:
    """The registry, counting version lookups; ``during`` runs inside each lookup, after the registry answered."""

    def __init__(self, registry: ModelRegistry, during: Callable[[], None] = lambda: None) -> None:
        self.registry = registry
        self.during = during
        self.lookups = 0

    def get_version(
        self, name: str, *, version: str | None = None, alias: str | None = None
    ) -> ModelVersionInfo:
        self.lookups += 1
        info = self.registry.get_version(name, version=version, alias=alias)
        self.during()
        return info


def test_lookups_are_kept_an_alias_for_seconds_a_version_longer_and_forgotten_when_an_alias_moves(
    cloud: Cloud,  # noqa: F811
    models: Models,
) -> None:
    registry = open_registry(cloud.settings)
    counting: Any = _LookupCountingRegistry(registry)
    now = [0.0]
    lookups = VersionLookups(alias_s=2.0, version_s=60.0, clock=lambda: now[0])

    registry.set_alias("press", "canary", "1")
    assert lookups.get(counting, "press", alias="canary").version == "1"
    registry.set_alias("press", "canary", "2")  # moved from outside the cloud (MLflow's UI)
    assert lookups.get(counting, "press", alias="canary").version == "1"
    assert counting.lookups == 1
    now[0] = 2.5
    assert lookups.get(counting, "press", alias="canary").version == "2"
    assert counting.lookups == 2

    assert (
        lookups.get(counting, "press", version="1").source
        == registry.get_version("press", version="1").source
    )
    now[0] = 60.0
    lookups.get(counting, "press", version="1")
    assert counting.lookups == 3
    now[0] = 63.0
    lookups.get(counting, "press", version="1")
    assert counting.lookups == 4

    lookups.forget("press")
    lookups.get(counting, "press", version="1")
    assert counting.lookups == 5
    for _ in range(2):  # a missing alias is not kept
        with pytest.raises(NotFoundError, match="press@nobody"):
            lookups.get(counting, "press", alias="nobody")
    assert counting.lookups == 7

    # A move during a lookup: what that lookup read is not kept.
    racing: Any = _LookupCountingRegistry(registry, during=lambda: lookups.forget("press"))
    lookups.get(racing, "press", alias="canary")
    lookups.get(racing, "press", alias="canary")
    assert racing.lookups == 2


class _CountingRegistry:
    """The registry, counting downloads."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.downloads = 0

    def download(self, name: str, version: str, destination: Path) -> Path:
        self.downloads += 1
        return self.registry.download(name, version, destination)


def test_sessions_are_loaded_once_kept_within_bound_and_their_onnx_file_checked(
    cloud: Cloud,  # noqa: F811
    models: Models,
    tmp_path: Path,
) -> None:
    registry = open_registry(cloud.settings)
    counting: Any = _CountingRegistry(registry)
    press_1 = registry.get_version("press", version="1")
    flow: ModelVersionInfo = registry.get_version("flow", version="1")
    served = ServedModels(tmp_path, store_id="test", capacity=1)

    first = served.get(counting, press_1)
    assert served.get(counting, press_1) is first
    assert counting.downloads == 1
    [press_dir] = (tmp_path / "press").iterdir()
    served.get(counting, flow)
    assert len(served) == 1
    assert not press_dir.exists()  # evicted: its files are gone too
    assert counting.downloads == 2

    # A new process finds the files on disk and loads them without a download, checking the ONNX file first.
    [flow_dir] = (tmp_path / "flow").iterdir()
    restarted = ServedModels(tmp_path, store_id="test", capacity=1)
    assert restarted.get(counting, flow).features == tuple(FEATURES)
    assert counting.downloads == 2
    (flow_dir / "model.onnx").write_bytes(models.press["1"].onnx)
    with pytest.raises(InvalidRequestError, match=r"model\.onnx has \d+ bytes, but its result\.json says"):
        ServedModels(tmp_path, store_id="test").get(counting, flow)


def _cli(cloud: Cloud, *args: str) -> Any:  # noqa: F811 (the fixture's name, here a plain argument)
    from typer.testing import CliRunner

    from edgewise.cli.main import app as cli_app

    env = {"COLUMNS": "200", "EDGEWISE_API_TOKEN": cloud.token, "EDGEWISE_API_URL": cloud.api_url}
    return CliRunner().invoke(cli_app, ["model", *args], env=env)


def test_cli_invokes_by_rows_or_file_and_shows_metrics(
    cloud: Cloud,  # noqa: F811
    models: Models,
    tmp_path: Path,
) -> None:
    rows = models.rows[:3].tolist()
    row_options = [part for row in rows for part in ("--row", ",".join(repr(value) for value in row))]
    by_rows = _cli(cloud, "invoke", "flow", "--version", "1", *row_options, "--json")
    assert by_rows.exit_code == 0, by_rows.output
    file = tmp_path / "instances.json"
    file.write_text(json.dumps([dict(zip(FEATURES, row, strict=True)) for row in rows]), encoding="utf-8")
    by_file = _cli(cloud, "invoke", "flow", "--version", "1", "--file", str(file), "--json")
    table = _cli(cloud, "invoke", "vibe", "--version", "1", "--file", str(file))
    bad = _cli(cloud, "invoke", "flow", "--version", "1", "--row", "1,2,x,4")
    metrics = _cli(cloud, "metrics", "flow", "--json")
    metrics_text = _cli(cloud, "metrics", "flow")

    predictions = [p["prediction"] for p in json.loads(by_rows.stdout)["predictions"]]
    assert predictions == pytest.approx(models.flow.model.predict(models.rows[:3]).tolist(), rel=1e-5)
    assert json.loads(by_file.stdout)["predictions"] == json.loads(by_rows.stdout)["predictions"]
    assert table.exit_code == 0, table.output
    assert "Anomaly" in table.stdout
    assert "Model vibe version 1: 3 predictions" in table.stdout
    assert bad.exit_code == 1
    assert "--row 1" in bad.output
    assert json.loads(metrics.stdout)["requests"] >= 2
    assert "Model flow:" in metrics_text.stdout
    assert "p50" in metrics_text.stdout

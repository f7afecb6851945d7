"""The model registry: trained models and their versions in MLflow, embedded in the cloud (mlflow-skinny).

Every call goes through one ``MlflowClient`` built with explicit tracking and registry URIs, never through
``mlflow.set_tracking_uri``: that is process-global, and one cloud process may hold two registries. A model
NAME has the experiment ``edgewise/NAME`` whose artifacts live under ``ARTIFACT_LOCATION/NAME`` (a local
directory or any URI MLflow writes to, such as ``s3://bucket/prefix``). Registering a training job makes one
run in that experiment, with the job's directory as its ``model/`` artifacts, and one model version whose
source is that directory. MLflow's anonymous usage telemetry is turned off (``MLFLOW_DISABLE_TELEMETRY``)
unless the environment already decides.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

from edgewise.ml.errors import RegistryError
from edgewise.ml.names import check_ml_name

#: The file of a training job's directory that ``register_training`` reads.
RESULT_FILE: Final = "result.json"
#: Files a job directory must hold to be registered.
REQUIRED_FILES: Final = ("model.onnx", RESULT_FILE)
#: Tag keys on runs and versions.
TAG_TASK: Final = "edgewise.task"
TAG_LEARNER: Final = "edgewise.learner"
TAG_DATASET: Final = "edgewise.dataset"
TAG_DATASET_SHA256: Final = "edgewise.dataset_sha256"
TAG_JOB: Final = "edgewise.job"
# MLflow refuses longer parameter values; the full request and parameters stay in result.json.
_MAX_PARAM_CHARS: Final = 500


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered version: where its files are and what its training run recorded."""

    name: str
    version: str
    aliases: tuple[str, ...]
    run_id: str | None
    source: str
    created_ms: int
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    description: str

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "aliases": list(self.aliases),
            "runId": self.run_id,
            "source": self.source,
            "createdMs": self.created_ms,
            "metrics": dict(self.metrics),
            "params": dict(self.params),
            "tags": dict(self.tags),
            "description": self.description,
        }


@dataclass(frozen=True)
class RegisteredModelInfo:
    """A registered model: its newest version and its aliases (alias -> version)."""

    name: str
    latest_version: str | None
    aliases: dict[str, str]
    description: str
    created_ms: int
    updated_ms: int

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "latestVersion": self.latest_version,
            "aliases": dict(self.aliases),
            "description": self.description,
            "createdMs": self.created_ms,
            "updatedMs": self.updated_ms,
        }


class ModelRegistry:
    """Models and versions in the MLflow store at ``tracking_uri`` (also the registry URI).

    ``tracking_uri`` is e.g. ``sqlite:////data/mlflow/mlflow.db``; ``artifact_location`` a directory or a URI
    (``s3://bucket/prefix``) under which each model's experiment keeps its artifacts. Names are checked with
    ``check_ml_name`` (``MlNameError``); a missing model, version or alias raises ``RegistryError`` with
    ``not_found=True``.
    """

    def __init__(self, tracking_uri: str, artifact_location: str) -> None:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow import MlflowClient

        if not tracking_uri:
            raise RegistryError("tracking_uri: must not be empty")
        if not artifact_location:
            raise RegistryError("artifact_location: must not be empty")
        self.tracking_uri = tracking_uri
        self.artifact_location = _as_uri(artifact_location)
        with _mlflow_errors("tracking_uri"):
            self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    # -- registering ------------------------------------------------------------------------------------

    def register_training(
        self, name: str, job_dir: Path, *, dataset: str, dataset_sha256: str, job_id: str
    ) -> ModelVersionInfo:
        """Log the training job in ``job_dir`` as a run of ``edgewise/NAME`` and register it as a new version.

        Reads ``job_dir/result.json``: params are the request (its ``request`` field, or ``request.json`` in
        the job directory) and the learner's parameters (its ``params`` field, else the leaderboard row of the
        winning learner); metrics the score, one-thread latency p50/p99, ONNX size and the fidelity gate's
        largest difference; every file of ``job_dir`` becomes an artifact under ``model/``.
        """
        check_ml_name("name", name)
        for required in REQUIRED_FILES:
            if not (job_dir / required).is_file():
                raise RegistryError(f"job_dir: {job_dir} has no {required}")
        result = _read_result(job_dir / RESULT_FILE)
        tags = {
            TAG_TASK: str(result.get("task", "")),
            TAG_LEARNER: str(result.get("learner", "")),
            TAG_DATASET: dataset,
            TAG_DATASET_SHA256: dataset_sha256,
            TAG_JOB: job_id,
        }
        experiment_id = self._experiment(name)
        with _mlflow_errors(f"model {name!r}"):
            from mlflow.entities import Metric, Param, RunTag

            run = self._client.create_run(experiment_id, tags=tags, run_name=job_id or None)
            run_id = run.info.run_id
            try:
                timestamp = run.info.start_time
                self._client.log_batch(
                    run_id,
                    metrics=[Metric(key, value, timestamp, 0) for key, value in _metrics(result).items()],
                    params=[Param(key, value) for key, value in _params(result, job_dir).items()],
                    tags=[RunTag(key, value) for key, value in tags.items()],
                )
                self._client.log_artifacts(run_id, str(job_dir), "model")
            except BaseException:
                self._client.set_terminated(run_id, status="FAILED")
                raise
            self._client.set_terminated(run_id)
            self._ensure_model(name)
            version = self._client.create_model_version(
                name, source=f"{run.info.artifact_uri}/model", run_id=run_id, tags=tags
            )
        return self.get_version(name, version=str(version.version))

    def _experiment(self, name: str) -> str:
        experiment_name = f"edgewise/{name}"
        with _mlflow_errors(f"experiment {experiment_name!r}"):
            experiment = self._client.get_experiment_by_name(experiment_name)
            if experiment is not None:
                return str(experiment.experiment_id)
            from mlflow.exceptions import MlflowException

            try:
                return str(
                    self._client.create_experiment(
                        experiment_name, artifact_location=f"{self.artifact_location}/{name}"
                    )
                )
            except MlflowException as error:
                # Another worker created it between the lookup and the creation.
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                existing = self._client.get_experiment_by_name(experiment_name)
                if existing is None:
                    raise
                return str(existing.experiment_id)

    def _ensure_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self._client.create_registered_model(name)
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    # -- reading ----------------------------------------------------------------------------------------

    def list_models(self) -> list[RegisteredModelInfo]:
        """Every registered model, by name."""
        models: list[Any] = []
        token: str | None = None
        with _mlflow_errors("models"):
            while True:
                page = self._client.search_registered_models(max_results=1000, page_token=token)
                models.extend(page)
                token = page.token
                if not token:
                    break
        return sorted((self._model_info(model) for model in models), key=lambda info: info.name)

    def get_model(self, name: str) -> RegisteredModelInfo:
        """One registered model; ``RegistryError(not_found=True)`` when there is none of that name."""
        return self._model_info(self._registered(name))

    def versions(self, name: str) -> list[ModelVersionInfo]:
        """Every version of the model, newest first."""
        aliases = self._aliases(self._registered(name))
        return [self._version_info(version, aliases) for version in self._search_versions(name)]

    def get_version(
        self, name: str, *, version: str | None = None, alias: str | None = None
    ) -> ModelVersionInfo:
        """The version of that number, or the one ``alias`` points at (exactly one of the two)."""
        if (version is None) == (alias is None):
            raise RegistryError("version, alias: give exactly one of them")
        model = self._registered(name)
        aliases = self._aliases(model)
        if alias is not None:
            if alias not in aliases:
                raise RegistryError(f"alias: model {name!r} has no alias {alias!r}", not_found=True)
            version = aliases[alias]
        assert version is not None  # exactly one of version and alias is given, checked above
        _check_version(name, version)
        with _mlflow_errors(f"model {name!r} version {version!r}"):
            found = self._client.get_model_version(name, version)
        return self._version_info(found, aliases)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point ``alias`` at ``version`` (moving it when it pointed at another)."""
        self._registered(name)
        _check_version(name, version)
        if not alias:
            raise RegistryError("alias: must not be empty")
        with _mlflow_errors(f"model {name!r} version {version!r}"):
            self._client.set_registered_model_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove ``alias``; ``RegistryError(not_found=True)`` when the model has no such alias."""
        if alias not in self._aliases(self._registered(name)):
            raise RegistryError(f"alias: model {name!r} has no alias {alias!r}", not_found=True)
        with _mlflow_errors(f"model {name!r} alias {alias!r}"):
            self._client.delete_registered_model_alias(name, alias)

    def download(self, name: str, version: str, destination: Path) -> Path:
        """Copy the version's files (``model.onnx``, ``result.json``, ...) into ``destination``; return it."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        info = self.get_version(name, version=version)
        destination.mkdir(parents=True, exist_ok=True)
        with (
            _mlflow_errors(f"model {name!r} version {version!r} files at {info.source}"),
            tempfile.TemporaryDirectory(dir=destination, prefix=".download-") as staging,
        ):
            repository: Any = get_artifact_repository(self._files_uri(info.source))
            repository.download_artifacts("", dst_path=staging)
            for entry in Path(staging).iterdir():
                target = destination / entry.name
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                entry.replace(target)
        return destination

    def _files_uri(self, source: str) -> str:
        """Where a version's files are, for a source that names a logged model or a run's artifact path.

        MLflow resolves ``models:/m-ID`` and ``runs:/RUN/PATH`` against its process-global tracking URI, which
        this registry never sets; they are resolved here with its own client. A notebook's
        ``log_model(..., registered_model_name=...)`` registers ``models:/m-ID`` (MLflow 3's logged models);
        ``runs:/RUN/PATH`` names the run's artifacts, or, in MLflow 3, the model the run logged as PATH.
        """
        if source.startswith("models:/m-") and "/" not in source.removeprefix("models:/"):
            logged = self._client.get_logged_model(source.removeprefix("models:/"))
            return str(logged.artifact_location)
        if source.startswith("runs:/"):
            run_id, _, path = source.removeprefix("runs:/").partition("/")
            run = self._client.get_run(run_id)
            if path:
                for logged in self._client.search_logged_models(
                    experiment_ids=[run.info.experiment_id], max_results=1000
                ):
                    if logged.source_run_id == run_id and logged.name == path:
                        return str(logged.artifact_location)
            return f"{run.info.artifact_uri}/{path}".rstrip("/")
        return source

    # -- conversions ------------------------------------------------------------------------------------

    def _registered(self, name: str) -> Any:
        check_ml_name("name", name)
        with _mlflow_errors(f"model {name!r}"):
            return self._client.get_registered_model(name)

    def _search_versions(self, name: str) -> list[Any]:
        found: list[Any] = []
        token: str | None = None
        with _mlflow_errors(f"model {name!r}"):
            while True:
                # The name was checked by check_ml_name, so it holds no quote that could break the filter.
                page = self._client.search_model_versions(
                    f"name='{name}'", max_results=1000, page_token=token
                )
                found.extend(page)
                token = page.token
                if not token:
                    break
        return sorted(found, key=lambda version: int(version.version), reverse=True)

    @staticmethod
    def _aliases(model: Any) -> dict[str, str]:
        return {str(alias): str(version) for alias, version in (model.aliases or {}).items()}

    def _model_info(self, model: Any) -> RegisteredModelInfo:
        versions = self._search_versions(model.name)
        return RegisteredModelInfo(
            name=model.name,
            latest_version=str(versions[0].version) if versions else None,
            aliases=self._aliases(model),
            description=model.description or "",
            created_ms=int(model.creation_timestamp or 0),
            updated_ms=int(model.last_updated_timestamp or 0),
        )

    def _version_info(self, version: Any, aliases: Mapping[str, str]) -> ModelVersionInfo:
        number = str(version.version)
        metrics: dict[str, float] = {}
        params: dict[str, str] = {}
        tags = {str(key): str(value) for key, value in (version.tags or {}).items()}
        if version.run_id:
            with _mlflow_errors(f"run {version.run_id!r} of model {version.name!r} version {number}"):
                run = self._client.get_run(version.run_id)
            metrics = {str(key): float(value) for key, value in run.data.metrics.items()}
            params = {str(key): str(value) for key, value in run.data.params.items()}
            run_tags = {str(key): str(value) for key, value in run.data.tags.items()}
            tags = {**{key: value for key, value in run_tags.items() if key.startswith("edgewise.")}, **tags}
        return ModelVersionInfo(
            name=version.name,
            version=number,
            aliases=tuple(sorted(alias for alias, target in aliases.items() if target == number)),
            run_id=version.run_id or None,
            source=version.source,
            created_ms=int(version.creation_timestamp or 0),
            metrics=metrics,
            params=params,
            tags=tags,
            description=version.description or "",
        )


def _as_uri(location: str) -> str:
    """A plain path as a ``file:`` URI (so MLflow does not read it relative to its working directory)."""
    if urlparse(location).scheme in ("", "file") and not location.startswith("file:"):
        return Path(location).resolve().as_uri()
    return location.rstrip("/")


def _check_version(name: str, version: str) -> None:
    if not version.isdigit():
        raise RegistryError(f"version: {version!r} of model {name!r} is not a version number", not_found=True)


@contextmanager
def _mlflow_errors(what: str) -> Iterator[None]:
    """MLflow's exceptions as ``RegistryError``s naming ``what``; a missing resource sets ``not_found``."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as error:
        missing = error.error_code == "RESOURCE_DOES_NOT_EXIST"
        problem = "not found" if missing else error.message
        raise RegistryError(f"{what}: {problem}", not_found=missing) from error


def _read_result(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise RegistryError(f"{path.name}: cannot be read as JSON: {error}") from error
    if not isinstance(data, dict):
        raise RegistryError(f"{path.name}: must hold a JSON object, not {type(data).__name__}")
    return data


def _metrics(result: Mapping[str, Any]) -> dict[str, float]:
    fidelity = _object(result.get("fidelity"))
    latency = _object(result.get("latency"))
    candidates = {
        "score": result.get("score"),
        "latency_p50_ms": latency.get("p50Ms"),
        "latency_p99_ms": latency.get("p99Ms"),
        "size_bytes": result.get("sizeBytes"),
        "fidelity_max_abs_delta": fidelity.get("maxAbsDelta"),
    }
    return {
        key: float(value)
        for key, value in candidates.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    }


def _object(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _params(result: Mapping[str, Any], job_dir: Path) -> dict[str, str]:
    params: dict[str, str] = {
        "learner": str(result.get("learner", "")),
        "metric": str(result.get("metric", "")),
        "features": str(len(result.get("features") or [])),
    }
    request = result.get("request")
    if request is None and (job_dir / "request.json").is_file():
        request = _read_result(job_dir / "request.json")
    if isinstance(request, dict):
        params.update({f"request.{key}": _param_text(value) for key, value in request.items()})
    learner_params = result.get("params")
    if not isinstance(learner_params, dict):
        learner_params = _winner_params(result)
    params.update({f"learner.{key}": _param_text(value) for key, value in learner_params.items()})
    return params


def _winner_params(result: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of the winning learner's best leaderboard row that fits the edge budget."""
    rows = [row for row in result.get("leaderboard") or [] if isinstance(row, dict)]
    for row in sorted(rows, key=lambda row: (row.get("fitsBudget") is not False, _score(row)), reverse=True):
        if row.get("learner") == result.get("learner") and isinstance(row.get("params"), dict):
            return dict(row["params"])
    return {}


def _score(row: Mapping[str, Any]) -> float:
    value = row.get("score")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else -math.inf


def _param_text(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:_MAX_PARAM_CHARS]

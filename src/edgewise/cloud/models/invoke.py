"""Inference in the cloud: a registered model version run on rows sent to the API, for devices too small to run it.

A request names the version by number or by alias. Lookups in the registry (a few milliseconds of MLflow each)
are kept by :class:`VersionLookups`: an alias for :data:`ALIAS_LOOKUP_S`, a version number for
:data:`VERSION_LOOKUP_S` (a version's files and outputs never change; only a deleted model can give its number
to another). The cloud's own alias moves (:func:`edgewise.cloud.models.service.set_alias` and ``delete_alias``:
the API, drift promotions, retraining) forget the model's lookups in this process at once, so the request after
such a move runs the version the alias points to now; an alias moved from outside (MLflow's UI, another cloud
process) is followed within :data:`ALIAS_LOOKUP_S`. Loaded models are kept in :class:`ServedModels`,
a least-recently-used set of at most :data:`SERVED_MODELS` sessions per cloud process, keyed by model, version
and the version's source (MLflow may give a deleted version's number again). A model is loaded once: its files
(``model.onnx``, ``result.json``) are downloaded into ``DATA_DIR/model-cache``, where they stay while the model
is served and are removed when it is evicted; the ONNX file's SHA-256 is checked against the digest in a
``manifest.json`` or ``result.json`` (``files``) of the version, and its size against ``result.json``'s
``sizeBytes``, when they are there. The session is opened with ``edgewise.ml.export.onnx_session`` and read with
``run_model``, the settings and the output reading the device uses (:meth:`LoadedModel.predict
<edgewise.components.inference.model.LoadedModel.predict>` gives each row the same fields).

Every value of every row is checked before the model runs: the row's length, numbers only (no booleans),
finite and within float32's range (the model's input type); an instance must name every feature and no other.
A refusal is an ``InvalidRequestError`` naming the row (``rows[3]``, ``instances[3]``) and the feature.

:class:`InvokeMetrics` counts each model's requests, failed requests, rows and requests per version, with the
latency of the latest :data:`LATENCY_SAMPLES` requests for p50/p99; they live in memory and start again with
the process. Every function blocks (MLflow, files, ONNX Runtime): the routes are synchronous, so FastAPI runs
them in its thread pool, never on the event loop.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from edgewise.cloud.errors import InvalidRequestError, MlUnavailableError, NotFoundError
from edgewise.cloud.models import service
from edgewise.cloud.models.registry import tracking_uri
from edgewise.cloud.settings import CloudSettings
from edgewise.ml.errors import ExportError, RegistryError
from edgewise.protocol.model_package import MANIFEST_FILE, MODEL_FILE, OutputSpec, PackageError

if TYPE_CHECKING:
    from edgewise.ml.registry import ModelRegistry, ModelVersionInfo

#: Where downloaded model files are kept, under the cloud's data directory.
CACHE_DIR: Final = "model-cache"
#: How many loaded models one cloud process keeps (least recently used evicted first).
SERVED_MODELS: Final = 8
#: How many of the latest request latencies a model's p50/p99 are computed over.
LATENCY_SAMPLES: Final = 1024
RESULT_FILE: Final = "result.json"
#: How long an alias resolved in the registry is used before it is resolved again.
ALIAS_LOOKUP_S: Final = 2.0
#: How long a version number's lookup is used: a deleted version stays invocable in a process for this long.
VERSION_LOOKUP_S: Final = 60.0
#: At most this many lookups are kept per cloud; beyond it they are all forgotten.
LOOKUPS_KEPT: Final = 1024
#: The largest float32 (the models' input type), numpy.finfo(numpy.float32).max.
_FLOAT32_MAX: Final = 3.4028234663852886e38


@dataclass(frozen=True)
class ServedModel:
    """A model version ready to run: its ONNX Runtime session (``onnxruntime.InferenceSession``), its input
    columns in order and how its outputs are read."""

    name: str
    version: str
    features: tuple[str, ...]
    outputs: OutputSpec
    session: Any


@dataclass(frozen=True)
class Invocation:
    """A request's answer: one prediction per row, in order."""

    model: str
    version: str
    predictions: list[dict[str, object]]
    latency_ms: float


@dataclass(frozen=True)
class MetricsSnapshot:
    """A model's invocation counts and latency percentiles (None before its first request)."""

    model: str
    requests: int
    errors: int
    rows: int
    versions: dict[str, int]
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    samples: int


@dataclass
class _ModelCounts:
    requests: int = 0
    errors: int = 0
    rows: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))


class InvokeMetrics:
    """Per-model counts and request latencies of one cloud process (thread-safe)."""

    def __init__(self) -> None:
        self._models: dict[str, _ModelCounts] = {}
        self._lock = threading.Lock()

    def record(self, model: str, version: str | None, *, rows: int, latency_ms: float, failed: bool) -> None:
        """Count one request of ``model`` (``version`` None when it failed before a version was known)."""
        with self._lock:
            counts = self._models.setdefault(model, _ModelCounts())
            counts.requests += 1
            counts.latencies.append(latency_ms)
            if failed:
                counts.errors += 1
            else:
                counts.rows += rows
            if version is not None:
                counts.versions[version] = counts.versions.get(version, 0) + 1

    def snapshot(self, model: str) -> MetricsSnapshot:
        """``model``'s counts so far (zeros when it was never invoked)."""
        with self._lock:
            counts = self._models.get(model, _ModelCounts())
            latencies = sorted(counts.latencies)
            return MetricsSnapshot(
                model=model,
                requests=counts.requests,
                errors=counts.errors,
                rows=counts.rows,
                versions=dict(counts.versions),
                latency_p50_ms=percentile(latencies, 50),
                latency_p99_ms=percentile(latencies, 99),
                samples=len(latencies),
            )


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile of ``ordered`` (sorted), interpolated linearly as ``numpy.percentile`` does;
    None when it is empty."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class ServedModels:
    """The loaded models of one cloud process, at most ``capacity``, least recently used evicted first."""

    def __init__(self, directory: Path, *, store_id: str, capacity: int = SERVED_MODELS) -> None:
        self._directory = directory
        self._store_id = store_id
        self._capacity = capacity
        self._models: OrderedDict[tuple[str, str, str], ServedModel] = OrderedDict()
        self._lock = threading.Lock()
        # One lock per model being loaded, so that concurrent first requests download it once.
        self._loading: dict[tuple[str, str, str], threading.Lock] = {}

    def get(self, registry: ModelRegistry, info: ModelVersionInfo) -> ServedModel:
        """The loaded model of version ``info``, loading it first when it is not.

        Raises:
            NotFoundError: the version is gone from the registry.
            InvalidRequestError: the version has no usable ONNX model or ``result.json``.
        """
        key = (info.name, info.version, info.source)
        with self._lock:
            served = self._models.get(key)
            if served is not None:
                self._models.move_to_end(key)
                return served
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                served = self._models.get(key)
            if served is None:
                try:
                    served = self._load(registry, info)
                except BaseException:
                    with self._lock:
                        self._loading.pop(key, None)
                    raise
            with self._lock:
                # In one step with the insertion, so that no request finds neither the model nor its lock.
                self._loading.pop(key, None)
                self._models[key] = served
                self._models.move_to_end(key)
                evicted = []
                while len(self._models) > self._capacity:
                    old_key, _ = self._models.popitem(last=False)
                    evicted.append(old_key)
        for old_key in evicted:
            shutil.rmtree(self._version_dir(*old_key), ignore_errors=True)
        return served

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)

    def _version_dir(self, name: str, version: str, source: str) -> Path:
        # The store and the source are in the name: another MLflow store, or a version number given again after a
        # deletion, must not find the files of an older model.
        tag = hashlib.sha256(f"{self._store_id}\n{source}".encode()).hexdigest()[:16]
        return self._directory / name / f"{version}-{tag}"

    def _load(self, registry: ModelRegistry, info: ModelVersionInfo) -> ServedModel:
        directory = self._version_dir(info.name, info.version, info.source)
        if not (directory / MODEL_FILE).is_file() or not (directory / RESULT_FILE).is_file():
            self._download(registry, info, directory)
        what = f"model {info.name!r} version {info.version}"
        model_file = directory / MODEL_FILE
        if not model_file.is_file():
            raise InvalidRequestError(
                "version", f"{what} has no {MODEL_FILE} (only ONNX models can be invoked)"
            )
        result = _read_json(directory / RESULT_FILE, what)
        if result is None:
            raise InvalidRequestError(
                "version", f"{what} has no {RESULT_FILE}, so its features and outputs are unknown"
            )
        onnx = model_file.read_bytes()
        _check_digest(onnx, result, _read_json(directory / MANIFEST_FILE, what), what)
        features = result.get("features")
        if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
            raise InvalidRequestError(
                "version", f"{what}: {RESULT_FILE} field 'features' is not a list of names"
            )
        try:
            outputs = OutputSpec.from_json(result.get("outputs"), field=f"{RESULT_FILE}.outputs")
        except PackageError as exc:
            raise InvalidRequestError("version", f"{what}: {exc}") from None
        try:
            from edgewise.ml.export import onnx_session
        except ImportError as exc:
            raise MlUnavailableError(exc.name or str(exc)) from None
        try:
            session = onnx_session(onnx)
        except ExportError as exc:
            raise InvalidRequestError("version", f"{what}: {MODEL_FILE}: {exc}") from None
        inputs = session.get_inputs()
        width = inputs[0].shape[-1] if len(inputs) == 1 and inputs[0].shape else None
        if len(inputs) != 1 or (isinstance(width, int) and width != len(features)):
            raise InvalidRequestError(
                "version",
                f"{what}: {MODEL_FILE} takes {[(item.name, item.shape) for item in inputs]} but {RESULT_FILE} "
                f"lists {len(features)} features",
            )
        return ServedModel(
            name=info.name, version=info.version, features=tuple(features), outputs=outputs, session=session
        )

    def _download(self, registry: ModelRegistry, info: ModelVersionInfo, directory: Path) -> None:
        directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=".download-"))
        try:
            try:
                registry.download(info.name, info.version, staging)
            except RegistryError as exc:
                if exc.not_found:
                    raise NotFoundError(service.MODEL_VERSION, f"{info.name}/{info.version}") from exc
                raise InvalidRequestError("version", str(exc)) from exc
            # A model logged from a notebook is converted (and gated) as packaging converts it.
            service.edgewise_files(info, staging)
            shutil.rmtree(directory, ignore_errors=True)
            try:
                staging.rename(directory)
            except OSError:
                # Another process put the same files there first.
                if not (directory / MODEL_FILE).is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)


class VersionLookups:
    """The registry's answers to "which version is ``name`` at this number or alias", kept for a while
    (thread-safe). Only found versions are kept: a missing one is asked for again on every request."""

    def __init__(
        self,
        *,
        alias_s: float = ALIAS_LOOKUP_S,
        version_s: float = VERSION_LOOKUP_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._alias_s = alias_s
        self._version_s = version_s
        self._clock = clock
        # (model, "alias" or "version", the alias or number) -> (when it expires, the version)
        self._entries: dict[tuple[str, str, str], tuple[float, ModelVersionInfo]] = {}
        # Bumped by every forget, so that a lookup begun before a move does not keep what it read.
        self._generation = 0
        self._lock = threading.Lock()

    def get(
        self, registry: ModelRegistry, name: str, *, version: str | None = None, alias: str | None = None
    ) -> ModelVersionInfo:
        """Version ``version`` of ``name``, or the one ``alias`` points to, from the registry when not kept.

        Raises:
            NotFoundError: the model, the version or the alias does not exist.
        """
        key = (name, "alias", alias) if alias is not None else (name, "version", str(version))
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                return entry[1]
            generation = self._generation
        info = service.get_version(registry, name, version=version, alias=alias)
        kept_s = self._alias_s if alias is not None else self._version_s
        with self._lock:
            if generation == self._generation:
                if len(self._entries) >= LOOKUPS_KEPT:
                    self._entries.clear()
                self._entries[key] = (now + kept_s, info)
        return info

    def forget(self, name: str) -> None:
        """Forget every lookup of model ``name`` (its aliases moved)."""
        with self._lock:
            self._generation += 1
            for key in [key for key in self._entries if key[0] == name]:
                del self._entries[key]


_served: dict[tuple[Path, str], ServedModels] = {}
_metrics: dict[Path, InvokeMetrics] = {}
_lookups: dict[str, VersionLookups] = {}
_opening = threading.Lock()


def version_lookups(settings: CloudSettings) -> VersionLookups:
    """The kept version lookups of this process for the registry of ``settings``."""
    with _opening:
        return _lookups.setdefault(tracking_uri(settings), VersionLookups())


def forget_lookups(name: str) -> None:
    """Forget this process's kept lookups of model ``name``, in every registry: its aliases moved."""
    with _opening:
        lookups = list(_lookups.values())
    for kept in lookups:
        kept.forget(name)


def served_models(settings: CloudSettings) -> ServedModels:
    """The loaded models of this process for the cloud of ``settings``."""
    key = (settings.data_dir, tracking_uri(settings))
    with _opening:
        served = _served.get(key)
        if served is None:
            served = ServedModels(settings.data_dir / CACHE_DIR, store_id=key[1])
            _served[key] = served
        return served


def invoke_metrics(settings: CloudSettings) -> InvokeMetrics:
    """The invocation metrics of this process for the cloud of ``settings``."""
    with _opening:
        return _metrics.setdefault(settings.data_dir, InvokeMetrics())


def invoke(
    settings: CloudSettings,
    registry: ModelRegistry,
    name: str,
    *,
    version: str | None = None,
    alias: str | None = None,
    rows: Sequence[object] | None = None,
    instances: Sequence[object] | None = None,
) -> Invocation:
    """Run model ``name`` (``version``, or the version ``alias`` points to: see :class:`VersionLookups`) on
    ``rows`` or ``instances``.

    Raises:
        NotFoundError: the model, version or alias does not exist (not counted in the metrics).
        InvalidRequestError: a row or an instance does not fit the model's features, or the version cannot be
            invoked (counted as a failed request).
        MlUnavailableError: the ML libraries are not installed.
    """
    started = time.perf_counter()
    info = version_lookups(settings).get(registry, name, version=version, alias=alias)
    metrics = invoke_metrics(settings)
    count = len(rows if rows is not None else instances or ())
    try:
        served = served_models(settings).get(registry, info)
        matrix = (
            matrix_of_rows(rows, served.features)
            if rows is not None
            else matrix_of_instances(instances or (), served.features)
        )
        predictions = predict(served, matrix)
    except Exception:
        metrics.record(name, info.version, rows=count, latency_ms=_since(started), failed=True)
        raise
    latency_ms = _since(started)
    metrics.record(name, info.version, rows=count, latency_ms=latency_ms, failed=False)
    return Invocation(model=name, version=info.version, predictions=predictions, latency_ms=latency_ms)


def model_metrics(settings: CloudSettings, registry: ModelRegistry, name: str) -> MetricsSnapshot:
    """Model ``name``'s invocation metrics in this process.

    Raises:
        NotFoundError: there is no such model.
    """
    service.get_model(registry, name)
    return invoke_metrics(settings).snapshot(name)


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def matrix_of_rows(rows: Sequence[object], features: Sequence[str]) -> list[list[float]]:
    """``rows`` (lists of values in feature order) as a matrix; ``InvalidRequestError`` naming the row and
    feature of the first value that does not fit."""
    matrix: list[list[float]] = []
    for index, row in enumerate(rows):
        where = f"rows[{index}]"
        if not isinstance(row, list):
            raise InvalidRequestError(where, "must be a list of numbers, one per feature")
        if len(row) != len(features):
            raise InvalidRequestError(
                where,
                f"has {len(row)} values but the model takes {len(features)} features ({_listed(features)})",
            )
        matrix.append(
            [
                _value(value, where, f"feature {feature!r} (column {column})")
                for column, (feature, value) in enumerate(zip(features, row, strict=True))
            ]
        )
    return matrix


def matrix_of_instances(instances: Sequence[object], features: Sequence[str]) -> list[list[float]]:
    """``instances`` (objects of feature name to value) as a matrix in feature order; ``InvalidRequestError``
    naming the instance and the feature that is missing, unknown or not a number."""
    matrix: list[list[float]] = []
    known = set(features)
    for index, instance in enumerate(instances):
        where = f"instances[{index}]"
        if not isinstance(instance, Mapping):
            raise InvalidRequestError(where, "must be an object of feature name to number")
        unknown = [key for key in instance if key not in known]
        if unknown:
            raise InvalidRequestError(
                where, f"feature {unknown[0]!r} is not one of the model's features ({_listed(features)})"
            )
        missing = [feature for feature in features if feature not in instance]
        if missing:
            raise InvalidRequestError(where, f"feature {missing[0]!r} is missing")
        matrix.append([_value(instance[feature], where, f"feature {feature!r}") for feature in features])
    return matrix


def _value(value: object, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequestError(where, f"{what} must be a number, not {_shown(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidRequestError(where, f"{what} must be a finite number, not {number!r}")
    if abs(number) > _FLOAT32_MAX:
        raise InvalidRequestError(where, f"{what} is {number!r}, beyond the float32 range the model takes")
    return number


def _shown(value: object) -> str:
    if value is None:
        return "null"
    return f"{type(value).__name__} {json.dumps(value, default=str)[:40]}"


def _listed(features: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(features[:limit])
    return shown if len(features) <= limit else f"{shown}, ... {len(features) - limit} more"


def predict(served: ServedModel, matrix: Sequence[Sequence[float]]) -> list[dict[str, object]]:
    """Each row's prediction fields, as the device's inference component gives them."""
    import numpy as np

    from edgewise.ml.export.outputs import prediction_fields, run_model

    rows = np.array(matrix, dtype=np.float64).reshape(len(matrix), len(served.features))
    try:
        produced = run_model(served.session, served.outputs, rows)
    except ExportError as exc:
        raise InvalidRequestError(
            "version", f"model {served.name!r} version {served.version} cannot be run: {exc}"
        ) from None
    return [prediction_fields(served.outputs, produced, index) for index in range(len(matrix))]


def _check_digest(
    onnx: bytes, result: Mapping[str, Any], manifest: Mapping[str, Any] | None, what: str
) -> None:
    """The ONNX file must be the one the version's manifest and ``result.json`` describe, where they do."""
    actual = hashlib.sha256(onnx).hexdigest()
    for source, document in ((MANIFEST_FILE, manifest), (RESULT_FILE, result)):
        files = (document or {}).get("files")
        expected = files.get(MODEL_FILE) if isinstance(files, dict) else None
        if isinstance(expected, str) and expected.lower() != actual:
            raise InvalidRequestError(
                "version", f"{what}: {MODEL_FILE} has SHA-256 {actual}, but its {source} says {expected}"
            )
    size = result.get("sizeBytes")
    if isinstance(size, int) and not isinstance(size, bool) and size != len(onnx):
        raise InvalidRequestError(
            "version", f"{what}: {MODEL_FILE} has {len(onnx)} bytes, but its {RESULT_FILE} says {size}"
        )


def _read_json(path: Path, what: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidRequestError("version", f"{what}: {path.name} cannot be read as JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidRequestError("version", f"{what}: {path.name} must hold a JSON object")
    return document

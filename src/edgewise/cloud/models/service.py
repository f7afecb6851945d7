"""Model registry behaviour: read models and versions, move aliases (with an audit trail), package a model version
as a signed component, and deploy it to a thing or thing group with the inference component.

The registry is MLflow's (:mod:`edgewise.cloud.models.registry`); a missing model, version or alias is a 404
naming it, and a cloud without the ML libraries answers 503 (``ml_unavailable``). Every alias move is appended
to ``model_alias_events``.

Packaging model version N of NAME downloads its files, builds the manifest (inputs and window from the spec of
the dataset it was trained on, found by the version's ``edgewise.dataset_sha256`` tag), signs it with the cloud's
key, stores ``model.onnx``, ``manifest.json`` and ``manifest.json.sig`` in the artifact store and publishes the
component ``edgewise.models.NAME`` version ``N.0.0``. A component version is immutable, so packaging a version
that is already published returns it as it is. ``edgewise.ml.Inference`` 1.0.0 is published from the recipe
Edgewise ships when the registry lacks it. A version logged from a notebook as an MLflow model (no
``model.onnx``) is first converted by ``edgewise.ml.external``, its payload fields being its feature names.

A deployment may also set the served model's capture, challenger and drift detector (:func:`deploy_model`); a
challenger version ships as ``edgewise.models.NAME.challenger`` (the same files), and capture brings the built-in
``aws.greengrass.StreamManager`` along unless the target runs it.

Every function blocks (MLflow, the store, the database): FastAPI runs the sync routes in a thread.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import yaml
from sqlalchemy.orm import Session

from edgewise.aws_components import BUILTIN_VERSIONS
from edgewise.cloud.components import ArtifactStoreError, ComponentVersion
from edgewise.cloud.components import service as components
from edgewise.cloud.components.store import ArtifactStore
from edgewise.cloud.datasets.models import Dataset
from edgewise.cloud.deployments import service as deployments
from edgewise.cloud.deployments.models import Deployment
from edgewise.cloud.deployments.schemas import DeploymentCreate
from edgewise.cloud.errors import CloudConflictError, InvalidRequestError, MlUnavailableError, NotFoundError
from edgewise.cloud.jobs import targets
from edgewise.cloud.jobs.secrets import SecretSealer
from edgewise.cloud.models.models import ModelAliasEvent
from edgewise.cloud.models.registry import open_registry
from edgewise.cloud.models.schemas import ModelDeployRequest
from edgewise.cloud.models.signing import SigningKey
from edgewise.cloud.settings import CloudSettings
from edgewise.components import ARTIFACTS_DIR, RECIPES_DIR
from edgewise.ml.errors import MlError, RegistryError
from edgewise.protocol.model_package import MANIFEST_FILE, MODEL_FILE, SIGNATURE_FILE

if TYPE_CHECKING:
    from edgewise.ml.registry import ModelRegistry, ModelVersionInfo, RegisteredModelInfo

logger = logging.getLogger(__name__)

MODEL = "Model"
MODEL_VERSION = "Model version"
MODEL_ALIAS = "Model alias"
#: A model NAME is packaged as the component ``edgewise.models.NAME``.
MODEL_COMPONENT_PREFIX = "edgewise.models."
INFERENCE_COMPONENT = "edgewise.ml.Inference"
INFERENCE_VERSION = "1.0.0"
STREAM_MANAGER = "aws.greengrass.StreamManager"
#: A challenger's package is the same files as its version's, shipped as a component of its own
#: (``edgewise.models.NAME.challenger``; model names hold no dots, so no model's component is named so), because a
#: deployment holds one version of each component and the champion's is ``edgewise.models.NAME``.
CHALLENGER_SUFFIX = ".challenger"
#: The sections of a served model's entry that a deployment sets or, when not given, resets.
_OPTIONAL_SECTIONS = ("capture", "challenger", "driftDetector")
RESULT_FILE = "result.json"
DATASET_SHA256_TAG = "edgewise.dataset_sha256"
PACKAGE_FILES = (MODEL_FILE, MANIFEST_FILE, SIGNATURE_FILE)
_PARQUET_MAGIC = b"PAR1"
#: A Parquet file ends with its footer's length (4 bytes, little-endian) and the magic.
_PARQUET_TAIL = 8
#: The schema metadata key datasets keep their spec and source under (edgewise.ml.datasets.store).
_DATASET_METADATA = b"edgewise.dataset"
#: The request field a registry refusal is about, by what was asked for.
_FIELDS = {MODEL: "name", MODEL_VERSION: "version", MODEL_ALIAS: "alias"}


def component_name(model: str) -> str:
    """The component a model is packaged as."""
    return MODEL_COMPONENT_PREFIX + model


def component_version(version: str) -> str:
    """The component version model version ``version`` is packaged as (MLflow's N -> ``N.0.0``)."""
    return f"{version}.0.0"


def model_registry(settings: CloudSettings) -> ModelRegistry:
    """The cloud's model registry.

    Raises:
        MlUnavailableError: the ML libraries are not installed.
    """
    try:
        return open_registry(settings)
    except ImportError as exc:
        raise MlUnavailableError(exc.name or str(exc)) from None


@contextmanager
def _registry_errors(kind: str, name: str) -> Iterator[None]:
    """Registry failures as the API's errors: a missing model, version or alias is ``kind`` ``name`` not found."""
    try:
        yield
    except RegistryError as exc:
        if exc.not_found:
            raise NotFoundError(kind, name) from exc
        raise InvalidRequestError(_FIELDS[kind], str(exc)) from exc
    except ImportError as exc:
        raise MlUnavailableError(exc.name or str(exc)) from None


def list_models(registry: ModelRegistry) -> list[RegisteredModelInfo]:
    """Every registered model, by name."""
    with _registry_errors(MODEL, "*"):
        return sorted(registry.list_models(), key=lambda model: model.name)


def get_model(registry: ModelRegistry, name: str) -> tuple[RegisteredModelInfo, list[ModelVersionInfo]]:
    """A registered model and its versions, newest first.

    Raises:
        NotFoundError: there is no such model.
    """
    with _registry_errors(MODEL, name):
        return registry.get_model(name), registry.versions(name)


def list_versions(registry: ModelRegistry, name: str) -> list[ModelVersionInfo]:
    """A model's versions, newest first.

    Raises:
        NotFoundError: there is no such model.
    """
    with _registry_errors(MODEL, name):
        registry.get_model(name)
        return registry.versions(name)


def get_version(
    registry: ModelRegistry, name: str, *, version: str | None = None, alias: str | None = None
) -> ModelVersionInfo:
    """Model version ``version`` of ``name``, or the one ``alias`` points to.

    Raises:
        NotFoundError: the model, the version or the alias does not exist.
    """
    if alias is not None:
        with _registry_errors(MODEL_ALIAS, f"{name}@{alias}"):
            return registry.get_version(name, alias=alias)
    with _registry_errors(MODEL_VERSION, f"{name}/{version}"):
        return registry.get_version(name, version=version)


def training_result(registry: ModelRegistry, info: ModelVersionInfo) -> dict[str, Any] | None:
    """What Edgewise's training wrote for a version (``result.json``); None for a version registered without it."""
    with tempfile.TemporaryDirectory(prefix="edgewise-model-") as scratch:
        with _registry_errors(MODEL_VERSION, f"{info.name}/{info.version}"):
            directory = registry.download(info.name, info.version, Path(scratch))
        return _read_result(directory)


def _read_result(directory: Path) -> dict[str, Any] | None:
    path = directory / RESULT_FILE
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("model-result-unreadable path=%s: %s", path, exc)
        return None
    return result if isinstance(result, dict) else None


def set_alias(
    session: Session, registry: ModelRegistry, name: str, alias: str, version: str, *, actor: str
) -> ModelAliasEvent:
    """Point ``alias`` of model ``name`` at ``version``, and record the move. Commits.

    Raises:
        NotFoundError: the model or the version does not exist.
        InvalidRequestError: MLflow refuses the alias (``latest`` and ``vN`` are its own).
    """
    previous = _alias_target(registry, name, alias)
    get_version(registry, name, version=version)
    with _registry_errors(MODEL_ALIAS, f"{name}@{alias}"):
        registry.set_alias(name, alias, version)
    _alias_moved(name)
    event = ModelAliasEvent(
        model_name=name, alias=alias, version=version, previous_version=previous, actor=actor
    )
    session.add(event)
    session.commit()
    logger.info("model-alias-set model=%s alias=%s version=%s by=%s", name, alias, version, actor)
    return event


def delete_alias(session: Session, registry: ModelRegistry, name: str, alias: str, *, actor: str) -> None:
    """Delete ``alias`` of model ``name``, and record it. Commits.

    Raises:
        NotFoundError: the model or the alias does not exist.
    """
    previous = _alias_target(registry, name, alias)
    if previous is None:
        raise NotFoundError(MODEL_ALIAS, f"{name}@{alias}")
    with _registry_errors(MODEL_ALIAS, f"{name}@{alias}"):
        registry.delete_alias(name, alias)
    _alias_moved(name)
    session.add(
        ModelAliasEvent(model_name=name, alias=alias, version=None, previous_version=previous, actor=actor)
    )
    session.commit()
    logger.info("model-alias-deleted model=%s alias=%s by=%s", name, alias, actor)


def _alias_moved(name: str) -> None:
    """The next invocation of ``name`` by alias asks the registry again (invoke keeps lookups a while)."""
    from edgewise.cloud.models.invoke import forget_lookups  # invoke imports this module

    forget_lookups(name)


def _alias_target(registry: ModelRegistry, name: str, alias: str) -> str | None:
    with _registry_errors(MODEL, name):
        return registry.get_model(name).aliases.get(alias)


def alias_history(session: Session, name: str, alias: str) -> list[ModelAliasEvent]:
    """Every recorded move of ``alias`` of model ``name``, newest first (empty when it never moved)."""
    return list(
        session.scalars(
            sa.select(ModelAliasEvent)
            .where(ModelAliasEvent.model_name == name, ModelAliasEvent.alias == alias)
            .order_by(ModelAliasEvent.id.desc())
        )
    )


@dataclass(frozen=True)
class PackagedModel:
    """A model version as a published component."""

    model_name: str
    model_version: str
    component_name: str
    component_version: str
    key_id: str
    #: False when the component version was published already.
    created: bool


def package_model(
    session: Session,
    store: ArtifactStore,
    registry: ModelRegistry,
    key: SigningKey,
    name: str,
    *,
    version: str | None = None,
    alias: str | None = None,
    published_by: str,
) -> PackagedModel:
    """Package a model version as component ``edgewise.models.NAME`` ``N.0.0`` (see the module docstring).

    Raises:
        NotFoundError: the model, version or alias does not exist.
        InvalidRequestError: the version has no ONNX model, or its package cannot be built.
        MlUnavailableError: the ML libraries are not installed.
    """
    info = get_version(registry, name, version=version, alias=alias)
    packaged = PackagedModel(
        model_name=name,
        model_version=info.version,
        component_name=component_name(name),
        component_version=component_version(info.version),
        key_id=key.key_id(),
        created=False,
    )
    try:
        existing = components.get_component_version(
            session, packaged.component_name, packaged.component_version
        )
    except NotFoundError:
        pass
    else:
        return replace(packaged, key_id=_signed_by(store, existing) or packaged.key_id)
    with tempfile.TemporaryDirectory(prefix="edgewise-package-") as scratch:
        root = Path(scratch)
        with _registry_errors(MODEL_VERSION, f"{name}/{info.version}"):
            files = registry.download(name, info.version, root / "version")
        package = root / "package"
        package.mkdir()
        recipe = _build_package(session, store, info, files, package, key)
        artifacts = {file_name: _store_file(store, package / file_name) for file_name in PACKAGE_FILES}
    try:
        published = components.publish_component(
            session, store, recipe=recipe, artifacts=artifacts, published_by=published_by, packaged_model=True
        )
    except CloudConflictError:
        # Another request packaged the same version first (its manifest differs in its creation time).
        existing = components.get_component_version(
            session, packaged.component_name, packaged.component_version
        )
        return replace(packaged, key_id=_signed_by(store, existing) or packaged.key_id)
    logger.info(
        "model-packaged model=%s version=%s component=%s@%s",
        name,
        info.version,
        packaged.component_name,
        packaged.component_version,
    )
    return replace(packaged, created=published.created)


def _store_file(store: ArtifactStore, path: Path) -> str:
    with path.open("rb") as stream:
        return store.put(stream).sha256


def _read_stored(store: ArtifactStore, sha256: str, offset: int = 0, size: int = -1) -> bytes:
    reader = store.open(sha256, offset)
    try:
        return reader.read(size)
    finally:
        reader.close()


def _signed_by(store: ArtifactStore, version: ComponentVersion) -> str | None:
    """The key id in the manifest of a packaged model's component version (None when it cannot be read)."""
    for artifact in version.artifacts:
        if artifact.file_name == MANIFEST_FILE:
            try:
                manifest = json.loads(_read_stored(store, artifact.sha256))
            except (ArtifactStoreError, NotFoundError, ValueError):
                return None
            key_id = manifest.get("keyId") if isinstance(manifest, dict) else None
            return key_id if isinstance(key_id, str) else None
    return None


def _build_package(
    session: Session,
    store: ArtifactStore,
    info: ModelVersionInfo,
    files: Path,
    package: Path,
    key: SigningKey,
) -> dict[str, Any]:
    """Write the signed package of ``info`` into ``package``; the component recipe that ships it."""
    model_file = edgewise_files(info, files) / MODEL_FILE
    try:
        from edgewise.ml.packaging import build_manifest, model_component_recipe
    except ImportError as exc:
        raise MlUnavailableError(exc.name or str(exc)) from None
    from edgewise.protocol.model_package import write_package

    result = _read_result(files) or {}
    spec = dataset_spec(session, store, info.tags.get(DATASET_SHA256_TAG))
    onnx = model_file.read_bytes()
    try:
        manifest = build_manifest(
            name=info.name,
            version=info.version,
            result=result,
            onnx=onnx,
            dataset_spec=spec,
            key_id=key.key_id(),
        )
    except MlError as exc:
        raise InvalidRequestError("version", f"model {info.name!r} version {info.version}: {exc}") from None
    write_package(package, manifest=manifest, onnx=onnx, private_key=key.private_key)
    return model_component_recipe(info.name, info.version, manifest)


def edgewise_files(info: ModelVersionInfo, files: Path) -> Path:
    """``files`` (a version's downloaded files) holding ``model.onnx`` and ``result.json``: a model logged from
    a notebook with MLflow is converted into them there, beside its MLflow files (``edgewise.ml.external``).

    Raises:
        InvalidRequestError: the version has neither Edgewise's files nor an MLflow model, or its MLflow model
            cannot be converted (the message says why: flavor, input example, the fidelity gate's reason).
        MlUnavailableError: the ML libraries are not installed.
    """
    what = f"model {info.name!r} version {info.version}"
    if (files / MODEL_FILE).is_file() and (files / RESULT_FILE).is_file():
        return files
    try:
        from edgewise.ml.external import convert_mlflow_model, find_mlflow_model

        if find_mlflow_model(files) is None:
            if (files / MODEL_FILE).is_file():
                return files
            raise InvalidRequestError(
                "version",
                f"{what} has no {MODEL_FILE} (only ONNX models and MLflow models of the onnx, sklearn, "
                "lightgbm and xgboost flavors can be packaged)",
            )
        # An MLflow onnx flavor's own file is model.onnx too: it is replaced by the converted one.
        convert_mlflow_model(files)
    except ImportError as exc:
        raise MlUnavailableError(exc.name or str(exc)) from None
    except MlError as exc:
        raise InvalidRequestError("version", f"{what}: {exc}") from None
    logger.info("model-converted model=%s version=%s from=mlflow", info.name, info.version)
    return files


def dataset_spec(session: Session, store: ArtifactStore, sha256: str | None) -> dict[str, Any] | None:
    """The spec (``DatasetSpec.to_json()``) of the dataset with content ``sha256``: from the datasets table, else
    from the Parquet file's metadata in the artifact store (a dataset since deleted or replaced); None when
    neither knows it, or the dataset was an uploaded file."""
    if not sha256:
        return None
    row = session.execute(
        sa.select(Dataset.id, Dataset.spec)
        .where(Dataset.sha256 == sha256)
        .order_by(Dataset.id.desc())
        .limit(1)
    ).first()
    if row is not None:
        return row.spec if isinstance(row.spec, dict) else None
    return _stored_dataset_spec(store, sha256)


def _stored_dataset_spec(store: ArtifactStore, sha256: str) -> dict[str, Any] | None:
    """The spec in the ``edgewise.dataset`` metadata of the Parquet file stored under ``sha256``.

    Only the file's footer is read (its last 8 bytes give the footer's length): a dataset may be large.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if not store.exists(sha256):
            return None
        size = store.size(sha256)
        tail = _read_stored(store, sha256, max(0, size - _PARQUET_TAIL), _PARQUET_TAIL)
        if len(tail) != _PARQUET_TAIL or tail[4:] != _PARQUET_MAGIC:
            return None
        footer_size = int.from_bytes(tail[:4], "little")
        footer = _read_stored(store, sha256, size - _PARQUET_TAIL - footer_size, footer_size + _PARQUET_TAIL)
        metadata = pq.read_schema(pa.BufferReader(_PARQUET_MAGIC + footer)).metadata or {}
        document = json.loads(metadata.get(_DATASET_METADATA, b"{}"))
    except (ArtifactStoreError, NotFoundError, pa.ArrowException, ValueError) as exc:
        logger.warning("dataset-spec-unreadable sha256=%s: %s", sha256, exc)
        return None
    spec = document.get("spec") if isinstance(document, dict) else None
    return spec if isinstance(spec, dict) else None


def ensure_inference_component(session: Session, store: ArtifactStore, *, published_by: str) -> None:
    """Publish ``edgewise.ml.Inference`` 1.0.0 from the recipe Edgewise ships, unless the registry has it."""
    try:
        components.get_component_version(session, INFERENCE_COMPONENT, INFERENCE_VERSION)
    except NotFoundError:
        pass
    else:
        return
    recipe_file = RECIPES_DIR / f"{INFERENCE_COMPONENT}-{INFERENCE_VERSION}.yaml"
    recipe = yaml.safe_load(recipe_file.read_text(encoding="utf-8"))
    artifacts: dict[str, str] = {}
    artifact_dir = ARTIFACTS_DIR / INFERENCE_COMPONENT / INFERENCE_VERSION
    if artifact_dir.is_dir():
        for path in sorted(artifact_dir.iterdir()):
            if path.is_file():
                artifacts[path.name] = _store_file(store, path)
    components.publish_component(
        session, store, recipe=recipe, artifacts=artifacts, published_by=published_by
    )
    logger.info("inference-component-published version=%s", INFERENCE_VERSION)


def _current_components(
    session: Session, sealer: SecretSealer, target: str
) -> tuple[dict[str, Any], Deployment | None]:
    """The components of the target's latest deployment (secret values opened, to be sealed again), if any."""
    latest = deployments.list_deployments(session, target=target, latest_only=True, limit=1).items
    if not latest:
        return {}, None
    previous = latest[0]
    opened = sealer.open({"components": previous.components}, job_id=previous.deployment_id)["components"]
    return copy.deepcopy(dict(opened)), previous


def _merged(update: Mapping[str, Any] | None, merge: dict[str, Any]) -> dict[str, Any]:
    """A component's configuration update with ``merge`` merged into its merge document (deeply)."""
    result = dict(update or {})
    existing = result.get("merge")
    if isinstance(existing, str):
        existing = json.loads(existing)
    result["merge"] = _deep_merge(existing if isinstance(existing, dict) else {}, merge)
    return result


def _deep_merge(base: dict[str, Any], change: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in change.items():
        current = merged.get(key)
        merged[key] = (
            _deep_merge(current, value) if isinstance(current, dict) and isinstance(value, Mapping) else value
        )
    return merged


def deploy_model(
    session: Session,
    store: ArtifactStore,
    registry: ModelRegistry,
    key: SigningKey,
    sealer: SecretSealer,
    name: str,
    request: ModelDeployRequest,
    *,
    published_by: str,
) -> tuple[Deployment, PackagedModel]:
    """Package a model version and deploy it to a thing or group, keeping what the target runs. Commits.

    The new deployment holds the target's current components (from its latest deployment), the model's
    component added or replaced, and ``edgewise.ml.Inference`` with ``trustedKeys`` holding the cloud's key and
    ``models.NAME`` naming the component, its version and the topics, and the ``capture``, ``challenger`` and
    ``driftDetector`` sections the request asks for (the others reset on the device). A challenger adds its
    component (and no challenger removes it); capture adds ``aws.greengrass.StreamManager`` when the target does
    not run it.

    Raises:
        NotFoundError: the model, version, alias or target does not exist.
        InvalidRequestError: the version cannot be packaged, or the deployment is refused.
    """
    if request.target_arn is not None:
        target = request.target_arn
    elif request.thing is not None:
        target = targets.Target("thing", request.thing).arn
    else:
        assert request.group is not None
        target = targets.Target("group", request.group).arn
    # Before packaging, so that a target that does not exist leaves nothing behind.
    targets.resolve(session, "targetArn", target)
    packaged = package_model(
        session,
        store,
        registry,
        key,
        name,
        version=request.version,
        alias=request.alias,
        published_by=published_by,
    )
    challenger = None
    if request.challenger_version is not None or request.challenger_alias is not None:
        challenger = _challenger_component(
            session,
            store,
            package_model(
                session,
                store,
                registry,
                key,
                name,
                version=request.challenger_version,
                alias=request.challenger_alias,
                published_by=published_by,
            ),
            published_by=published_by,
        )
    ensure_inference_component(session, store, published_by=published_by)
    current, previous = _current_components(session, sealer, target)
    current[packaged.component_name] = {"componentVersion": packaged.component_version}
    if challenger is not None:
        current[challenger[0]] = {"componentVersion": challenger[1]}
    else:
        current.pop(packaged.component_name + CHALLENGER_SUFFIX, None)
    if request.captures and STREAM_MANAGER not in current:
        current[STREAM_MANAGER] = {"componentVersion": BUILTIN_VERSIONS[STREAM_MANAGER]}
    inference = dict(current.get(INFERENCE_COMPONENT) or {})
    inference["componentVersion"] = INFERENCE_VERSION
    trusted = _trusted_keys(inference.get("configurationUpdate"), key.public_key_text())
    entry = _served_entry(request, packaged, challenger)
    update = _merged(inference.get("configurationUpdate"), {"trustedKeys": trusted, "models": {name: entry}})
    # The entry replaces the one carried over, and on the device the sections it leaves out are reset, so that
    # deploying without capture (or a challenger, or a detector) turns it off.
    update["merge"]["models"][name] = entry
    reset = [pointer for pointer in update.get("reset") or () if isinstance(pointer, str)]
    for section in _OPTIONAL_SECTIONS:
        pointer = f"/models/{name}/{section}"
        if section not in entry and pointer not in reset:
            reset.append(pointer)
    update["reset"] = reset
    inference["configurationUpdate"] = update
    current[INFERENCE_COMPONENT] = inference
    body: dict[str, Any] = {
        "targetArn": target,
        "deploymentName": request.deployment_name or f"model {name} version {packaged.model_version}",
        "components": current,
    }
    if request.deployment_policies is not None:
        body["deploymentPolicies"] = request.deployment_policies.model_dump(by_alias=True, exclude_none=True)
    elif previous is not None:
        body["deploymentPolicies"] = previous.deployment_policies
    if request.iot_job_configuration is not None:
        body["iotJobConfiguration"] = request.iot_job_configuration.model_dump(
            by_alias=True, exclude_none=True
        )
    elif previous is not None:
        body["iotJobConfiguration"] = previous.iot_job_configuration
    deployment = deployments.create_deployment(
        session, DeploymentCreate.model_validate(body, strict=False), sealer=sealer
    )
    logger.info(
        "model-deployed model=%s version=%s deployment=%s target=%s",
        name,
        packaged.model_version,
        deployment.deployment_id,
        target,
    )
    return deployment, packaged


def _challenger_component(
    session: Session, store: ArtifactStore, packaged: PackagedModel, *, published_by: str
) -> tuple[str, str]:
    """The challenger component (name, version) shipping ``packaged``'s files; published unless it is there."""
    name = packaged.component_name + CHALLENGER_SUFFIX
    try:
        components.get_component_version(session, name, packaged.component_version)
    except NotFoundError:
        pass
    else:
        return name, packaged.component_version
    source = components.get_component_version(session, packaged.component_name, packaged.component_version)
    recipe = yaml.safe_load(source.recipe)
    recipe["ComponentName"] = name
    recipe["ComponentDescription"] = (
        f"Challenger of model {packaged.model_name}: version {packaged.model_version}'s signed package"
    )
    artifacts = {artifact.file_name: artifact.sha256 for artifact in source.artifacts}
    # A conflict: another request published it first, from the same files.
    with contextlib.suppress(CloudConflictError):
        components.publish_component(
            session, store, recipe=recipe, artifacts=artifacts, published_by=published_by, packaged_model=True
        )
    return name, packaged.component_version


def _served_entry(
    request: ModelDeployRequest, packaged: PackagedModel, challenger: tuple[str, str] | None
) -> dict[str, Any]:
    """The inference component's ``models.NAME`` entry for this deployment."""
    entry: dict[str, Any] = {
        "component": packaged.component_name,
        "version": packaged.component_version,
        "inputTopic": request.input_topic,
        "outputTopic": request.output_topic,
        "iotCoreTopic": request.iot_core_topic,
    }
    if request.captures:
        capture: dict[str, Any] = {"disagreement": challenger is not None}
        if request.capture_stream is not None:
            capture["stream"] = request.capture_stream
        if request.capture_sample_rate is not None:
            capture["sampleRate"] = request.capture_sample_rate
        if request.capture_score_above is not None:
            capture["scoreAbove"] = request.capture_score_above
        entry["capture"] = capture
    if challenger is not None:
        entry["challenger"] = {"component": challenger[0], "version": challenger[1]}
    if request.drift_detector is not None:
        entry["driftDetector"] = {"kind": request.drift_detector}
    return entry


def _trusted_keys(update: Mapping[str, Any] | None, key_text: str) -> list[str]:
    """The trusted keys the inference component already has in this deployment, plus the cloud's key."""
    merge = (update or {}).get("merge")
    if isinstance(merge, str):
        merge = json.loads(merge)
    keys = merge.get("trustedKeys") if isinstance(merge, dict) else None
    listed = [item for item in keys if isinstance(item, str)] if isinstance(keys, list) else []
    return listed if key_text in listed else [*listed, key_text]

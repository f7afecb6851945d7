"""REST routes of the model registry: models, versions, aliases (with their history), the signing key, packaging
a version as a component, deploying it to the fleet, and invoking it in the cloud. Reads: any role; writes:
operator; invoking (which changes nothing): any role."""

from __future__ import annotations

import dataclasses
import datetime
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status

from edgewise.cloud.auth import Access, CurrentToken, require_access
from edgewise.cloud.components.routes import StoreDep
from edgewise.cloud.db import SessionDep
from edgewise.cloud.deployments import service as deployments
from edgewise.cloud.errors import ERROR_RESPONSES
from edgewise.cloud.jobs import secrets
from edgewise.cloud.models import invoke, service, signing
from edgewise.cloud.models.models import ModelAliasEvent
from edgewise.cloud.models.schemas import (
    ALIAS_MAX_LENGTH,
    ALIAS_PATTERN,
    MODEL_NAME_MAX_LENGTH,
    MODEL_NAME_PATTERN,
    VERSION_PATTERN,
    AliasEventPublic,
    AliasHistoryPublic,
    AliasSet,
    InvokeMetricsPublic,
    ModelDeployPublic,
    ModelDeployRequest,
    ModelInvokePublic,
    ModelInvokeRequest,
    ModelPackagePublic,
    ModelPackageRequest,
    ModelPublic,
    ModelsPublic,
    ModelSummaryPublic,
    ModelVersionDetail,
    ModelVersionPublic,
    ModelVersionsPublic,
    PredictionPublic,
    SigningKeyPublic,
)

if TYPE_CHECKING:
    from edgewise.ml.registry import ModelRegistry, ModelVersionInfo, RegisteredModelInfo

ModelName = Annotated[
    str, Path(alias="name", min_length=1, max_length=MODEL_NAME_MAX_LENGTH, pattern=MODEL_NAME_PATTERN)
]
AliasName = Annotated[
    str, Path(alias="alias", min_length=1, max_length=ALIAS_MAX_LENGTH, pattern=ALIAS_PATTERN)
]
VersionText = Annotated[str, Path(alias="version", min_length=1, max_length=9, pattern=VERSION_PATTERN)]

router = APIRouter(dependencies=[Depends(require_access())], responses=ERROR_RESPONSES, tags=["models"])


def model_registry(request: Request) -> ModelRegistry:
    """The registry of the app's settings (503 ``ml_unavailable`` without the ML libraries)."""
    return service.model_registry(request.app.state.services.settings)


def signing_key(request: Request) -> signing.SigningKey:
    """The cloud's model-signing key (created on first use)."""
    return signing.load_or_create(request.app.state.services.settings.data_dir)


if TYPE_CHECKING:
    RegistryDep = Annotated[ModelRegistry, Depends(model_registry)]
else:
    # FastAPI reads the annotation at run time, where MLflow (and with it ModelRegistry) is not imported yet.
    RegistryDep = Annotated[object, Depends(model_registry)]
SigningKeyDep = Annotated[signing.SigningKey, Depends(signing_key)]


def _moment(milliseconds: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(milliseconds / 1000, tz=datetime.UTC)


def _summary(model: RegisteredModelInfo) -> ModelSummaryPublic:
    return ModelSummaryPublic(
        name=model.name,
        latest_version=model.latest_version,
        aliases=dict(model.aliases),
        description=model.description,
        created_at=_moment(model.created_ms),
        updated_at=_moment(model.updated_ms),
    )


def _version(info: ModelVersionInfo) -> ModelVersionPublic:
    return ModelVersionPublic(
        name=info.name,
        version=info.version,
        aliases=list(info.aliases),
        run_id=info.run_id,
        source=info.source,
        created_at=_moment(info.created_ms),
        metrics=dict(info.metrics),
        params=dict(info.params),
        tags=dict(info.tags),
        description=info.description,
    )


def _event(event: ModelAliasEvent) -> AliasEventPublic:
    return AliasEventPublic(
        alias=event.alias,
        version=event.version,
        previous_version=event.previous_version,
        actor=event.actor,
        created_at=event.created_at,
    )


@router.get("/models")
def list_models(registry: RegistryDep) -> ModelsPublic:
    """Registered models, by name, with their newest version and aliases."""
    models = service.list_models(registry)
    return ModelsPublic(data=[_summary(model) for model in models], count=len(models))


@router.get("/models/signing-key")
def get_signing_key(key: SigningKeyDep) -> SigningKeyPublic:
    """The public key model packages are signed with: what devices list in the inference component's
    ``trustedKeys``."""
    return SigningKeyPublic(public_key=key.public_key_text(), key_id=key.key_id())


@router.get("/models/{name}")
def get_model(registry: RegistryDep, name: ModelName) -> ModelPublic:
    """A registered model with its aliases and versions, newest first."""
    model, versions = service.get_model(registry, name)
    return ModelPublic(**_summary(model).model_dump(), versions=[_version(info) for info in versions])


@router.get("/models/{name}/versions")
def list_versions(registry: RegistryDep, name: ModelName) -> ModelVersionsPublic:
    """A model's versions, newest first."""
    versions = service.list_versions(registry, name)
    return ModelVersionsPublic(data=[_version(info) for info in versions], count=len(versions))


@router.get("/models/{name}/versions/{version}")
def get_version(registry: RegistryDep, name: ModelName, version: VersionText) -> ModelVersionDetail:
    """One model version: its metrics, parameters and tags, and what its training found (leaderboard,
    fidelity, latency, size) when Edgewise trained it."""
    info = service.get_version(registry, name, version=version)
    result = service.training_result(registry, info) or {}
    return ModelVersionDetail(
        **_version(info).model_dump(),
        task=_text(result.get("task")),
        learner=_text(result.get("learner")),
        metric=_text(result.get("metric")),
        score=_number(result.get("score")),
        features=_list_of_text(result.get("features")),
        leaderboard=_list_of_objects(result.get("leaderboard")),
        fidelity=_object(result.get("fidelity")),
        latency=_object(result.get("latency")),
        size_bytes=_integer(result.get("sizeBytes", result.get("size_bytes"))),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _integer(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _list_of_text(value: object) -> list[str] | None:
    return [str(item) for item in value] if isinstance(value, list) else None


def _list_of_objects(value: object) -> list[dict[str, object]] | None:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else None


def _object(value: object) -> dict[str, object] | None:
    return value if isinstance(value, dict) else None


@router.put("/models/{name}/aliases/{alias}")
def set_alias(
    session: SessionDep,
    registry: RegistryDep,
    token: CurrentToken,
    name: ModelName,
    alias: AliasName,
    request: AliasSet,
) -> AliasEventPublic:
    """Point an alias (``champion``, ``challenger``, ...) at a version; the move is recorded."""
    return _event(service.set_alias(session, registry, name, alias, request.version, actor=token.name))


@router.delete(
    "/models/{name}/aliases/{alias}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response
)
def delete_alias(
    session: SessionDep, registry: RegistryDep, token: CurrentToken, name: ModelName, alias: AliasName
) -> None:
    """Delete an alias; the deletion is recorded."""
    service.delete_alias(session, registry, name, alias, actor=token.name)


@router.get("/models/{name}/aliases/{alias}/history")
def alias_history(session: SessionDep, name: ModelName, alias: AliasName) -> AliasHistoryPublic:
    """Every recorded move of an alias, newest first."""
    events = service.alias_history(session, name, alias)
    return AliasHistoryPublic(data=[_event(event) for event in events], count=len(events))


def _packaged(packaged: service.PackagedModel) -> ModelPackagePublic:
    return ModelPackagePublic(
        model_name=packaged.model_name,
        model_version=packaged.model_version,
        component_name=packaged.component_name,
        component_version=packaged.component_version,
        key_id=packaged.key_id,
        created=packaged.created,
    )


@router.post(
    "/models/{name}/package",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": ModelPackagePublic, "description": "Packaged already"}},
)
def package_model(
    session: SessionDep,
    store: StoreDep,
    registry: RegistryDep,
    key: SigningKeyDep,
    token: CurrentToken,
    name: ModelName,
    request: ModelPackageRequest,
    response: Response,
) -> ModelPackagePublic:
    """Package a model version (by number or alias) as the signed component ``edgewise.models.NAME``
    ``N.0.0``."""
    packaged = service.package_model(
        session,
        store,
        registry,
        key,
        name,
        version=request.version,
        alias=request.alias,
        published_by=token.name,
    )
    if not packaged.created:
        response.status_code = status.HTTP_200_OK
    return _packaged(packaged)


@router.post("/models/{name}/deploy", status_code=status.HTTP_201_CREATED)
def deploy_model(
    session: SessionDep,
    store: StoreDep,
    registry: RegistryDep,
    key: SigningKeyDep,
    sealer: secrets.SealerDep,
    token: CurrentToken,
    name: ModelName,
    request: ModelDeployRequest,
) -> ModelDeployPublic:
    """Package a model version and deploy it with ``edgewise.ml.Inference`` to a thing or thing group, keeping
    the target's other components."""
    deployment, packaged = service.deploy_model(
        session, store, registry, key, sealer, name, request, published_by=token.name
    )
    return ModelDeployPublic(
        deployment_id=deployment.deployment_id,
        iot_job_id=deployment.job_id,
        iot_job_arn=deployments.job_arn(deployment.job_id),
        target_arn=deployments.target_arn(deployment),
        model_name=packaged.model_name,
        model_version=packaged.model_version,
        component_name=packaged.component_name,
        component_version=packaged.component_version,
    )


# Invoking a model changes nothing, so a read-only token may: these routes need read access for every method.
invoke_router = APIRouter(
    dependencies=[Depends(require_access(write=Access.READ))], responses=ERROR_RESPONSES, tags=["models"]
)


@invoke_router.post("/models/{name}/invoke", response_model_exclude_none=True)
def invoke_model(
    http: Request, registry: RegistryDep, name: ModelName, request: ModelInvokeRequest
) -> ModelInvokePublic:
    """Run a model version (by number or alias, resolved now) in the cloud on ``rows`` (values in the model's
    feature order) or ``instances`` (feature name to value), at most 10,000; each prediction reads the model's
    outputs as the device does. Any role may invoke."""
    answer = invoke.invoke(
        http.app.state.services.settings,
        registry,
        name,
        version=request.version,
        alias=request.alias,
        rows=request.rows,
        instances=request.instances,
    )
    return ModelInvokePublic(
        model=answer.model,
        version=answer.version,
        predictions=[PredictionPublic.model_validate(fields) for fields in answer.predictions],
        latency_ms=answer.latency_ms,
    )


@invoke_router.get("/models/{name}/invoke-metrics")
def get_invoke_metrics(http: Request, registry: RegistryDep, name: ModelName) -> InvokeMetricsPublic:
    """A model's invocations in this cloud process since it started: requests, failed requests, rows, requests
    per version, and the p50/p99 request latency over the latest 1,024 requests."""
    snapshot = invoke.model_metrics(http.app.state.services.settings, registry, name)
    return InvokeMetricsPublic(**dataclasses.asdict(snapshot))

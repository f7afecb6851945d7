"""REST routes of drift monitoring: a model's drift monitor, checks run now, drift events, and promotion.
Reads: any role; writes: operator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from edgewise.cloud.auth import CurrentToken, require_access
from edgewise.cloud.components.routes import StoreDep
from edgewise.cloud.db import SessionDep
from edgewise.cloud.drift import check, service
from edgewise.cloud.drift.schemas import (
    DriftEventPublic,
    DriftEventsPublic,
    DriftMonitorPublic,
    DriftMonitorSet,
    PromoteRequest,
    PromotionPublic,
)
from edgewise.cloud.errors import ERROR_RESPONSES
from edgewise.cloud.models.routes import ModelName, RegistryDep
from edgewise.cloud.models.schemas import MODEL_NAME_MAX_LENGTH, MODEL_NAME_PATTERN

if TYPE_CHECKING:
    from edgewise.cloud.services import CloudServices

Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]
Confirmed = Annotated[bool | None, Query(description="Only confirmed (true) or unconfirmed (false) checks")]
ModelFilter = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MODEL_NAME_MAX_LENGTH,
        pattern=MODEL_NAME_PATTERN,
        description="Only this model's events",
    ),
]

router = APIRouter(dependencies=[Depends(require_access())], responses=ERROR_RESPONSES, tags=["drift"])


@router.put("/models/{name}/drift-monitor")
def set_drift_monitor(
    session: SessionDep, registry: RegistryDep, token: CurrentToken, name: ModelName, body: DriftMonitorSet
) -> DriftMonitorPublic:
    """Create or replace a model's drift monitor: the alias whose version is watched, the capture stream and
    window, the thresholds, how often, how many drifted checks confirm drift, and whether confirmed drift
    retrains (a challenger) and auto-promotes it."""
    return service.monitor_public(service.set_monitor(session, registry, name, body, actor=token.name))


@router.get("/models/{name}/drift-monitor")
def get_drift_monitor(session: SessionDep, name: ModelName) -> DriftMonitorPublic:
    """A model's drift monitor and where its checks stand."""
    return service.monitor_public(service.get_monitor(session, name))


@router.delete(
    "/models/{name}/drift-monitor", status_code=status.HTTP_204_NO_CONTENT, response_class=Response
)
def delete_drift_monitor(session: SessionDep, name: ModelName) -> None:
    """Stop monitoring a model; its drift events stay."""
    service.delete_monitor(session, name)


@router.post(
    "/models/{name}/drift-checks",
    status_code=status.HTTP_201_CREATED,
    responses={503: {"description": "The ML libraries are not installed"}},
)
def run_drift_check(
    session: SessionDep, store: StoreDep, registry: RegistryDep, request: Request, name: ModelName
) -> DriftEventPublic:
    """Check a model for drift now, with its monitor's settings; the check counts towards confirmation like the
    scheduled ones."""
    services: CloudServices = request.app.state.services
    return service.event_public(check.run_check(session, registry, store, services.settings, name))


@router.get("/models/{name}/drift-events")
def list_model_drift_events(
    session: SessionDep, name: ModelName, confirmed: Confirmed = None, limit: Limit = 100, offset: Offset = 0
) -> DriftEventsPublic:
    """A model's drift checks, newest first."""
    rows, count = service.list_events(session, model=name, confirmed=confirmed, limit=limit, offset=offset)
    return DriftEventsPublic(data=[service.event_public(row) for row in rows], count=count)


@router.get("/drift-events")
def list_drift_events(
    session: SessionDep,
    model: ModelFilter = None,
    confirmed: Confirmed = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> DriftEventsPublic:
    """Drift checks of every model, newest first."""
    rows, count = service.list_events(session, model=model, confirmed=confirmed, limit=limit, offset=offset)
    return DriftEventsPublic(data=[service.event_public(row) for row in rows], count=count)


@router.post("/models/{name}/promote")
def promote_model(
    session: SessionDep, registry: RegistryDep, token: CurrentToken, name: ModelName, body: PromoteRequest
) -> PromotionPublic:
    """Point ``to`` (``champion``) at the version ``from`` (``challenger``) points at; the move is recorded in the
    alias history under the token's name."""
    promotion = service.promote(
        session, registry, name, from_alias=body.from_alias, to_alias=body.to_alias, actor=token.name
    )
    return PromotionPublic.model_validate(
        {
            "modelName": promotion.model_name,
            "from": promotion.from_alias,
            "to": promotion.to_alias,
            "version": promotion.version,
            "previousVersion": promotion.previous_version,
            "actor": promotion.actor,
            "createdAt": promotion.created_at,
        }
    )

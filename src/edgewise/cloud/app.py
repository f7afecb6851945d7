"""Assembles the cloud's REST API from settings, and prepares a data directory on first start.

Every error leaves the API as ``{"code": ..., "message": ...}``: domain errors map to a status by type (in
:data:`ERROR_STATUS`, the one place that does it), request validation errors become 422 ``invalid_request``
naming the field, and routing errors keep their status. A request body is authenticated and capped before it is
read (:mod:`edgewise.cloud.limits`): ``api_upload_max_bytes`` for artifact uploads and dataset files,
``api_body_max_bytes`` for every other route. The broker hook's routes (:mod:`.broker.routes`) take the hook
token instead of an API token, and 4 KiB.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from edgewise import __version__
from edgewise.cloud.auth import routes as auth_routes
from edgewise.cloud.auth import service as auth_service
from edgewise.cloud.auth.roles import Role
from edgewise.cloud.broker import routes as broker_routes
from edgewise.cloud.broker.hook import (
    HOOK_BODY_MAX_BYTES,
    BrokerHook,
    BrokerHookRequestError,
    read_hook_token,
)
from edgewise.cloud.client_devices import routes as client_device_routes
from edgewise.cloud.components import routes as component_routes
from edgewise.cloud.console.app import SESSION_PATHS, mount_console
from edgewise.cloud.datasets import routes as dataset_routes
from edgewise.cloud.db import SessionDep, create_database_engine, create_session_factory, upgrade_database
from edgewise.cloud.deployments import routes as deployment_routes
from edgewise.cloud.drift import routes as drift_routes
from edgewise.cloud.errors import (
    AuthenticationError,
    CloudConflictError,
    CloudError,
    ErrorBody,
    InvalidRequestError,
    MlUnavailableError,
    NotFoundError,
    PermissionDeniedError,
)
from edgewise.cloud.fleet import routes as fleet_routes
from edgewise.cloud.identity import routes as identity_routes
from edgewise.cloud.identity import service as identity_service
from edgewise.cloud.jobs import routes as job_routes
from edgewise.cloud.limits import NO_TOKEN, PAYLOAD_TOO_LARGE, BodyLimits, RouteLimit
from edgewise.cloud.logs import routes as log_routes
from edgewise.cloud.models import routes as model_routes
from edgewise.cloud.provisioning import routes as provisioning_routes
from edgewise.cloud.registry import routes as registry_routes
from edgewise.cloud.rules import routes as rule_routes
from edgewise.cloud.services import CloudServices
from edgewise.cloud.settings import CloudSettings
from edgewise.cloud.shadows import routes as shadow_routes
from edgewise.cloud.telemetry import routes as telemetry_routes
from edgewise.cloud.training import routes as training_routes
from edgewise.cloud.writes import AUTHORIZATION_PATHS, NotifyOnWrite

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
FIRST_ADMIN_NAME = "admin"

ERROR_STATUS: dict[type[CloudError], int] = {
    InvalidRequestError: 422,
    NotFoundError: 404,
    CloudConflictError: 409,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    MlUnavailableError: 503,
    # EMQX takes any answer but 200 and 204 as "ignore": the status only tells an operator what went wrong.
    BrokerHookRequestError: 400,
}
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: PAYLOAD_TOO_LARGE}
#: The routes whose body may be large: an artifact's bytes, streamed to disk, and a dataset file.
_UPLOAD_PATH = re.compile(re.escape(API_PREFIX) + "/(?:artifacts/[^/]+|datasets/[^/]+/file)")
#: Paths whose routes authenticate their requests themselves: the console (a session cookie) and the broker hook
#: (the hook token, not an API token).
_OWN_AUTHENTICATION = re.compile(f"{SESSION_PATHS.pattern}|{broker_routes.HOOK_PATHS.pattern}")


class HealthPublic(BaseModel):
    """The API's health."""

    status: str
    version: str


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        ErrorBody(code=code, message=message).model_dump(), status_code=status, headers=headers
    )


def _status_of(exc: CloudError) -> int:
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 400


async def _on_cloud_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CloudError)
    status = _status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return _error(status, exc.code, str(exc), headers)


def _describe_location(loc: Sequence[int | str]) -> str:
    where, *path = [str(part) for part in loc] or ["request"]
    field = ".".join(path)
    if not field:
        return f"the {where}"
    return f"field {field!r} in the {where}"


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [f"{_describe_location(error['loc'])}: {error['msg']}" for error in exc.errors()]
    message = "Invalid request: " + "; ".join(problems)
    return _error(422, InvalidRequestError.code, message[0].upper() + message[1:])


def _allowed_methods(request: Request) -> str:
    """Every documented method at this path (Starlette would name only the first route's)."""
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods |= {method.upper() for method in operations}
    return ", ".join(sorted(methods))


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's answer to a body that is not JSON at all: the same failure as any other invalid body.
        return _error(422, InvalidRequestError.code, f"The body is not valid JSON: {exc.detail}")
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = f"{request.method} {request.url.path}: {exc.detail}"
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return _error(exc.status_code, code, message, headers or None)


async def _on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("api-request-failed", extra={"method": request.method, "path": request.url.path})
    return _error(
        500, "internal_error", f"{request.method} {request.url.path} failed unexpectedly; see the server log"
    )


def _query_parameter_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_parameter_names(dependency)
    return names


def check_query_parameters(request: Request) -> None:
    """Refuse query parameters the operation does not declare or that are repeated, rather than ignore them."""
    for name in set(request.query_params):
        count = len(request.query_params.getlist(name))
        if count > 1:
            raise InvalidRequestError(name, f"is given {count} times; give it once")
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    unknown = sorted(set(request.query_params) - _query_parameter_names(route.dependant))
    if unknown:
        known = ", ".join(sorted(_query_parameter_names(route.dependant))) or "none"
        raise InvalidRequestError(
            unknown[0], f"is not a query parameter of this operation (it takes: {known})"
        )


def _health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health")
    def health(session: SessionDep) -> HealthPublic:
        """Report that the API and its database answer; needs no token."""
        session.execute(sa.text("SELECT 1"))
        return HealthPublic(status="ok", version=__version__)

    return router


def create_app(settings: CloudSettings, *, services: CloudServices | None = None) -> FastAPI:
    """The REST API for ``settings``; the database must have been upgraded (see :func:`initialize`).

    The routes work on ``services`` (kept in ``app.state.services``), opened from ``settings`` unless given: the
    server opens them itself to share them with its workers. The API disposes of their database engine when it
    stops.
    """
    shared = services if services is not None else CloudServices.open(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            shared.engine.dispose()

    app = FastAPI(
        title="Edgewise cloud API",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.services = shared
    hook = BrokerHook(shared.sessions, token=read_hook_token(settings.data_dir))
    app.state.broker_hook = hook

    def authenticate(secret: str | None) -> None:
        if secret is None:
            raise AuthenticationError(NO_TOKEN)
        with shared.sessions() as session:
            auth_service.authenticate(session, secret)

    app.add_middleware(
        BodyLimits,
        authenticate=authenticate,
        default=settings.api_body_max_bytes,
        routes=[
            RouteLimit("PUT", _UPLOAD_PATH, settings.api_upload_max_bytes),
            RouteLimit("POST", broker_routes.HOOK_PATHS, HOOK_BODY_MAX_BYTES),
        ],
        session_paths=_OWN_AUTHENTICATION,
    )
    app.add_middleware(NotifyOnWrite, notify=hook.forget, paths=AUTHORIZATION_PATHS)
    app.add_exception_handler(CloudError, _on_cloud_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected_error)
    for router in (
        _health_router(),
        auth_routes.router,
        registry_routes.router,
        identity_routes.router,
        provisioning_routes.router,
        component_routes.router,
        fleet_routes.router,
        deployment_routes.router,
        job_routes.router,
        telemetry_routes.router,
        rule_routes.router,
        shadow_routes.router,
        log_routes.router,
        client_device_routes.router,
        dataset_routes.router,
        training_routes.router,
        model_routes.router,
        drift_routes.router,
        model_routes.invoke_router,
        broker_routes.router,
    ):
        app.include_router(router, prefix=API_PREFIX, dependencies=[Depends(check_query_parameters)])
    mount_console(app, api_prefix=API_PREFIX)
    return app


@dataclass(frozen=True)
class FirstStart:
    """What :func:`initialize` did: the settings, and the admin token's secret if it created one."""

    settings: CloudSettings
    admin_token: str | None


def initialize(data_dir: Path, **settings: Any) -> FirstStart:
    """Create the data directory and the database, and on first start an admin token. Blocks; idempotent.

    The admin token's secret is returned (for the caller to print once) and written to
    ``data_dir/admin-token`` with mode 0600; the database keeps only its hash. ``settings`` are further
    :class:`CloudSettings` fields, e.g. ``database_url``.
    """
    cloud_settings = CloudSettings(data_dir=data_dir, **settings)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    upgrade_database(cloud_settings.database_url)
    engine = create_database_engine(cloud_settings.database_url)
    try:
        with create_session_factory(engine)() as session:
            identity_service.ensure_default_policy(session)
            if auth_service.count_tokens(session) > 0:
                return FirstStart(cloud_settings, admin_token=None)
            issued = auth_service.create_token(session, FIRST_ADMIN_NAME, role=Role.ADMIN)
    finally:
        engine.dispose()
    _write_secret(cloud_settings.admin_token_file, issued.secret)
    logger.info("admin-token-created", extra={"path": str(cloud_settings.admin_token_file)})
    return FirstStart(cloud_settings, admin_token=issued.secret)


def _write_secret(path: Path, secret: str) -> None:
    """Write ``secret`` to ``path`` readable by the owner only, replacing any older file atomically."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(secret + "\n")
    partial.replace(path)

"""REST routes for a broker the cloud does not manage: the HTTP authorization hook, and the rendered ACL and CRL.

``POST /broker/authorize`` and ``POST /broker/authenticate`` are called by the broker (EMQX 5's HTTP authorizer
and authenticator) with the hook token, never an API token; they answer 200 with the decision, 400 naming the
field for a body they cannot read, 401 without the hook token (see :mod:`.hook`). The body limit
(:data:`~.hook.HOOK_BODY_MAX_BYTES`) is enforced in front of the app, and the token is checked before the body
is read.

``GET /broker/acl`` (text/plain) and ``GET /broker/crl`` (PEM) return what the managed broker would be given
right now, for a Mosquitto of one's own; they need an admin token.

The app empties the hook's cache after each successful API write that may change authorization
(:class:`~edgewise.cloud.writes.NotifyOnWrite` on :data:`~edgewise.cloud.writes.AUTHORIZATION_PATHS`).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from edgewise.cloud.auth import require_access
from edgewise.cloud.auth.roles import Access
from edgewise.cloud.broker.acl import render_acl
from edgewise.cloud.broker.hook import (
    BrokerHook,
    parse_authentication_request,
    parse_authorization_request,
)
from edgewise.cloud.broker.permissions import all_device_permissions
from edgewise.cloud.db import SessionDep
from edgewise.cloud.errors import ERROR_RESPONSES
from edgewise.cloud.identity import held_serials, revoked_serials
from edgewise.cloud.services import CloudServices

#: The hook's routes under the API prefix: they authenticate the broker themselves, with the hook token.
HOOK_PATHS = re.compile(r"/api/v1/broker/(?:authorize|authenticate)$")
#: The API paths whose writes can change what a device may do (those that re-sync the managed broker).
_PEM = "application/x-pem-file"
_HOOK_BODY = {
    "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}, "required": True}
}

router = APIRouter(prefix="/broker", responses=ERROR_RESPONSES, tags=["broker"])


class AuthorizationPublic(BaseModel):
    """The hook's answer to one client action."""

    result: Literal["allow", "deny"]


class AuthenticationPublic(BaseModel):
    """The hook's answer to one connection; devices are never superusers."""

    result: Literal["allow", "deny", "ignore"]
    is_superuser: bool = False


def _hook(request: Request) -> BrokerHook:
    hook: BrokerHook = request.app.state.broker_hook
    hook.check_token(request.headers.get("authorization"))
    return hook


@router.post("/authorize", openapi_extra=_HOOK_BODY)
async def authorize(request: Request) -> AuthorizationPublic:
    """Whether a client may publish to a topic or subscribe to a filter (EMQX's HTTP authorizer shape)."""
    hook = _hook(request)
    allowed = await hook.authorize(parse_authorization_request(await request.body()))
    return AuthorizationPublic(result="allow" if allowed else "deny")


@router.post("/authenticate", openapi_extra=_HOOK_BODY)
async def authenticate(request: Request) -> AuthenticationPublic:
    """Whether a client with a certificate may connect (EMQX's HTTP authenticator shape)."""
    hook = _hook(request)
    return AuthenticationPublic(
        result=await hook.authenticate(parse_authentication_request(await request.body()))
    )


_admin = [Depends(require_access(read=Access.ADMIN, write=Access.ADMIN))]


def _text_response(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    # Documented by hand: a response_class would document the errors with its media type too.
    return {200: {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}}


@router.get("/acl", dependencies=_admin, responses=_text_response("text/plain", "Mosquitto's acl_file"))
def acl(session: SessionDep) -> PlainTextResponse:
    """The ACL file the managed broker would be given now: one ``user`` section per device."""
    return PlainTextResponse(render_acl(all_device_permissions(session).devices))


@router.get("/crl", dependencies=_admin, responses=_text_response(_PEM, "Mosquitto's crlfile"))
def crl(request: Request, session: SessionDep) -> PlainTextResponse:
    """The CRL (PEM) the managed broker would be given now: every certificate of the CA that is not ACTIVE."""
    services: CloudServices = request.app.state.services
    pem = services.certificate_authority.build_crl(
        revoked_serials(session), held_serials=held_serials(session)
    )
    return PlainTextResponse(pem, media_type=_PEM)

"""FastAPI dependencies that authenticate a request's bearer token and check its role.

Routers declare what they need once, e.g. ``APIRouter(dependencies=[Depends(require_access())])``: reads
(GET, HEAD) need ``read``, everything else ``write``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from edgewise.cloud.auth import service
from edgewise.cloud.auth.models import ApiToken
from edgewise.cloud.auth.roles import Access
from edgewise.cloud.db import SessionDep
from edgewise.cloud.errors import AuthenticationError, PermissionDeniedError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# auto_error=False: a missing header must produce our own 401 body, not FastAPI's.
_bearer = HTTPBearer(auto_error=False, description="An Edgewise API token: `Authorization: Bearer ewt_...`")


def current_token(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiToken:
    """The API token that authenticates this request."""
    if credentials is None:
        raise AuthenticationError("The request has no 'Authorization: Bearer <token>' header")
    return service.authenticate(session, credentials.credentials)


CurrentToken = Annotated[ApiToken, Depends(current_token)]


def require_access(*, read: Access = Access.READ, write: Access = Access.WRITE) -> Callable[..., ApiToken]:
    """A dependency that lets a request through only if its token's role grants what the method needs."""

    def check(request: Request, token: CurrentToken) -> ApiToken:
        needed = read if request.method in SAFE_METHODS else write
        if not token.role.grants(needed):
            raise PermissionDeniedError(
                f"API token {token.name!r} has role {token.role.value!r}, which does not allow"
                f" {request.method} {request.url.path} (it needs {needed.value} access)"
            )
        return token

    return check

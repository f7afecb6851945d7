"""``POST /api/v1/console/login-links``: a one-time link that opens a console session for the calling token.

Any valid token may make one; the link opens a session with that token's role. The URL carries a random code,
never the token, is good for one use, and expires after ten minutes.
"""

from __future__ import annotations

import datetime

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from edgewise.cloud.auth import require_access
from edgewise.cloud.auth.roles import Access
from edgewise.cloud.console.rendering import CONSOLE_PREFIX
from edgewise.cloud.console.session import ConsoleSessions
from edgewise.cloud.errors import ERROR_RESPONSES, AuthenticationError
from edgewise.cloud.limits import NO_TOKEN, bearer_token

router = APIRouter(
    tags=["console"],
    dependencies=[Depends(require_access(read=Access.READ, write=Access.READ))],
    responses=ERROR_RESPONSES,
)


class LoginLinkPublic(BaseModel):
    """A login link: the console URL path to open, and when it stops working."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    url: str
    expires_at: datetime.datetime


@router.post("/console/login-links", status_code=status.HTTP_201_CREATED)
def create_login_link(request: Request) -> LoginLinkPublic:
    """A one-time console login link (valid ten minutes) for the token that sends this request."""
    secret = bearer_token(request.headers.get("authorization"))
    if secret is None:
        raise AuthenticationError(NO_TOKEN)
    sessions: ConsoleSessions = request.app.state.console_sessions
    link = sessions.create_link(secret)
    return LoginLinkPublic(url=f"{CONSOLE_PREFIX}/login/{link.code}", expires_at=link.expires_at)

"""REST routes for API tokens (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from edgewise.cloud.auth import service
from edgewise.cloud.auth.dependencies import require_access
from edgewise.cloud.auth.models import ApiToken
from edgewise.cloud.auth.roles import Access, Role
from edgewise.cloud.auth.schemas import ApiTokenCreate, ApiTokenIssued, ApiTokenPublic, ApiTokensPublic
from edgewise.cloud.db import SessionDep
from edgewise.cloud.errors import ERROR_RESPONSES
from edgewise.cloud.registry import rules

# Only the length: a token named before names followed the registry's rule (with a '.') stays revocable.
TokenNameInPath = Annotated[str, Path(min_length=1, max_length=rules.NAME_MAX_LENGTH)]

router = APIRouter(
    prefix="/tokens",
    tags=["tokens"],
    dependencies=[Depends(require_access(read=Access.ADMIN, write=Access.ADMIN))],
    responses=ERROR_RESPONSES,
)


def _public(token: ApiToken) -> ApiTokenPublic:
    return ApiTokenPublic(
        name=token.name, role=token.role.value, created_at=token.created_at, last_used_at=token.last_used_at
    )


@router.post("", status_code=status.HTTP_201_CREATED)
def create_token(session: SessionDep, request: ApiTokenCreate) -> ApiTokenIssued:
    """Create a token; its secret is returned only in this response."""
    issued = service.create_token(session, request.name, role=Role(request.role))
    return ApiTokenIssued(**_public(issued.token).model_dump(), token=issued.secret)


@router.get("")
def list_tokens(session: SessionDep) -> ApiTokensPublic:
    """List the tokens (without secrets)."""
    tokens = [_public(token) for token in service.list_tokens(session)]
    return ApiTokensPublic(data=tokens, count=len(tokens))


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_token(session: SessionDep, name: TokenNameInPath) -> None:
    """Revoke a token."""
    service.delete_token(session, name)

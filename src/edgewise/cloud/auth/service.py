"""Issuing, checking and revoking API tokens.

A token is ``ewt_`` followed by 32 random bytes (URL-safe base64). Only its SHA-256 is stored: the secret has
full entropy, so a fast hash is enough and lets a request find its token with one indexed lookup.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edgewise.cloud.auth.models import ApiToken
from edgewise.cloud.auth.roles import Role
from edgewise.cloud.db import utcnow
from edgewise.cloud.errors import (
    AlreadyExistsError,
    AuthenticationError,
    CloudConflictError,
    NotFoundError,
)
from edgewise.cloud.registry import rules

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "ewt_"  # noqa: S105 - a public marker, not a secret
# Recording every use would turn each read into a write; a minute's resolution is enough to spot stale tokens.
LAST_USED_RESOLUTION = datetime.timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedToken:
    """A token just created: the stored row and the secret, which is shown only this once."""

    token: ApiToken
    secret: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(session: Session, name: str, *, role: Role) -> IssuedToken:
    """Create a token called ``name`` with ``role``; its secret is in the result and nowhere else.

    Token names follow the registry's naming rule, so none is a path segment a client rewrites (``.``).
    """
    rules.check_name("name", name)
    if session.scalar(sa.select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise AlreadyExistsError("API token", name)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name=name, role=role, secret_sha256=_digest(secret))
    session.add(token)
    session.commit()
    logger.info("api-token-created", extra={"token_name": name, "role": role.value})
    return IssuedToken(token=token, secret=secret)


def authenticate(session: Session, secret: str) -> ApiToken:
    """The token whose secret is ``secret``; raises :class:`AuthenticationError` for an unknown one."""
    if not secret.startswith(TOKEN_PREFIX):
        raise AuthenticationError("The bearer token is not an Edgewise API token (it must start with 'ewt_')")
    token = session.scalar(sa.select(ApiToken).where(ApiToken.secret_sha256 == _digest(secret)))
    if token is None:
        raise AuthenticationError("The bearer token is not valid (unknown or revoked)")
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        token.last_used_at = now
        session.commit()
    return token


def list_tokens(session: Session) -> list[ApiToken]:
    """Every token, by name."""
    return list(session.scalars(sa.select(ApiToken).order_by(ApiToken.name)))


def count_tokens(session: Session) -> int:
    """How many tokens exist."""
    return session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) or 0


def delete_token(session: Session, name: str) -> None:
    """Revoke the token called ``name``; the last admin token cannot be revoked (it would lock everyone out)."""
    token = session.scalar(sa.select(ApiToken).where(ApiToken.name == name))
    if token is None:
        raise NotFoundError("API token", name)
    if token.role is Role.ADMIN:
        admins = session.scalar(
            sa.select(sa.func.count()).select_from(ApiToken).where(ApiToken.role == Role.ADMIN)
        )
        if admins == 1:
            raise CloudConflictError(
                f"API token {name!r} is the last admin token; create another admin token first"
            )
    session.delete(token)
    session.commit()
    logger.info("api-token-deleted", extra={"token_name": name})

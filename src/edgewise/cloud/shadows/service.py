"""Shadow operations on the database, shared by the MQTT worker and the REST API.

Each operation is one transaction. The row is read ``FOR UPDATE`` (on PostgreSQL) so that two updates of one
shadow apply one after the other and each checks its ``version`` against what the other wrote; on SQLite, which
has no row locks, the UPDATE names the version it read and fails if another wrote meanwhile. Either way, and when
two requests create the same shadow at once (the unique constraint), the loser is run again on what the winner
wrote, so its own ``version`` check sees the winner's version. Errors are the protocol's
:class:`~edgewise.protocol.shadow.errors.ShadowError` with AWS IoT's code, for both front ends to use.

Limits are AWS IoT's defaults: a state document (desired and reported, without metadata) of at most 8 KB, and a
request of at most twice that (it may carry ``null``\\s and keys the merge removes).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from edgewise.cloud.db import utcnow
from edgewise.cloud.shadows.models import ThingShadow
from edgewise.protocol.shadow.document import (
    JsonObject,
    Shadow,
    UpdateOutcome,
    apply_update,
    delete_document,
    get_document,
    parse_update,
    topic_prefix,
    validate_shadow_name,
    validate_thing_name,
)
from edgewise.protocol.shadow.errors import InvalidShadowRequestError, ShadowError, ShadowNotFoundError

#: AWS IoT's default limit on a shadow's state document, in bytes.
MAX_STATE_BYTES = 8192
MAX_REQUEST_BYTES = 2 * MAX_STATE_BYTES
#: ListNamedShadowsForThing page sizes.
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100

T = TypeVar("T")
_ATTEMPTS = 3


def now_seconds() -> int:
    """AWS IoT's shadow timestamps: whole seconds since the epoch."""
    return int(time.time())


@dataclass(frozen=True)
class NamedShadowPage:
    """One page of a thing's named shadows (ListNamedShadowsForThing); ``next_token`` None on the last page."""

    results: list[str]
    next_token: str | None
    timestamp: int


def _row(session: Session, thing: str, name: str) -> ThingShadow | None:
    query = sa.select(ThingShadow).where(ThingShadow.thing_name == thing, ThingShadow.shadow_name == name)
    return session.scalars(query.with_for_update()).one_or_none()


def _stored(row: ThingShadow | None) -> Shadow | None:
    if row is None or row.deleted:
        return None
    return Shadow(dict(row.state), dict(row.shadow_metadata), row.version)


def _committed(session: Session, operation: Callable[[], T]) -> T:
    """Run ``operation`` and commit; again (up to three times in all) when another request created or changed
    the same shadow after this one read it."""
    for attempt in range(_ATTEMPTS):
        try:
            result = operation()
            session.commit()
        except (IntegrityError, OperationalError, StaleDataError):
            session.rollback()
            if attempt == _ATTEMPTS - 1:
                raise
        except ShadowError:
            session.rollback()
            raise
        else:
            return result
    raise AssertionError("unreachable")


def update_messages(thing: str, name: str, outcome: UpdateOutcome) -> list[tuple[str, JsonObject]]:
    """What every subscriber is told about an accepted update: ``/update/documents`` and, if any, ``/update/delta``."""
    prefix = topic_prefix(thing, name)
    messages: list[tuple[str, JsonObject]] = [(f"{prefix}/update/documents", outcome.documents)]
    if outcome.delta is not None:
        messages.append((f"{prefix}/update/delta", outcome.delta))
    return messages


def get_shadow(session: Session, thing: str, name: str | None, *, now: int) -> JsonObject:
    """The ``/get/accepted`` document (GetThingShadow).

    Raises:
        InvalidShadowRequestError: a bad thing or shadow name.
        ShadowNotFoundError: no such shadow.
    """
    thing, shadow_name = validate_thing_name(thing), validate_shadow_name(name)
    query = sa.select(ThingShadow).where(
        ThingShadow.thing_name == thing, ThingShadow.shadow_name == shadow_name
    )
    shadow = _stored(session.scalars(query).one_or_none())
    if shadow is None:
        raise ShadowNotFoundError(thing, shadow_name)
    return get_document(shadow, now=now)


def update_shadow(
    session: Session, thing: str, name: str | None, payload: bytes, *, now: int, from_api: bool = False
) -> UpdateOutcome:
    """Apply an update request (UpdateThingShadow) and commit it. With ``from_api``, the messages devices are owed
    (:func:`update_messages` and ``/update/accepted``) are kept for the shadow worker to publish.

    Raises:
        InvalidShadowRequestError: a bad name or request (400).
        ShadowVersionConflictError: the request's ``version`` is not the shadow's (409).
        PayloadTooLargeError: the request or the resulting state is too large (413).
    """
    thing, shadow_name = validate_thing_name(thing), validate_shadow_name(name)
    request = parse_update(payload, max_bytes=MAX_REQUEST_BYTES)

    def update() -> UpdateOutcome:
        row = _row(session, thing, shadow_name)
        outcome = apply_update(
            _stored(row),
            request,
            current_version=0 if row is None else row.version,
            now=now,
            max_state_bytes=MAX_STATE_BYTES,
        )
        if row is None:
            row = ThingShadow(thing_name=thing, shadow_name=shadow_name)
            session.add(row)
        row.state = outcome.shadow.state
        row.shadow_metadata = outcome.shadow.metadata
        row.version = outcome.shadow.version
        row.deleted = False
        row.updated_at = utcnow()
        if from_api:
            accepted = (f"{topic_prefix(thing, shadow_name)}/update/accepted", outcome.accepted)
            owed = [accepted, *update_messages(thing, shadow_name, outcome)]
            row.unpublished = [*(row.unpublished or []), *([topic, document] for topic, document in owed)]
        session.flush()
        return outcome

    return _committed(session, update)


def delete_shadow(
    session: Session, thing: str, name: str | None, *, now: int, from_api: bool = False
) -> JsonObject:
    """Delete a shadow (DeleteThingShadow); its version numbering continues if it is created again.

    Raises:
        InvalidShadowRequestError: a bad thing or shadow name.
        ShadowNotFoundError: no such shadow.
    """
    thing, shadow_name = validate_thing_name(thing), validate_shadow_name(name)

    def delete() -> JsonObject:
        row = _row(session, thing, shadow_name)
        if row is None or row.deleted:
            raise ShadowNotFoundError(thing, shadow_name)
        document = delete_document(row.version, now=now)
        row.state, row.shadow_metadata, row.deleted, row.updated_at = {}, {}, True, utcnow()
        if from_api:
            topic = f"{topic_prefix(thing, shadow_name)}/delete/accepted"
            row.unpublished = [*(row.unpublished or []), [topic, document]]
        session.flush()
        return document

    return _committed(session, delete)


def _page_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode()


def list_named_shadows(
    session: Session,
    thing: str,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    next_token: str | None = None,
    now: int,
) -> NamedShadowPage:
    """A page of the thing's named shadows by name (ListNamedShadowsForThing).

    Raises:
        InvalidShadowRequestError: a bad thing name, page size or token.
    """
    thing = validate_thing_name(thing)
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidShadowRequestError(f"pageSize: expected 1 to {MAX_PAGE_SIZE}, got {page_size}")
    query = sa.select(ThingShadow.shadow_name).where(
        ThingShadow.thing_name == thing, ThingShadow.shadow_name != "", ThingShadow.deleted.is_(False)
    )
    if next_token is not None:
        try:
            after = base64.b64decode(next_token.encode(), altchars=b"-_", validate=True).decode()
        except (binascii.Error, UnicodeError, ValueError):
            raise InvalidShadowRequestError(
                f"nextToken: {next_token[:80]!r} is not a token this API gave"
            ) from None
        query = query.where(ThingShadow.shadow_name > after)
    names = list(session.scalars(query.order_by(ThingShadow.shadow_name).limit(page_size + 1)))
    more = len(names) > page_size
    names = names[:page_size]
    return NamedShadowPage(names, _page_token(names[-1]) if more else None, now)


def take_unpublished(session: Session) -> list[tuple[str, Any]]:
    """The MQTT messages REST changes owe devices, oldest shadow first, cleared as they are taken."""
    rows = session.scalars(
        sa.select(ThingShadow).where(ThingShadow.unpublished.is_not(None)).order_by(ThingShadow.updated_at)
    ).all()
    messages: list[tuple[str, Any]] = []
    for row in rows:
        messages += [(topic, document) for topic, document in row.unpublished or []]
        row.unpublished = None
    session.commit()
    return messages

"""Registry behaviour: things, thing groups and memberships, with the AWS IoT rules and limits.

Every function takes the session first, validates its input (raising :class:`InvalidRequestError` naming the
field), and commits its change. Attribute updates follow AWS ``attributePayload``: ``merge=False`` replaces
every attribute, ``merge=True`` updates the named ones; in both an empty value removes the attribute.
Dynamic groups are evaluated when read, by running their query over the things.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgewise.cloud.db import utcnow
from edgewise.cloud.errors import (
    AlreadyExistsError,
    CloudConflictError,
    InvalidRequestError,
    LimitExceededError,
    NotFoundError,
    VersionConflictError,
)
from edgewise.cloud.registry import rules
from edgewise.cloud.registry.models import Thing, ThingGroup, ThingGroupMembership
from edgewise.cloud.registry.query import QUERY_FIELD, parse_query

logger = logging.getLogger(__name__)

THING = "Thing"
GROUP = "Thing group"

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing, and how many items there are in all."""

    items: list[T]
    total: int


@dataclass(frozen=True)
class GroupOfThing:
    """A group a thing belongs to: directly, through a child group (``direct`` False), or by query."""

    group: ThingGroup
    direct: bool


def _commit(session: Session, kind: str, name: str) -> None:
    try:
        session.commit()
    except IntegrityError as exc:
        # Two requests raced to create the same name; the unique constraint decided.
        session.rollback()
        raise AlreadyExistsError(kind, name) from exc


def _check_version(kind: str, name: str, actual: int, expected: int | None) -> None:
    if expected is not None and expected != actual:
        raise VersionConflictError(kind, name, expected=expected, actual=actual)


def _updated_attributes(
    current: Mapping[str, str], update: Mapping[str, str], *, merge: bool
) -> dict[str, str]:
    merged = {**current, **update} if merge else dict(update)
    result = {key: value for key, value in merged.items() if value != ""}
    rules.check_attributes("attributes", result)
    return result


# Things


def create_thing(
    session: Session,
    name: str,
    *,
    thing_type_name: str | None = None,
    attributes: Mapping[str, str] | None = None,
) -> Thing:
    """Register a thing called ``name`` (not a reserved one, see :func:`.rules.check_unreserved`)."""
    rules.check_name("thingName", name)
    rules.check_unreserved("thingName", name)
    if thing_type_name is not None:
        rules.check_name("thingTypeName", thing_type_name)
    attributes = dict(attributes or {})
    rules.check_attributes("attributes", attributes)
    if session.scalar(sa.select(Thing.id).where(Thing.name == name)) is not None:
        raise AlreadyExistsError(THING, name)
    thing = Thing(name=name, thing_type_name=thing_type_name, attributes=attributes)
    session.add(thing)
    _commit(session, THING, name)
    logger.info("thing-created", extra={"thing": name})
    return thing


def get_thing(session: Session, name: str) -> Thing:
    """The thing called ``name``."""
    thing = session.scalar(sa.select(Thing).where(Thing.name == name))
    if thing is None:
        raise NotFoundError(THING, name)
    return thing


def list_things(
    session: Session,
    *,
    limit: int = 100,
    offset: int = 0,
    thing_type_name: str | None = None,
    name_prefix: str | None = None,
) -> Page[Thing]:
    """Things by name, optionally only those of a type or whose name starts with ``name_prefix``."""
    if not 1 <= limit <= 1000:
        raise InvalidRequestError("limit", f"{limit} is not between 1 and 1000")
    if offset < 0:
        raise InvalidRequestError("offset", f"{offset} is negative")
    where: list[sa.ColumnElement[bool]] = []
    if thing_type_name is not None:
        where.append(Thing.thing_type_name == thing_type_name)
    if name_prefix is not None:
        where.append(Thing.name.startswith(name_prefix, autoescape=True))
    total = session.scalar(sa.select(sa.func.count()).select_from(Thing).where(*where)) or 0
    items = session.scalars(sa.select(Thing).where(*where).order_by(Thing.name).limit(limit).offset(offset))
    return Page(list(items), total)


def update_thing(
    session: Session,
    name: str,
    *,
    attributes: Mapping[str, str] | None = None,
    merge: bool = False,
    thing_type_name: str | None = None,
    remove_thing_type: bool = False,
    expected_version: int | None = None,
) -> Thing:
    """Change a thing's attributes and type; its version goes up by one."""
    if thing_type_name is not None:
        rules.check_name("thingTypeName", thing_type_name)
        if remove_thing_type:
            raise InvalidRequestError("removeThingType", "cannot be true while thingTypeName sets a type")
    thing = get_thing(session, name)
    _check_version(THING, name, thing.version, expected_version)
    if attributes is not None:
        thing.attributes = _updated_attributes(thing.attributes, attributes, merge=merge)
    if thing_type_name is not None:
        thing.thing_type_name = thing_type_name
    if remove_thing_type:
        thing.thing_type_name = None
    thing.version += 1
    thing.updated_at = utcnow()
    session.commit()
    logger.info("thing-updated", extra={"thing": name, "version": thing.version})
    return thing


def delete_thing(session: Session, name: str, *, expected_version: int | None = None) -> None:
    """Remove a thing and its group memberships."""
    thing = get_thing(session, name)
    _check_version(THING, name, thing.version, expected_version)
    session.execute(sa.delete(ThingGroupMembership).where(ThingGroupMembership.thing_id == thing.id))
    session.delete(thing)
    session.commit()
    logger.info("thing-deleted", extra={"thing": name})


# Groups


def _ancestors(group: ThingGroup) -> list[ThingGroup]:
    """``group``'s parent, grandparent, ... up to its root."""
    chain: list[ThingGroup] = []
    parent = group.parent
    while parent is not None:
        chain.append(parent)
        parent = parent.parent
    return chain


def _root(group: ThingGroup) -> ThingGroup:
    ancestors = _ancestors(group)
    return ancestors[-1] if ancestors else group


def create_group(
    session: Session,
    name: str,
    *,
    parent_name: str | None = None,
    description: str = "",
    attributes: Mapping[str, str] | None = None,
    query_string: str | None = None,
) -> ThingGroup:
    """Create a static group (optionally under ``parent_name``) or, given ``query_string``, a dynamic one."""
    rules.check_name("thingGroupName", name)
    rules.check_description("description", description)
    attributes = dict(attributes or {})
    rules.check_attributes("attributes", attributes)
    parent: ThingGroup | None = None
    if query_string is not None:
        if parent_name is not None:
            raise InvalidRequestError("parentGroupName", "dynamic groups cannot be part of a hierarchy")
        _check_query(query_string)
        dynamic_count = session.scalar(
            sa.select(sa.func.count()).select_from(ThingGroup).where(ThingGroup.dynamic.is_(True))
        )
        if (dynamic_count or 0) >= rules.MAX_DYNAMIC_GROUPS:
            raise LimitExceededError(
                f"There are already {rules.MAX_DYNAMIC_GROUPS} dynamic groups, the maximum"
            )
    if parent_name is not None:
        rules.check_name("parentGroupName", parent_name)
        parent = get_group(session, parent_name)
        _check_can_be_parent(session, parent)
    if session.scalar(sa.select(ThingGroup.id).where(ThingGroup.name == name)) is not None:
        raise AlreadyExistsError(GROUP, name)
    group = ThingGroup(
        name=name,
        parent=parent,
        description=description,
        attributes=attributes,
        dynamic=query_string is not None,
        query_string=query_string,
    )
    session.add(group)
    _commit(session, GROUP, name)
    logger.info("thing-group-created", extra={"thing_group": name, "dynamic": group.dynamic})
    return group


def _check_query(query_string: str) -> None:
    if len(query_string) > rules.QUERY_MAX_LENGTH:
        raise InvalidRequestError(
            QUERY_FIELD, f"is {len(query_string)} characters; at most {rules.QUERY_MAX_LENGTH}"
        )
    parse_query(query_string)


def _check_can_be_parent(session: Session, parent: ThingGroup) -> None:
    if parent.dynamic:
        raise InvalidRequestError(
            "parentGroupName", f"{parent.name!r} is a dynamic group and cannot have children"
        )
    depth = len(_ancestors(parent)) + 2
    if depth > rules.MAX_GROUP_DEPTH:
        raise LimitExceededError(
            f"A child of thing group {parent.name!r} would be at depth {depth}; at most {rules.MAX_GROUP_DEPTH}"
        )
    children = session.scalar(
        sa.select(sa.func.count()).select_from(ThingGroup).where(ThingGroup.parent_id == parent.id)
    )
    if (children or 0) >= rules.MAX_CHILD_GROUPS:
        raise LimitExceededError(
            f"Thing group {parent.name!r} already has {rules.MAX_CHILD_GROUPS} child groups, the maximum"
        )


def get_group(session: Session, name: str) -> ThingGroup:
    """The thing group called ``name``."""
    group = session.scalar(sa.select(ThingGroup).where(ThingGroup.name == name))
    if group is None:
        raise NotFoundError(GROUP, name)
    return group


def list_groups(
    session: Session, *, limit: int = 100, offset: int = 0, parent_name: str | None = None
) -> Page[ThingGroup]:
    """Groups by name; with ``parent_name``, only that group's direct children."""
    if not 1 <= limit <= 1000:
        raise InvalidRequestError("limit", f"{limit} is not between 1 and 1000")
    if offset < 0:
        raise InvalidRequestError("offset", f"{offset} is negative")
    where: list[sa.ColumnElement[bool]] = []
    if parent_name is not None:
        where.append(ThingGroup.parent_id == get_group(session, parent_name).id)
    total = session.scalar(sa.select(sa.func.count()).select_from(ThingGroup).where(*where)) or 0
    items = session.scalars(
        sa.select(ThingGroup).where(*where).order_by(ThingGroup.name).limit(limit).offset(offset)
    )
    return Page(list(items), total)


def update_group(
    session: Session,
    name: str,
    *,
    description: str | None = None,
    attributes: Mapping[str, str] | None = None,
    merge: bool = False,
    query_string: str | None = None,
    expected_version: int | None = None,
) -> ThingGroup:
    """Change a group's description, attributes or (dynamic groups only) query; its version goes up by one."""
    group = get_group(session, name)
    _check_version(GROUP, name, group.version, expected_version)
    if description is not None:
        rules.check_description("description", description)
        group.description = description
    if attributes is not None:
        group.attributes = _updated_attributes(group.attributes, attributes, merge=merge)
    if query_string is not None:
        if not group.dynamic:
            raise InvalidRequestError(
                QUERY_FIELD, f"thing group {name!r} is static; only dynamic groups have a query"
            )
        _check_query(query_string)
        group.query_string = query_string
    group.version += 1
    group.updated_at = utcnow()
    session.commit()
    logger.info("thing-group-updated", extra={"thing_group": name, "version": group.version})
    return group


def delete_group(session: Session, name: str, *, expected_version: int | None = None) -> None:
    """Delete a group that has no child groups; its memberships go with it."""
    group = get_group(session, name)
    _check_version(GROUP, name, group.version, expected_version)
    child = session.scalar(sa.select(ThingGroup.name).where(ThingGroup.parent_id == group.id).limit(1))
    if child is not None:
        raise CloudConflictError(f"Thing group {name!r} has child groups (e.g. {child!r}); delete them first")
    session.execute(sa.delete(ThingGroupMembership).where(ThingGroupMembership.group_id == group.id))
    session.delete(group)
    session.commit()
    logger.info("thing-group-deleted", extra={"thing_group": name})


# Memberships


def _static_groups_of(session: Session, thing: Thing) -> list[ThingGroup]:
    return list(
        session.scalars(
            sa.select(ThingGroup)
            .join(ThingGroupMembership, ThingGroupMembership.group_id == ThingGroup.id)
            .where(ThingGroupMembership.thing_id == thing.id)
            .order_by(ThingGroup.name)
        )
    )


def add_thing_to_group(session: Session, group_name: str, thing_name: str) -> None:
    """Make a thing a member of a static group; adding it again changes nothing."""
    group = get_group(session, group_name)
    thing = get_thing(session, thing_name)
    if group.dynamic:
        raise CloudConflictError(f"Thing group {group_name!r} is dynamic: its query decides its members")
    current = _static_groups_of(session, thing)
    if any(existing.id == group.id for existing in current):
        return
    if len(current) >= rules.MAX_GROUPS_PER_THING:
        raise LimitExceededError(
            f"Thing {thing_name!r} is already in {rules.MAX_GROUPS_PER_THING} groups, the maximum"
        )
    root = _root(group)
    for existing in current:
        if _root(existing).id == root.id:
            raise CloudConflictError(
                f"Thing {thing_name!r} is already in group {existing.name!r} of the hierarchy under"
                f" {root.name!r}; a thing can be in only one group per hierarchy"
            )
    session.add(ThingGroupMembership(thing_id=thing.id, group_id=group.id))
    session.commit()
    logger.info("thing-added-to-group", extra={"thing": thing_name, "thing_group": group_name})


def remove_thing_from_group(session: Session, group_name: str, thing_name: str) -> None:
    """End a thing's membership of a static group; removing a non-member changes nothing."""
    group = get_group(session, group_name)
    thing = get_thing(session, thing_name)
    if group.dynamic:
        raise CloudConflictError(f"Thing group {group_name!r} is dynamic: its query decides its members")
    session.execute(
        sa.delete(ThingGroupMembership).where(
            ThingGroupMembership.group_id == group.id, ThingGroupMembership.thing_id == thing.id
        )
    )
    session.commit()
    logger.info("thing-removed-from-group", extra={"thing": thing_name, "thing_group": group_name})


def _descendants(session: Session, group: ThingGroup) -> list[ThingGroup]:
    found: list[ThingGroup] = []
    frontier = [group.id]
    while frontier:
        children = list(session.scalars(sa.select(ThingGroup).where(ThingGroup.parent_id.in_(frontier))))
        found.extend(children)
        frontier = [child.id for child in children]
    return found


def list_group_things(session: Session, group_name: str, *, recursive: bool = False) -> list[Thing]:
    """A group's things by name: a dynamic group's by query; with ``recursive``, child groups' too."""
    group = get_group(session, group_name)
    if group.dynamic:
        assert group.query_string is not None
        query = parse_query(group.query_string)
        return [
            thing for thing in session.scalars(sa.select(Thing).order_by(Thing.name)) if query.matches(thing)
        ]
    group_ids = [group.id]
    if recursive:
        group_ids += [child.id for child in _descendants(session, group)]
    members = session.scalars(
        sa.select(Thing)
        .where(
            Thing.id.in_(
                sa.select(ThingGroupMembership.thing_id).where(ThingGroupMembership.group_id.in_(group_ids))
            )
        )
        .order_by(Thing.name)
    )
    return list(members)


def list_thing_groups(session: Session, thing_name: str) -> list[GroupOfThing]:
    """Every group a thing belongs to: its static groups and their ancestors, and matching dynamic groups."""
    thing = get_thing(session, thing_name)
    found: dict[str, GroupOfThing] = {}
    for group in _static_groups_of(session, thing):
        found[group.name] = GroupOfThing(group, direct=True)
        for ancestor in _ancestors(group):
            found.setdefault(ancestor.name, GroupOfThing(ancestor, direct=False))
    for group in _dynamic_groups(session):
        assert group.query_string is not None
        if parse_query(group.query_string).matches(thing):
            found[group.name] = GroupOfThing(group, direct=True)
    return [found[name] for name in sorted(found)]


def _dynamic_groups(session: Session) -> Iterable[ThingGroup]:
    return session.scalars(
        sa.select(ThingGroup).where(ThingGroup.dynamic.is_(True)).order_by(ThingGroup.name)
    )

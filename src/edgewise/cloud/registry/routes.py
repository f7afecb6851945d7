"""REST routes of the registry: things, thing groups and memberships (reads: any role; writes: operator)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from edgewise.cloud.auth import require_access
from edgewise.cloud.db import SessionDep
from edgewise.cloud.errors import ERROR_RESPONSES
from edgewise.cloud.registry import rules, service
from edgewise.cloud.registry.models import Thing, ThingGroup
from edgewise.cloud.registry.schemas import (
    GroupOfThingPublic,
    GroupsOfThingPublic,
    ThingCreate,
    ThingGroupCreate,
    ThingGroupPublic,
    ThingGroupsPublic,
    ThingGroupUpdate,
    ThingPublic,
    ThingsPublic,
    ThingUpdate,
)

_MAX = rules.NAME_MAX_LENGTH
_PATTERN = rules.NAME_PATTERN
ThingName = Annotated[str, Path(alias="thingName", min_length=1, max_length=_MAX, pattern=_PATTERN)]
GroupName = Annotated[str, Path(alias="thingGroupName", min_length=1, max_length=_MAX, pattern=_PATTERN)]
ThingTypeFilter = Annotated[
    str | None, Query(alias="thingTypeName", min_length=1, max_length=_MAX, pattern=_PATTERN)
]
NamePrefixFilter = Annotated[
    str | None, Query(alias="namePrefix", min_length=1, max_length=_MAX, pattern=_PATTERN)
]
ParentFilter = Annotated[
    str | None, Query(alias="parentGroupName", min_length=1, max_length=_MAX, pattern=_PATTERN)
]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]
ExpectedVersion = Annotated[int | None, Query(alias="expectedVersion", ge=1, le=2**31 - 1)]

router = APIRouter(dependencies=[Depends(require_access())], responses=ERROR_RESPONSES)


def thing_public(thing: Thing) -> ThingPublic:
    """The API shape of ``thing``."""
    return ThingPublic(
        thing_name=thing.name,
        thing_type_name=thing.thing_type_name,
        attributes=thing.attributes,
        version=thing.version,
        created_at=thing.created_at,
        updated_at=thing.updated_at,
    )


def group_public(group: ThingGroup) -> ThingGroupPublic:
    """The API shape of ``group``."""
    return ThingGroupPublic(
        thing_group_name=group.name,
        parent_group_name=group.parent.name if group.parent is not None else None,
        description=group.description,
        attributes=group.attributes,
        dynamic=group.dynamic,
        query_string=group.query_string,
        version=group.version,
        created_at=group.created_at,
        updated_at=group.updated_at,
    )


@router.post("/things", status_code=status.HTTP_201_CREATED, tags=["things"])
def create_thing(session: SessionDep, request: ThingCreate) -> ThingPublic:
    """Register a thing."""
    thing = service.create_thing(
        session, request.thing_name, thing_type_name=request.thing_type_name, attributes=request.attributes
    )
    return thing_public(thing)


@router.get("/things", tags=["things"])
def list_things(
    session: SessionDep,
    limit: Limit = 100,
    offset: Offset = 0,
    thing_type_name: ThingTypeFilter = None,
    name_prefix: NamePrefixFilter = None,
) -> ThingsPublic:
    """List things by name."""
    page = service.list_things(
        session, limit=limit, offset=offset, thing_type_name=thing_type_name, name_prefix=name_prefix
    )
    return ThingsPublic(data=[thing_public(thing) for thing in page.items], count=page.total)


@router.get("/things/{thingName}", tags=["things"])
def get_thing(session: SessionDep, thing_name: ThingName) -> ThingPublic:
    """Describe a thing."""
    return thing_public(service.get_thing(session, thing_name))


@router.patch("/things/{thingName}", tags=["things"])
def update_thing(session: SessionDep, thing_name: ThingName, request: ThingUpdate) -> ThingPublic:
    """Change a thing's attributes or type."""
    thing = service.update_thing(
        session,
        thing_name,
        attributes=request.attributes,
        merge=request.merge,
        thing_type_name=request.thing_type_name,
        remove_thing_type=request.remove_thing_type,
        expected_version=request.expected_version,
    )
    return thing_public(thing)


@router.delete(
    "/things/{thingName}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, tags=["things"]
)
def delete_thing(
    session: SessionDep,
    thing_name: ThingName,
    expected_version: ExpectedVersion = None,
) -> None:
    """Delete a thing and its memberships."""
    service.delete_thing(session, thing_name, expected_version=expected_version)


@router.get("/things/{thingName}/groups", tags=["things"])
def list_thing_groups(session: SessionDep, thing_name: ThingName) -> GroupsOfThingPublic:
    """List every group a thing belongs to, including the ancestors of its groups and matching dynamic groups."""
    found = service.list_thing_groups(session, thing_name)
    data = [
        GroupOfThingPublic(thing_group_name=item.group.name, dynamic=item.group.dynamic, direct=item.direct)
        for item in found
    ]
    return GroupsOfThingPublic(data=data, count=len(data))


@router.post("/thing-groups", status_code=status.HTTP_201_CREATED, tags=["thing-groups"])
def create_group(session: SessionDep, request: ThingGroupCreate) -> ThingGroupPublic:
    """Create a static or dynamic thing group."""
    group = service.create_group(
        session,
        request.thing_group_name,
        parent_name=request.parent_group_name,
        description=request.description,
        attributes=request.attributes,
        query_string=request.query_string,
    )
    return group_public(group)


@router.get("/thing-groups", tags=["thing-groups"])
def list_groups(
    session: SessionDep,
    limit: Limit = 100,
    offset: Offset = 0,
    parent_group_name: ParentFilter = None,
) -> ThingGroupsPublic:
    """List thing groups by name, optionally only the children of one."""
    page = service.list_groups(session, limit=limit, offset=offset, parent_name=parent_group_name)
    return ThingGroupsPublic(data=[group_public(group) for group in page.items], count=page.total)


@router.get("/thing-groups/{thingGroupName}", tags=["thing-groups"])
def get_group(session: SessionDep, group_name: GroupName) -> ThingGroupPublic:
    """Describe a thing group."""
    return group_public(service.get_group(session, group_name))


@router.patch("/thing-groups/{thingGroupName}", tags=["thing-groups"])
def update_group(
    session: SessionDep,
    group_name: GroupName,
    request: ThingGroupUpdate,
) -> ThingGroupPublic:
    """Change a thing group's description, attributes or query."""
    group = service.update_group(
        session,
        group_name,
        description=request.description,
        attributes=request.attributes,
        merge=request.merge,
        query_string=request.query_string,
        expected_version=request.expected_version,
    )
    return group_public(group)


@router.delete(
    "/thing-groups/{thingGroupName}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    tags=["thing-groups"],
)
def delete_group(
    session: SessionDep,
    group_name: GroupName,
    expected_version: ExpectedVersion = None,
) -> None:
    """Delete a thing group without child groups."""
    service.delete_group(session, group_name, expected_version=expected_version)


@router.get("/thing-groups/{thingGroupName}/things", tags=["thing-groups"])
def list_group_things(
    session: SessionDep,
    group_name: GroupName,
    recursive: bool = False,
) -> ThingsPublic:
    """List a group's things (a dynamic group's by its query; with ``recursive``, child groups' too)."""
    things = service.list_group_things(session, group_name, recursive=recursive)
    return ThingsPublic(data=[thing_public(thing) for thing in things], count=len(things))


@router.put(
    "/thing-groups/{thingGroupName}/things/{thingName}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    tags=["thing-groups"],
)
def add_thing_to_group(
    session: SessionDep,
    group_name: GroupName,
    thing_name: ThingName,
) -> None:
    """Add a thing to a static group."""
    service.add_thing_to_group(session, group_name, thing_name)


@router.delete(
    "/thing-groups/{thingGroupName}/things/{thingName}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    tags=["thing-groups"],
)
def remove_thing_from_group(
    session: SessionDep,
    group_name: GroupName,
    thing_name: ThingName,
) -> None:
    """Remove a thing from a static group."""
    service.remove_thing_from_group(session, group_name, thing_name)

"""API shapes of the registry (camelCase on the wire, like AWS IoT's API).

Request shapes are strict (no type coercion) and refuse unknown fields; their constraints come from
:mod:`edgewise.cloud.registry.rules`, so the OpenAPI schema states the same rules the service enforces.
"""

from __future__ import annotations

import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from edgewise.cloud.registry import rules

Name = Annotated[str, Field(min_length=1, max_length=rules.NAME_MAX_LENGTH, pattern=rules.NAME_PATTERN)]
AttributeName = Annotated[
    str,
    Field(min_length=1, max_length=rules.ATTRIBUTE_NAME_MAX_LENGTH, pattern=rules.ATTRIBUTE_NAME_PATTERN),
]
AttributeValue = Annotated[
    str, Field(max_length=rules.ATTRIBUTE_VALUE_MAX_LENGTH, pattern=rules.ATTRIBUTE_VALUE_PATTERN)
]
# Spelled out because pydantic would describe the key rule with patternProperties, which lets other keys through.
Attributes = Annotated[
    dict[AttributeName, AttributeValue],
    Field(max_length=rules.MAX_ATTRIBUTES),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": rules.MAX_ATTRIBUTES,
            "propertyNames": {
                "minLength": 1,
                "maxLength": rules.ATTRIBUTE_NAME_MAX_LENGTH,
                "pattern": rules.ATTRIBUTE_NAME_PATTERN,
            },
            "additionalProperties": {
                "type": "string",
                "maxLength": rules.ATTRIBUTE_VALUE_MAX_LENGTH,
                "pattern": rules.ATTRIBUTE_VALUE_PATTERN,
            },
        }
    ),
]
Description = Annotated[
    str, Field(max_length=rules.DESCRIPTION_MAX_LENGTH, pattern=rules.DESCRIPTION_PATTERN)
]
QueryString = Annotated[str, Field(min_length=1, max_length=rules.QUERY_MAX_LENGTH)]


def _integral_number(value: object) -> object:
    # JSON Schema counts 3.0 as an integer; strict mode would refuse it, while "3" must stay refused.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Version = Annotated[int, BeforeValidator(_integral_number), Field(ge=1, le=2**31 - 1)]


class _Shape(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class _Request(_Shape):
    model_config = ConfigDict(extra="forbid", strict=True)


class ThingCreate(_Request):
    """A thing to register."""

    thing_name: Name
    thing_type_name: Name | None = None
    attributes: Attributes = Field(default_factory=dict)


class ThingUpdate(_Request):
    """Changes to a thing; with ``merge`` the attributes are merged, and an empty value removes one."""

    thing_type_name: Name | None = None
    remove_thing_type: bool = False
    attributes: Attributes | None = None
    merge: bool = False
    expected_version: Version | None = None


class ThingPublic(_Shape):
    """A thing as the API shows it."""

    thing_name: str
    thing_type_name: str | None
    attributes: dict[str, str]
    version: int
    created_at: datetime.datetime
    updated_at: datetime.datetime


class ThingsPublic(_Shape):
    """A page of things and how many match in all."""

    data: list[ThingPublic]
    count: int


class ThingGroupCreate(_Request):
    """A group to create: static (optionally under a parent) or, with a ``queryString``, dynamic."""

    thing_group_name: Name
    parent_group_name: Name | None = None
    description: Description = ""
    attributes: Attributes = Field(default_factory=dict)
    query_string: QueryString | None = None


class ThingGroupUpdate(_Request):
    """Changes to a group; ``queryString`` only for dynamic groups."""

    description: Description | None = None
    attributes: Attributes | None = None
    merge: bool = False
    query_string: QueryString | None = None
    expected_version: Version | None = None


class ThingGroupPublic(_Shape):
    """A thing group as the API shows it."""

    thing_group_name: str
    parent_group_name: str | None
    description: str
    attributes: dict[str, str]
    dynamic: bool
    query_string: str | None
    version: int
    created_at: datetime.datetime
    updated_at: datetime.datetime


class ThingGroupsPublic(_Shape):
    """A page of thing groups and how many match in all."""

    data: list[ThingGroupPublic]
    count: int


class GroupOfThingPublic(_Shape):
    """A group a thing belongs to; ``direct`` is false for a group it is in through a child group."""

    thing_group_name: str
    dynamic: bool
    direct: bool


class GroupsOfThingPublic(_Shape):
    """Every group a thing belongs to."""

    data: list[GroupOfThingPublic]
    count: int

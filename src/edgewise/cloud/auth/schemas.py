"""API shapes of tokens: what a client sends to create one and what it gets back."""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from edgewise.cloud.registry import rules

TokenName = Annotated[str, Field(min_length=1, max_length=rules.NAME_MAX_LENGTH, pattern=rules.NAME_PATTERN)]
RoleName = Literal["admin", "operator", "read-only"]


class _Shape(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ApiTokenCreate(_Shape):
    """A request for a new token."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: TokenName
    role: RoleName


class ApiTokenPublic(_Shape):
    """A token as the API shows it: never its secret."""

    name: str
    role: RoleName
    created_at: datetime.datetime
    last_used_at: datetime.datetime | None


class ApiTokenIssued(ApiTokenPublic):
    """A token just created, with its secret: the only time the API returns it."""

    token: str


class ApiTokensPublic(_Shape):
    """All tokens."""

    data: list[ApiTokenPublic]
    count: int

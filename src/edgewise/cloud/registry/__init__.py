"""The device registry: things, thing groups (static hierarchies and dynamic queries) and memberships."""

from __future__ import annotations

from edgewise.cloud.registry.models import Thing as Thing
from edgewise.cloud.registry.models import ThingGroup as ThingGroup
from edgewise.cloud.registry.models import ThingGroupMembership as ThingGroupMembership
from edgewise.cloud.registry.query import parse_query as parse_query
from edgewise.cloud.registry.rules import CLAIM_PREFIX as CLAIM_PREFIX
from edgewise.cloud.registry.rules import DEVICE_PREFIX as DEVICE_PREFIX
from edgewise.cloud.registry.rules import GENERATED_NAME_BYTES as GENERATED_NAME_BYTES
from edgewise.cloud.registry.rules import is_reserved as is_reserved
from edgewise.cloud.registry.service import Page as Page

__all__ = [
    "CLAIM_PREFIX",
    "DEVICE_PREFIX",
    "GENERATED_NAME_BYTES",
    "Page",
    "Thing",
    "ThingGroup",
    "ThingGroupMembership",
    "is_reserved",
    "parse_query",
]

"""The device registry: things, thing groups (static hierarchies and dynamic queries) and memberships."""

from __future__ import annotations

from edgewise.cloud.registry.models import Thing as Thing
from edgewise.cloud.registry.models import ThingGroup as ThingGroup
from edgewise.cloud.registry.models import ThingGroupMembership as ThingGroupMembership
from edgewise.cloud.registry.query import parse_query as parse_query

__all__ = ["Thing", "ThingGroup", "ThingGroupMembership", "parse_query"]

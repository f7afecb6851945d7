"""Job targets: things and thing groups named by name or ARN, and the things they stand for now.

A target is ``arn:aws:iot:<region>:<account>:thing/<name>``, ``...:thinggroup/<name>`` (any region and
account), or a bare name, which must name exactly one existing thing or group. A group stands for its things
and those of its child groups (a dynamic group's by its query), read when asked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edgewise.cloud.errors import InvalidRequestError, NotFoundError
from edgewise.cloud.registry import Thing, ThingGroup
from edgewise.cloud.registry import rules as registry_rules
from edgewise.cloud.registry import service as registry

ARN_PREFIX = "arn:aws:iot:edgewise:edgewise:"
_ARN = re.compile(r"^arn:aws[a-z-]*:iot:[a-z0-9-]*:[a-z0-9-]*:(thing|thinggroup)/(.+)$")

TargetKind = Literal["thing", "group"]


@dataclass(frozen=True)
class Target:
    """One thing or thing group a job is for."""

    kind: TargetKind
    name: str

    @property
    def arn(self) -> str:
        """The target's ARN as the API shows it."""
        return f"{ARN_PREFIX}{'thing' if self.kind == 'thing' else 'thinggroup'}/{self.name}"

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name}

    @classmethod
    def from_json(cls, value: dict[str, str]) -> Target:
        kind = value["kind"]
        assert kind in ("thing", "group")
        return cls("thing" if kind == "thing" else "group", value["name"])


def thing_arn(name: str) -> str:
    """The ARN of the thing called ``name``."""
    return Target("thing", name).arn


def _exists(session: Session, table: type[Thing] | type[ThingGroup], name: str) -> bool:
    return session.scalar(sa.select(table.id).where(table.name == name)) is not None


def resolve(session: Session, field: str, text: str) -> Target:
    """The existing thing or group ``text`` names.

    Raises:
        InvalidRequestError: ``text`` is neither a valid name nor a thing or thing group ARN, or a bare name
            that names both a thing and a group.
        NotFoundError: no such thing or group.
    """
    match = _ARN.fullmatch(text)
    if match is not None:
        kind: TargetKind = "thing" if match.group(1) == "thing" else "group"
        name = match.group(2)
        registry_rules.check_name(field, name)
        if not _exists(session, Thing if kind == "thing" else ThingGroup, name):
            raise NotFoundError("Thing" if kind == "thing" else "Thing group", name)
        return Target(kind, name)
    if text.startswith("arn:"):
        raise InvalidRequestError(field, f"{text!r} is not the ARN of a thing or a thing group")
    registry_rules.check_name(field, text)
    is_thing, is_group = _exists(session, Thing, text), _exists(session, ThingGroup, text)
    if is_thing and is_group:
        raise InvalidRequestError(
            field,
            f"{text!r} names both a thing and a thing group; give the ARN ({Target('thing', text).arn} or"
            f" {Target('group', text).arn})",
        )
    if not (is_thing or is_group):
        raise NotFoundError("Thing or thing group", text)
    return Target("thing" if is_thing else "group", text)


def resolve_all(session: Session, texts: Sequence[str]) -> list[Target]:
    """The targets ``texts`` name, without repeats, in the order given."""
    found: list[Target] = []
    for index, text in enumerate(texts):
        target = resolve(session, f"targets[{index}]", text)
        if target not in found:
            found.append(target)
    return found


def things_of(session: Session, targets: Iterable[Target]) -> list[str]:
    """The names of the things the targets stand for now, without repeats: targets in order, each group's things
    by name. A thing or group deleted since is left out."""
    names: dict[str, None] = {}
    for target in targets:
        if target.kind == "thing":
            if _exists(session, Thing, target.name):
                names[target.name] = None
            continue
        try:
            members = registry.list_group_things(session, target.name, recursive=True)
        except NotFoundError:
            continue
        names.update((thing.name, None) for thing in members)
    return list(names)

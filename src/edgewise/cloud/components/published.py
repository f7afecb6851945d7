"""The published versions a resolve request is answered from, kept between requests.

A fleet deployment sends the same resolve request from every device, so reading each component's versions,
their recipes and artifacts anew for each one was a large part of what a deployment cost the cloud. Published
versions are immutable, so what was read of a component stays true as long as the same versions exist: each
batch of requests reads only the ids, versions and publication times of the versions of the components they name
(one small query for all of them), and
reads the versions again only when that set differs from the one kept (a version published, or deleted, or
deleted and published again, which gives it a new time). Works with any number of cloud processes, each
keeping its own.

Thread-safe: the resolve worker answers from several threads.
"""

from __future__ import annotations

import datetime
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edgewise.cloud.components.models import ComponentVersion
from edgewise.cloud.components.service import recipe_document, versions_of
from edgewise.versions import Requirement

#: Versions listed for one name in an answer, newest first.
RESOLVE_LIMIT = 20
#: Components whose versions are kept (the least recently asked for go first).
KEPT_COMPONENTS = 256

#: What identifies one published version for good: its row, its version and when it was published.
_Mark = tuple[int, str, datetime.datetime]


@dataclass(frozen=True)
class PublishedArtifact:
    """An artifact ``Uri`` of a published version and the stored file it stands for."""

    uri: str
    sha256: str
    size: int


@dataclass(frozen=True)
class PublishedVersion:
    """One published version as resolve answers with it. ``recipe`` is shared between answers: read only."""

    version: str
    recipe: Mapping[str, Any]
    artifacts: tuple[PublishedArtifact, ...]


class _Versioned(Protocol):
    @property
    def version(self) -> str: ...


V = TypeVar("V", bound=_Versioned)


def offered(versions: Sequence[V], requirement: Requirement, *, limit: int = RESOLVE_LIMIT) -> list[V]:
    """What a device asking for ``requirement`` is offered of ``versions`` (newest first): those the requirement
    allows, at most ``limit``."""
    return [found for found in versions if requirement.allows(found.version)][:limit]


class PublishedVersions:
    """Each component's published versions, newest first, read from the store when they changed."""

    def __init__(self, *, kept: int = KEPT_COMPONENTS) -> None:
        self._kept = kept
        self._lock = threading.Lock()
        self._by_name: OrderedDict[str, tuple[frozenset[_Mark], list[PublishedVersion]]] = OrderedDict()
        #: Times the versions of a component were read in full (the others were answered from what was kept).
        self.reads = 0

    def matching(
        self, session: Session, asked: Sequence[Mapping[str, Requirement]], *, limit: int = RESOLVE_LIMIT
    ) -> list[dict[str, list[PublishedVersion]]]:
        """For each request of ``asked``, and each name it asks for, the published versions that satisfy its
        requirement, newest first (at most ``limit``). Blocks (database: one query when nothing changed)."""
        marks: dict[str, set[_Mark]] = {name: set() for requirements in asked for name in requirements}
        if marks:
            query = sa.select(
                ComponentVersion.name,
                ComponentVersion.id,
                ComponentVersion.version,
                ComponentVersion.created_at,
            ).where(ComponentVersion.name.in_(list(marks)))
            for row in session.execute(query):
                marks[row.name].add((row.id, row.version, row.created_at))
        versions = {name: self._versions(session, name, frozenset(found)) for name, found in marks.items()}
        return [
            {
                name: offered(versions[name], requirement, limit=limit)
                for name, requirement in requirements.items()
            }
            for requirements in asked
        ]

    def _versions(self, session: Session, name: str, marks: frozenset[_Mark]) -> list[PublishedVersion]:
        with self._lock:
            kept = self._by_name.get(name)
            if kept is not None and kept[0] == marks:
                self._by_name.move_to_end(name)
                return kept[1]
        rows = versions_of(session, name)
        versions = [
            PublishedVersion(
                row.version,
                recipe_document(row),
                tuple(PublishedArtifact(a.uri, a.sha256, a.size) for a in row.artifacts),
            )
            for row in rows
        ]
        # Kept under the marks of the rows read, not those asked first: a version published in between is in
        # both the rows and their marks.
        read = frozenset((row.id, row.version, row.created_at) for row in rows)
        with self._lock:
            self.reads += 1
            self._by_name[name] = (read, versions)
            self._by_name.move_to_end(name)
            while len(self._by_name) > self._kept:
                self._by_name.popitem(last=False)
        return versions

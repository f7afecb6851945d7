"""Component registry behaviour: publish, list, describe and delete component versions (resolve requests are
answered from :mod:`.published`).

Publishing validates the recipe with :mod:`edgewise.recipe`, finds every artifact ``Uri`` by file name among
the uploaded artifacts (file name -> SHA-256, already in the store), and writes each artifact's ``Digest``
(base64 SHA-256) and ``Algorithm`` into the stored recipe. Versions are immutable: publishing a version again
succeeds without change when recipe and artifacts are identical and is a conflict otherwise. Every problem is
reported at once, each named by its field path (``recipe.Manifests[0].Artifacts[1].Uri``,
``artifacts.app.zip``); nothing is stored then.

Store calls block, like the database calls: run these functions in a thread (FastAPI does for sync routes).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from edgewise.cloud.components.models import ComponentArtifact, ComponentVersion
from edgewise.cloud.components.store import ArtifactStore
from edgewise.cloud.errors import CloudConflictError, InvalidRequestError, NotFoundError
from edgewise.names import COMPONENT_NAME_MAX_LENGTH, COMPONENT_NAME_PATTERN
from edgewise.recipe import Recipe, RecipeError, parse_recipe
from edgewise.versions import Version, VersionError

logger = logging.getLogger(__name__)

COMPONENT = "Component"
COMPONENT_VERSION = "Component version"
ALGORITHM = "SHA-256"
NAME_PATTERN = COMPONENT_NAME_PATTERN
NAME_MAX_LENGTH = COMPONENT_NAME_MAX_LENGTH
_NUMBER = "(0|[1-9][0-9]{0,5})"
_PRERELEASE_ID = "(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
#: A component version as the API accepts it in paths (the limits of :class:`~edgewise.versions.Version`).
VERSION_PATTERN = rf"^{_NUMBER}\.{_NUMBER}\.{_NUMBER}(-{_PRERELEASE_ID}(\.{_PRERELEASE_ID})*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"
#: Names AWS reserves for its own components; Edgewise resolves them to built-in services.
RESERVED_PREFIX = "aws.greengrass."
#: Model components: made by packaging a model version (edgewise.cloud.models), never published by hand, so that
#: a component of that name is always a signed package of the model of that name.
MODEL_PREFIX = "edgewise.models."

#: Checks that say who still uses a component version (deployments register one); each returns
#: descriptions such as "deployment 'd-1'", and deleting a version that anything uses is refused.
UsageCheck = Callable[[Session, str, str], list[str]]
_usage_checks: list[UsageCheck] = []


def register_usage_check(check: UsageCheck) -> None:
    """Have :func:`delete_component_version` refuse versions that ``check`` reports in use."""
    _usage_checks.append(check)


def version_users(session: Session, name: str, version: str) -> list[str]:
    """Who uses component ``name`` at ``version``, by every registered :data:`UsageCheck`."""
    return [user for check in _usage_checks for user in check(session, name, version)]


class PublishRejectedError(InvalidRequestError):
    """A component version that cannot be published; ``problems`` lists (field path, problem) pairs."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        super().__init__(problems[0][0], problems[0][1])
        self.problems = list(problems)
        count = len(self.problems)
        listed = "; ".join(f"{path}: {problem}" for path, problem in self.problems)
        self.args = (
            f"The component cannot be published ({count} problem{'' if count == 1 else 's'}): {listed}",
        )


@dataclass(frozen=True)
class Published:
    """The outcome of a publish: the stored version, and whether this request created it."""

    version: ComponentVersion
    created: bool


@dataclass(frozen=True)
class ComponentSummary:
    """A component name with its newest version (by semantic version) and how many versions it has."""

    name: str
    latest: ComponentVersion
    version_count: int


@dataclass(frozen=True)
class Page:
    """One page of components and how many there are in all."""

    items: list[ComponentSummary]
    total: int


@dataclass(frozen=True)
class _ArtifactRef:
    """Where an artifact sits in the raw recipe, and its Uri."""

    manifest: int
    index: int
    uri: str
    file_name: str
    digest: str | None
    algorithm: str


def sha256_to_digest(sha256: str) -> str:
    """The recipe ``Digest`` (padded standard base64 of the raw hash) of a lowercase hex SHA-256."""
    return base64.b64encode(bytes.fromhex(sha256)).decode("ascii")


def recipe_document(version: ComponentVersion) -> dict[str, Any]:
    """The stored recipe of ``version`` as a JSON object."""
    document: dict[str, Any] = json.loads(version.recipe)
    return document


def recipe_yaml(version: ComponentVersion) -> str:
    """The stored recipe of ``version`` as YAML, in the author's key order."""
    return yaml.safe_dump(recipe_document(version), sort_keys=False, allow_unicode=True)


def _items(mapping: Mapping[str, Any], key: str) -> Any:
    """The value of a recipe key, matched case-insensitively as Greengrass does."""
    for name, value in mapping.items():
        if isinstance(name, str) and name.casefold() == key.casefold():
            return value
    return None


def _artifact_refs(recipe: Recipe) -> Iterator[_ArtifactRef]:
    for manifest_index, manifest in enumerate(recipe.manifests):
        for index, artifact in enumerate(manifest.artifacts):
            if artifact.uri.casefold().startswith("docker:"):
                continue  # an image reference: nothing to upload
            yield _ArtifactRef(
                manifest_index, index, artifact.uri, artifact.file_name, artifact.digest, artifact.algorithm
            )


def _parse(source: str | Mapping[str, Any]) -> Recipe:
    try:
        return parse_recipe(source, source_name="recipe")
    except RecipeError as exc:
        raise PublishRejectedError(
            [
                (f"recipe.{problem.path}" if problem.path else "recipe", problem.message)
                for problem in exc.problems
            ]
        ) from None


def _json_copy(document: Mapping[str, Any]) -> dict[str, Any]:
    try:
        copied: dict[str, Any] = json.loads(json.dumps(document, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise PublishRejectedError([("recipe", f"holds a value JSON cannot represent ({exc})")]) from None
    return copied


def _with_digests(raw: Mapping[str, Any], digests: Mapping[tuple[int, int], str]) -> dict[str, Any]:
    """A JSON copy of ``raw`` with Digest and Algorithm set on the artifacts at ``digests``' positions."""
    document = _json_copy(raw)
    manifests = _items(document, "Manifests")
    for (manifest_index, index), digest in digests.items():
        artifact = _items(manifests[manifest_index], "Artifacts")[index]
        for key in [key for key in artifact if key.casefold() in ("digest", "algorithm")]:
            del artifact[key]
        artifact["Digest"] = digest
        artifact["Algorithm"] = ALGORITHM
    return document


def _check_artifacts(
    recipe: Recipe, artifacts: Mapping[str, str], store: ArtifactStore
) -> tuple[dict[tuple[int, int], str], dict[str, int], list[tuple[str, str]]]:
    """The digest to write per artifact position, each used file's size, and the problems found."""
    problems: list[tuple[str, str]] = []
    refs = list(_artifact_refs(recipe))
    referenced = {ref.file_name for ref in refs}
    sizes: dict[str, int] = {}
    for file_name, sha256 in sorted(artifacts.items()):
        if file_name not in referenced:
            problems.append((f"artifacts.{file_name}", "is not referenced by any artifact Uri in the recipe"))
        elif not store.exists(sha256):
            problems.append(
                (f"artifacts.{file_name}", f"no artifact with SHA-256 {sha256} has been uploaded")
            )
        else:
            sizes[file_name] = store.size(sha256)
    digests: dict[tuple[int, int], str] = {}
    uploaded = ", ".join(sorted(artifacts)) or "none"
    for ref in refs:
        path = f"recipe.Manifests[{ref.manifest}].Artifacts[{ref.index}]"
        if ref.file_name in (".", ".."):
            problems.append((f"{path}.Uri", f"names no file, got {ref.uri!r}"))
            continue
        if ref.file_name not in artifacts:
            problems.append(
                (f"{path}.Uri", f"no uploaded artifact is named {ref.file_name!r} (uploaded: {uploaded})")
            )
            continue
        digest = sha256_to_digest(artifacts[ref.file_name])
        if ref.digest is not None and ref.algorithm.upper() == ALGORITHM and ref.digest != digest:
            problems.append(
                (
                    f"{path}.Digest",
                    f"is {ref.digest!r}, but the uploaded {ref.file_name!r} has SHA-256 digest {digest!r}",
                )
            )
        digests[(ref.manifest, ref.index)] = digest
    return digests, sizes, problems


def versions_of(session: Session, name: str) -> list[ComponentVersion]:
    """Every version of ``name``, newest first by semantic version."""
    rows = session.scalars(
        sa.select(ComponentVersion)
        .where(ComponentVersion.name == name)
        .options(selectinload(ComponentVersion.artifacts))
    ).all()
    return sorted(rows, key=lambda row: Version.parse(row.version), reverse=True)


def _artifact_pairs(version: ComponentVersion) -> set[tuple[str, str]]:
    return {(artifact.uri, artifact.sha256) for artifact in version.artifacts}


def publish_component(
    session: Session,
    store: ArtifactStore,
    *,
    recipe: str | Mapping[str, Any],
    artifacts: Mapping[str, str],
    published_by: str,
    packaged_model: bool = False,
) -> Published:
    """Publish a component version from ``recipe`` (JSON or YAML text, or an object) and the uploaded
    ``artifacts`` (file name -> SHA-256 hex).

    Raises:
        PublishRejectedError: the recipe is invalid or an artifact is missing, unreferenced or mismatched.
        CloudConflictError: the version exists with another recipe or other artifacts, or a version of equal
            precedence (differing only in build metadata) exists.
    """
    parsed = _parse(recipe)
    problems: list[tuple[str, str]] = []
    if parsed.name.startswith(RESERVED_PREFIX):
        problems.append(("recipe.ComponentName", f"names starting with {RESERVED_PREFIX!r} are reserved"))
    if parsed.name.startswith(MODEL_PREFIX) and not packaged_model:
        problems.append(
            (
                "recipe.ComponentName",
                f"names starting with {MODEL_PREFIX!r} are model packages: `edgewise model package` makes them",
            )
        )
    digests, sizes, artifact_problems = _check_artifacts(parsed, artifacts, store)
    problems += artifact_problems
    if problems:
        raise PublishRejectedError(problems)
    document = _with_digests(parsed.raw, digests)
    stored_recipe = parse_recipe(document, source_name="stored recipe")
    rows: dict[str, ComponentArtifact] = {}
    for ref in _artifact_refs(stored_recipe):
        sha256 = artifacts[ref.file_name]
        rows.setdefault(
            ref.uri,
            ComponentArtifact(
                uri=ref.uri,
                file_name=ref.file_name,
                sha256=sha256,
                size=sizes[ref.file_name],
                storage_key=store.key(sha256),
            ),
        )
    pairs = {(uri, row.sha256) for uri, row in rows.items()}
    existing = _same_precedence(session, parsed.name, parsed.version)
    if existing is not None:
        return _republished(existing, parsed.version, document, pairs)
    version = ComponentVersion(
        name=parsed.name,
        version=parsed.version,
        recipe=json.dumps(document, ensure_ascii=False),
        description=parsed.description,
        publisher=parsed.publisher,
        published_by=published_by,
        artifacts=list(rows.values()),
    )
    session.add(version)
    try:
        session.commit()
    except IntegrityError:
        # Another request published the same version first: identical is fine, anything else conflicts.
        session.rollback()
        existing = _same_precedence(session, parsed.name, parsed.version)
        if existing is None:
            raise
        return _republished(existing, parsed.version, document, pairs)
    logger.info("component-published name=%s version=%s by=%s", version.name, version.version, published_by)
    return Published(version, created=True)


def _same_precedence(session: Session, name: str, version: str) -> ComponentVersion | None:
    wanted = Version.parse(version)
    return next((row for row in versions_of(session, name) if Version.parse(row.version) == wanted), None)


def _republished(
    existing: ComponentVersion, version: str, document: dict[str, Any], pairs: set[tuple[str, str]]
) -> Published:
    if existing.version != version:
        raise CloudConflictError(
            f"Component {existing.name!r} has version {existing.version!r}, which differs from {version!r} only "
            "in build metadata; publish a version with another major.minor.patch or prerelease"
        )
    if recipe_document(existing) == document and _artifact_pairs(existing) == pairs:
        return Published(existing, created=False)
    raise CloudConflictError(
        f"Component {existing.name!r} version {version!r} is already published with another recipe or other "
        "artifacts; versions are immutable, so publish a new version"
    )


def _check_name(name: str) -> None:
    if not re.fullmatch(NAME_PATTERN, name) or len(name) > NAME_MAX_LENGTH:
        raise InvalidRequestError(
            "componentName",
            f"{name[:140]!r} is not a component name (1 to {NAME_MAX_LENGTH} letters, digits, '-', '_' and '.')",
        )


def _parse_version(version: str) -> Version:
    try:
        return Version.parse(version)
    except VersionError as exc:
        raise InvalidRequestError("componentVersion", str(exc)) from None


def list_versions(session: Session, name: str) -> list[ComponentVersion]:
    """Every version of component ``name``, newest first.

    Raises:
        NotFoundError: no version of ``name`` is published.
    """
    _check_name(name)
    versions = versions_of(session, name)
    if not versions:
        raise NotFoundError(COMPONENT, name)
    return versions


def get_component_version(session: Session, name: str, version: str) -> ComponentVersion:
    """The published ``version`` of ``name`` (build metadata need not be given).

    Raises:
        InvalidRequestError: ``name`` or ``version`` is malformed.
        NotFoundError: that version is not published.
    """
    _check_name(name)
    wanted = _parse_version(version)
    for row in versions_of(session, name):
        if Version.parse(row.version) == wanted:
            return row
    raise NotFoundError(COMPONENT_VERSION, f"{name}@{version}")


def list_components(session: Session, *, limit: int, offset: int, name_prefix: str | None = None) -> Page:
    """Components by name, each with its newest version."""
    condition: sa.ColumnElement[bool] = sa.true()
    if name_prefix:
        escaped = name_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        condition = ComponentVersion.name.like(f"{escaped}%", escape="\\")
    total = session.scalar(sa.select(sa.func.count(sa.distinct(ComponentVersion.name))).where(condition)) or 0
    names = session.scalars(
        sa.select(ComponentVersion.name)
        .where(condition)
        .group_by(ComponentVersion.name)
        .order_by(ComponentVersion.name)
        .limit(limit)
        .offset(offset)
    ).all()
    items = []
    for name in names:
        versions = versions_of(session, name)
        items.append(ComponentSummary(name, versions[0], len(versions)))
    return Page(items, total)


def delete_component_version(session: Session, store: ArtifactStore, name: str, version: str) -> None:
    """Delete a published version, and the stored artifacts no other version references.

    Raises:
        NotFoundError: that version is not published.
        CloudConflictError: something still uses it (see :func:`register_usage_check`).
    """
    row = get_component_version(session, name, version)
    users = version_users(session, row.name, row.version)
    if users:
        raise CloudConflictError(
            f"Component {row.name!r} version {row.version!r} is in use by {', '.join(users)}; "
            "it cannot be deleted"
        )
    digests = {artifact.sha256 for artifact in row.artifacts}
    session.delete(row)
    session.commit()
    still_used = set(
        session.scalars(
            sa.select(ComponentArtifact.sha256).where(ComponentArtifact.sha256.in_(digests))
        ).all()
    )
    for sha256 in sorted(digests - still_used):
        try:
            store.delete(sha256)
        except Exception:
            # The version is gone already; an unreachable store leaves a file no version references.
            logger.exception("artifact-delete-failed sha256=%s store=%s", sha256, store.location)
    logger.info("component-version-deleted name=%s version=%s", row.name, row.version)

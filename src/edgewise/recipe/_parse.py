"""Parsing and validating a whole Greengrass recipe (format 2020-01-25) into the :class:`Recipe` model.

The format: https://docs.aws.amazon.com/greengrass/v2/developerguide/component-recipe-reference.html.

Every problem is collected before anything is raised, so a :class:`RecipeError` lists all of them.
Keys inside ``DefaultConfiguration``, ``Platform``, ``Setenv`` and ``ComponentDependencies`` are data
and are kept as written; every other key matches case-insensitively, and unknown keys are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgewise.recipe._document import DocumentSyntaxError, load_document
from edgewise.recipe._errors import Problems, RecipeError, RecipeProblem
from edgewise.recipe._fields import Fields, child, describe, expect_mapping, expect_text, item
from edgewise.recipe._lifecycle import LifecycleReader, check_global_lifecycle
from edgewise.recipe._model import (
    Artifact,
    ArtifactPermission,
    ComponentDependency,
    ComponentType,
    DependencyType,
    Manifest,
    PermissionLevel,
    Recipe,
    Unarchive,
)
from edgewise.recipe._platform import platform_value_problem
from edgewise.versions import Requirement, Version, VersionError

FORMAT_VERSION = "2020-01-25"
MAX_NAME_LENGTH = 128
MAX_CONFIGURATION_DEPTH = 100
MAX_CONFIGURATION_VALUES = 1_000_000

_NAME = re.compile(r"[a-zA-Z0-9._-]+")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def parse_recipe(source: str | bytes | Mapping[str, Any], *, source_name: str = "<recipe>") -> Recipe:
    """Parse a recipe from JSON or YAML text (or an already-loaded mapping) and validate it.

    Raises :class:`RecipeError` listing every problem; ``source_name`` (a file name, say) heads its
    message.
    """
    # Anything but text is taken as an already-loaded document, so a list or None is a RecipeError too.
    document: Any = _load(source, source_name) if isinstance(source, str | bytes) else source
    problems = Problems()
    recipe = _RecipeReader(problems).recipe(document)
    if problems or recipe is None:
        raise RecipeError(source_name, problems.items)
    return recipe


def load_recipe(path: Path) -> Recipe:
    """Read and parse the recipe file at ``path`` (JSON or YAML, whatever its name says)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise RecipeError(
            str(path), [RecipeProblem("", f"the file cannot be read: {exc.strerror or exc}")]
        ) from exc
    return parse_recipe(data, source_name=str(path))


def _load(source: str | bytes, source_name: str) -> Any:
    try:
        text = source.decode("utf-8-sig") if isinstance(source, bytes) else source
        document = load_document(text)
    except UnicodeDecodeError as exc:
        raise RecipeError(
            source_name, [RecipeProblem("", f"the document is not UTF-8 text: {exc.reason}")]
        ) from None
    except DocumentSyntaxError as exc:
        raise RecipeError(source_name, [RecipeProblem("", f"the document {exc}")]) from None
    return document


class _RecipeReader:
    def __init__(self, problems: Problems) -> None:
        self.problems = problems

    def recipe(self, document: Any) -> Recipe | None:
        if document is None:
            self.problems.add("", "the document is empty")
            return None
        if not isinstance(document, Mapping):
            self.problems.add(
                "", f"the document must be a mapping of recipe fields, got {describe(document)}"
            )
            return None
        fields = Fields(document, "", self.problems)
        format_version = fields.require("RecipeFormatVersion")
        if format_version is not None and format_version != FORMAT_VERSION:
            self.problems.add(
                "RecipeFormatVersion", f"expected '{FORMAT_VERSION}', got {describe(format_version)}"
            )
        name = self._name(fields.text("ComponentName", required=True), "ComponentName")
        version = self._version(fields.text("ComponentVersion", required=True))
        description = fields.text("ComponentDescription")
        publisher = fields.text("ComponentPublisher")
        component_type = fields.choice("ComponentType", ComponentType, ComponentType.GENERIC)
        configuration = self._default_configuration(fields)
        dependencies = self._dependencies(fields, name)
        manifests = []
        for index, raw in enumerate(fields.sequence("Manifests")):
            manifest = self._manifest(raw, item("Manifests", index))
            if manifest is not None:
                manifests.append(manifest)
        global_lifecycle = fields.mapping("Lifecycle") or {}
        check_global_lifecycle(global_lifecycle, manifests, self.problems)
        if self.problems or name is None or version is None:
            return None
        return Recipe(
            name=name,
            version=version,
            format_version=FORMAT_VERSION,
            description=description,
            publisher=publisher,
            component_type=component_type,
            default_configuration=configuration,
            dependencies=dependencies,
            manifests=tuple(manifests),
            global_lifecycle=dict(global_lifecycle),
            raw=document,
        )

    def _name(self, name: str | None, path: str) -> str | None:
        if name is None:
            return None
        if len(name) > MAX_NAME_LENGTH:
            self.problems.add(path, f"is longer than {MAX_NAME_LENGTH} characters ({len(name)})")
            return None
        if not _NAME.fullmatch(name):
            self.problems.add(path, f"may only hold letters, digits, '-', '_' and '.', got {describe(name)}")
            return None
        if name in (".", ".."):
            # Names become directory names on the device and in the cloud's registry.
            self.problems.add(path, f"{name!r} names a directory, not a component")
            return None
        return name

    def _version(self, text: str | None) -> str | None:
        if text is None:
            return None
        try:
            return str(Version.parse(text))
        except VersionError as exc:
            self.problems.add("ComponentVersion", str(exc))
            return None

    def _default_configuration(self, fields: Fields) -> dict[str, Any]:
        section = fields.mapping("ComponentConfiguration")
        if section is None:
            return {}
        section_fields = Fields(section, "ComponentConfiguration", self.problems)
        defaults = section_fields.mapping("DefaultConfiguration")
        if defaults is None:
            return {}
        copy = _JsonCopier(self.problems).copy(defaults, section_fields.path_of("DefaultConfiguration"))
        return copy if isinstance(copy, dict) else {}

    def _dependencies(self, fields: Fields, own_name: str | None) -> dict[str, ComponentDependency]:
        section = fields.mapping("ComponentDependencies")
        if section is None:
            return {}
        dependencies: dict[str, ComponentDependency] = {}
        for key, spec in section.items():
            path = child("ComponentDependencies", str(key))
            if not isinstance(key, str):
                self.problems.add(path, f"a component name must be a string, got {describe(key)}")
                continue
            name = self._name(key, path)
            if name is not None and name == own_name:
                self.problems.add(path, "a component cannot depend on itself")
            spec_mapping = expect_mapping(spec, path, self.problems)
            if spec_mapping is None:
                continue
            spec_fields = Fields(spec_mapping, path, self.problems)
            requirement_text = spec_fields.text("VersionRequirement", required=True)
            requirement = None
            if requirement_text is not None:
                try:
                    requirement = Requirement.parse(requirement_text)
                except VersionError as exc:
                    self.problems.add(spec_fields.path_of("VersionRequirement"), str(exc))
            dependency_type = spec_fields.choice("DependencyType", DependencyType, DependencyType.HARD)
            if name is not None and requirement is not None:
                dependencies[name] = ComponentDependency(name, str(requirement), dependency_type)
        return dependencies

    def _manifest(self, value: Any, path: str) -> Manifest | None:
        mapping = expect_mapping(value, path, self.problems)
        if mapping is None:
            return None
        fields = Fields(mapping, path, self.problems)
        name = fields.text("Name")
        platform = self._platform(fields.mapping("Platform") or {}, fields.path_of("Platform"))
        selections = []
        for index, selection in enumerate(fields.sequence("Selections")):
            text = expect_text(selection, item(fields.path_of("Selections"), index), self.problems)
            if text is not None:
                selections.append(text)
        lifecycle = fields.mapping("Lifecycle") or {}
        if lifecycle:
            LifecycleReader(self.problems).read(lifecycle, fields.path_of("Lifecycle"))
        return Manifest(
            platform=platform,
            lifecycle=dict(lifecycle),
            selections=tuple(selections),
            artifacts=self._artifacts(fields),
            name=name,
        )

    def _platform(self, section: Mapping[Any, Any], path: str) -> dict[str, str]:
        platform: dict[str, str] = {}
        for key, value in section.items():
            key_path = child(path, str(key))
            if not isinstance(key, str):
                self.problems.add(key_path, f"an attribute name must be a string, got {describe(key)}")
                continue
            if value is None:
                platform[key] = "*"
                continue
            text = expect_text(value, key_path, self.problems)
            if text is None:
                continue
            problem = platform_value_problem(text)
            if problem is not None:
                self.problems.add(key_path, problem)
            platform[key] = text
        return platform

    def _artifacts(self, fields: Fields) -> tuple[Artifact, ...]:
        artifacts = []
        first_use: dict[str, int] = {}
        for index, raw in enumerate(fields.sequence("Artifacts")):
            path = item(fields.path_of("Artifacts"), index)
            artifact = self._artifact(raw, path)
            if artifact is None:
                continue
            artifacts.append(artifact)
            if artifact.uri.casefold().startswith("docker:"):
                continue  # an image reference, not a file in the artifacts directory
            file_name = artifact.file_name
            if not file_name:
                self.problems.add(child(path, "Uri"), f"names no file, got {describe(artifact.uri)}")
            elif file_name in first_use:
                self.problems.add(
                    child(path, "Uri"),
                    f"file name {file_name!r} is already used by Artifacts[{first_use[file_name]}] "
                    "(file names must be unique within a manifest)",
                )
            else:
                first_use[file_name] = index
        return tuple(artifacts)

    def _artifact(self, value: Any, path: str) -> Artifact | None:
        mapping = expect_mapping(value, path, self.problems)
        if mapping is None:
            return None
        fields = Fields(mapping, path, self.problems)
        uri = fields.text("Uri", required=True)
        if uri is not None and not uri.strip():
            self.problems.add(fields.path_of("Uri"), "must not be empty")
            uri = None
        digest = fields.text("Digest")
        if digest is not None and (not digest or not _BASE64.fullmatch(digest)):
            self.problems.add(
                fields.path_of("Digest"), f"expected padded base64 text, got {describe(digest)}"
            )
        algorithm = fields.text("Algorithm")
        if algorithm is not None and not algorithm.strip():
            self.problems.add(fields.path_of("Algorithm"), "must not be empty")
        unarchive = fields.choice("Unarchive", Unarchive, Unarchive.NONE)
        permission = ArtifactPermission()
        section = fields.mapping("Permission")
        if section is not None:
            permission_fields = Fields(section, fields.path_of("Permission"), self.problems)
            permission = ArtifactPermission(
                read=permission_fields.choice("Read", PermissionLevel, PermissionLevel.OWNER),
                execute=permission_fields.choice("Execute", PermissionLevel, PermissionLevel.NONE),
            )
        if uri is None:
            return None
        return Artifact(
            uri=uri,
            digest=digest,
            algorithm=algorithm or "SHA-256",
            unarchive=unarchive,
            permission=permission,
        )


class _JsonCopier:
    """Copies ``DefaultConfiguration`` into plain JSON values, reporting anything JSON cannot hold."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        self.budget = MAX_CONFIGURATION_VALUES

    def copy(self, value: Any, path: str, depth: int = 0) -> Any:
        self.budget -= 1
        if self.budget < 0:
            if self.budget == -1:
                self.problems.add(
                    path, f"the configuration holds more than {MAX_CONFIGURATION_VALUES} values"
                )
            return None
        if depth > MAX_CONFIGURATION_DEPTH:
            self.problems.add(path, f"is nested more than {MAX_CONFIGURATION_DEPTH} levels deep")
            return None
        if value is None or isinstance(value, str | bool | int | float):
            return value
        if isinstance(value, Mapping):
            result: dict[str, Any] = {}
            for key, inner in value.items():
                if not isinstance(key, str):
                    self.problems.add(path, f"configuration keys must be strings, got {describe(key)}")
                    continue
                result[key] = self.copy(inner, child(path, key), depth + 1)
            return result
        if isinstance(value, list | tuple):
            return [self.copy(inner, item(path, index), depth + 1) for index, inner in enumerate(value)]
        self.problems.add(path, f"expected a JSON value, got {describe(value)}")
        return None

"""The component store under ``ROOT/packages``: recipes and artifacts of every installed component version.

Installing copies a recipe and its artifacts in, checks each artifact's digest when the recipe gives one,
unarchives ZIP artifacts and sets the permissions the recipe asks for. Every function here blocks (file
system); the deployment service calls them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from edgewise.recipe import Artifact, Manifest, PermissionLevel, Recipe, RecipeError, Unarchive, load_recipe
from edgewise.runtime.deployment.errors import PackageError
from edgewise.runtime.paths import RootPaths

logger = logging.getLogger(__name__)

_HASHES = {"SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512", "SHA-1": "sha1", "MD5": "md5"}
RECIPE_SUFFIXES = (".yaml", ".yml", ".json")


def file_digest(path: Path, algorithm: str = "SHA-256") -> str:
    """The base64 digest of a file, as recipes write it (``Digest`` with ``Algorithm``)."""
    name = _HASHES.get(algorithm.upper())
    if name is None:
        raise PackageError(f"Unsupported artifact digest algorithm {algorithm!r} (use SHA-256)")
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, name)
    return base64.b64encode(digest.digest()).decode("ascii")


def read_recipe_dir(directory: Path) -> dict[str, list[tuple[Recipe, bytes]]]:
    """Every recipe in a directory (``*.yaml``, ``*.yml``, ``*.json``), by component name.

    Raises:
        PackageError: a recipe file is invalid; the message names the file and every problem.
    """
    found: dict[str, list[tuple[Recipe, bytes]]] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() not in RECIPE_SUFFIXES or not path.is_file():
            continue
        text = path.read_bytes()
        try:
            recipe = load_recipe(path)
        except RecipeError as exc:
            raise PackageError(f"Invalid recipe {path}:\n{exc}") from exc
        found.setdefault(recipe.name, []).append((recipe, text))
    return found


def _mode(permission_read: PermissionLevel, permission_execute: PermissionLevel) -> int:
    mode = stat.S_IWUSR
    if permission_read is not PermissionLevel.NONE or permission_execute is not PermissionLevel.NONE:
        mode |= stat.S_IRUSR
    if PermissionLevel.ALL in (permission_read, permission_execute):
        mode |= stat.S_IRGRP | stat.S_IROTH
    if permission_execute is not PermissionLevel.NONE:
        mode |= stat.S_IXUSR
    if permission_execute is PermissionLevel.ALL:
        mode |= stat.S_IXGRP | stat.S_IXOTH
    return mode


class ComponentStore:
    """Installed component versions: recipes in ``packages/recipes``, artifacts beside them."""

    def __init__(self, paths: RootPaths) -> None:
        self._paths = paths

    def recipe_path(self, name: str, version: str) -> Path:
        return self._paths.recipes_dir / f"{name}@{version}.recipe.yaml"

    def recipes(self) -> dict[str, list[Recipe]]:
        """Every installed recipe, by component name."""
        found: dict[str, list[Recipe]] = {}
        for path in sorted(self._paths.recipes_dir.glob("*.recipe.yaml")):
            try:
                recipe = load_recipe(path)
            except RecipeError as exc:
                logger.error("Ignoring the invalid installed recipe %s: %s", path, exc)
                continue
            found.setdefault(recipe.name, []).append(recipe)
        return found

    def recipe(self, name: str, version: str) -> Recipe | None:
        path = self.recipe_path(name, version)
        return load_recipe(path) if path.exists() else None

    def install(self, recipe: Recipe, text: bytes, manifest: Manifest, artifacts_source: Path | None) -> None:
        """Install one component version: its artifacts first, then its recipe (so a recipe present in the
        store always has its artifacts)."""
        target = self._paths.component_artifacts(recipe.name, recipe.version)
        target.mkdir(parents=True, exist_ok=True)
        source = artifacts_source / recipe.name / recipe.version if artifacts_source else None
        for artifact in manifest.artifacts:
            self._install_artifact(recipe, artifact, source, target)
        recipe_path = self.recipe_path(recipe.name, recipe.version)
        if recipe_path.exists() and recipe_path.read_bytes() != text:
            logger.warning(
                "Replacing the installed recipe of %s %s with a different one", recipe.name, recipe.version
            )
        tmp = recipe_path.with_name(f".{recipe_path.name}.tmp")
        tmp.write_bytes(text)
        tmp.replace(recipe_path)

    def _install_artifact(
        self, recipe: Recipe, artifact: Artifact, source: Path | None, target: Path
    ) -> None:
        name = artifact.file_name
        if not name or name in (".", "..") or "/" in name:
            raise PackageError(
                f"Artifact URI {artifact.uri!r} of {recipe.name} {recipe.version} has no file name"
            )
        installed = target / name
        candidate = source / name if source is not None else None
        if candidate is not None and candidate.is_file():
            self._check_digest(recipe, artifact, candidate)
            tmp = target / f".{name}.tmp"
            shutil.copyfile(candidate, tmp)
            tmp.replace(installed)
        elif installed.is_file():
            self._check_digest(recipe, artifact, installed)
        else:
            where = source if source is not None else "no artifact directory was given"
            raise PackageError(
                f"Artifact {name!r} of {recipe.name} {recipe.version} (URI {artifact.uri}) not found: {where}"
            )
        installed.chmod(_mode(artifact.permission.read, artifact.permission.execute))
        if artifact.unarchive is Unarchive.ZIP:
            self._unzip(recipe, artifact, installed)

    @staticmethod
    def _check_digest(recipe: Recipe, artifact: Artifact, path: Path) -> None:
        if not artifact.digest:
            return
        actual = file_digest(path, artifact.algorithm)
        if actual != artifact.digest:
            raise PackageError(
                f"Artifact {artifact.file_name!r} of {recipe.name} {recipe.version} has digest {actual}, "
                f"but the recipe expects {artifact.digest} ({artifact.algorithm})"
            )

    def _unzip(self, recipe: Recipe, artifact: Artifact, archive: Path) -> None:
        stem = PurePosixPath(artifact.file_name).stem
        destination = self._paths.component_unarchived(recipe.name, recipe.version) / stem
        staging = destination.with_name(f".{stem}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        file_mode = _mode(artifact.permission.read, artifact.permission.execute)
        try:
            with zipfile.ZipFile(archive) as bundle:
                for member in bundle.infolist():
                    parts = PurePosixPath(member.filename).parts
                    if member.filename.startswith("/") or ".." in parts:
                        raise PackageError(
                            f"Archive {artifact.file_name!r} of {recipe.name} {recipe.version} has an entry "
                            f"outside its directory: {member.filename!r}"
                        )
                    bundle.extract(member, staging)
                    extracted = staging / member.filename
                    if not member.is_dir():
                        extracted.chmod(file_mode)
        except zipfile.BadZipFile as exc:
            raise PackageError(
                f"Artifact {artifact.file_name!r} of {recipe.name} {recipe.version} is not a ZIP"
            ) from exc
        for directory, _dirs, _files in os.walk(staging):
            Path(directory).chmod(0o755)
        shutil.rmtree(destination, ignore_errors=True)
        staging.replace(destination)

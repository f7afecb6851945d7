"""The component store under ``ROOT/packages``: recipes and artifacts of every installed component version.

Installing copies a recipe and its artifacts in (for local deployments the component version's whole artifact
folder, :mod:`~edgewise.runtime.deployment.copying`), checks each artifact's digest when the recipe gives one,
unarchives ZIP artifacts within the configured limits (:mod:`~edgewise.runtime.deployment.archives`) and sets
the permissions the recipe asks for. Every function here blocks (file system); the deployment service calls
them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import base64
import logging
import shutil
import stat
from pathlib import Path, PurePosixPath

from edgewise.recipe import Artifact, Manifest, PermissionLevel, Recipe, RecipeError, Unarchive
from edgewise.runtime.deployment.archives import FreeSpace, check_free_space, disk_free, extract_zip
from edgewise.runtime.deployment.copying import ArtifactFolder, copy_file
from edgewise.runtime.deployment.errors import PackageError
from edgewise.runtime.paths import RootPaths
from edgewise.runtime.settings import ArtifactLimits

logger = logging.getLogger(__name__)

_HASHES = {"SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512", "SHA-1": "sha1", "MD5": "md5"}
RECIPE_SUFFIXES = (".yaml", ".yml", ".json")


def file_digest(path: Path, algorithm: str = "SHA-256") -> str:
    """The base64 digest of a file, as recipes write it (``Digest`` with ``Algorithm``)."""
    name = _HASHES.get(algorithm.upper())
    if name is None:
        raise PackageError(f"Unsupported artifact digest algorithm {algorithm!r} (use SHA-256)")
    # On first use: hashlib loads OpenSSL's libcrypto (3.4 MiB resident), which an idle runtime does without.
    import hashlib

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
            recipe = _load_recipe(path)
        except RecipeError as exc:
            raise PackageError(f"Invalid recipe {path}:\n{exc}") from exc
        found.setdefault(recipe.name, []).append((recipe, text))
    return found


def _load_recipe(path: Path) -> Recipe:
    """Read a recipe file. Blocks. Recipe parsing (PyYAML, node-semver) is imported on first use, off the start."""
    from edgewise.recipe import load_recipe

    return load_recipe(path)


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


def _first_missing(path: Path) -> Path | None:
    """The outermost directory of ``path`` that does not exist yet: what to remove if installing fails."""
    missing = None
    while not path.exists():
        missing, path = path, path.parent
    return missing


class ComponentStore:
    """Installed component versions: recipes in ``packages/recipes``, artifacts beside them.

    ``limits`` bound what installing may unpack and copy; ``free_space`` says how much room a directory's disk
    has (replaced in tests).
    """

    def __init__(
        self, paths: RootPaths, *, limits: ArtifactLimits | None = None, free_space: FreeSpace = disk_free
    ) -> None:
        self._paths = paths
        self._limits = limits or ArtifactLimits()
        self._free_space = free_space

    def recipe_path(self, name: str, version: str) -> Path:
        return self._paths.recipes_dir / f"{name}@{version}.recipe.yaml"

    def recipes(self) -> dict[str, list[Recipe]]:
        """Every installed recipe, by component name."""
        found: dict[str, list[Recipe]] = {}
        for path in sorted(self._paths.recipes_dir.glob("*.recipe.yaml")):
            try:
                recipe = _load_recipe(path)
            except RecipeError as exc:
                logger.error("Ignoring the invalid installed recipe %s: %s", path, exc)
                continue
            found.setdefault(recipe.name, []).append(recipe)
        return found

    def recipe(self, name: str, version: str) -> Recipe | None:
        path = self.recipe_path(name, version)
        return _load_recipe(path) if path.exists() else None

    def install(
        self,
        recipe: Recipe,
        text: bytes,
        manifest: Manifest,
        artifacts_source: Path | None,
        *,
        copy_unlisted: bool = True,
    ) -> None:
        """Install one component version: its artifacts first, then its recipe (so a recipe present in the
        store always has its artifacts). Blocks.

        With ``copy_unlisted`` (local deployments), everything in ``<artifacts_source>/<name>/<version>/`` is
        copied, as ``greengrass-cli --artifactDir`` does; the listed artifacts also get their digest check,
        permissions and unarchiving. Without it (fleet deployments, whose source is the download staging) only
        the listed artifacts are.

        Raises:
            PackageError: an artifact is missing, has the wrong digest, is a link out of its folder, is a ZIP
                that breaks a limit, or does not fit on the disk. A version directory this call created is
                removed again.
        """
        target = self._paths.component_artifacts(recipe.name, recipe.version)
        unarchived = self._paths.component_unarchived(recipe.name, recipe.version)
        created = [top for top in (_first_missing(target), _first_missing(unarchived)) if top is not None]
        try:
            target.mkdir(parents=True, exist_ok=True)
            folder = (
                ArtifactFolder(artifacts_source, recipe.name, recipe.version) if artifacts_source else None
            )
            unlisted = None
            if copy_unlisted and folder is not None and folder.exists():
                # Gathered first: a link out of the folder or a folder too big fails before anything is written.
                unlisted = folder.gather(skip={artifact.file_name for artifact in manifest.artifacts})
                check_free_space(
                    unlisted.size,
                    target,
                    limits=self._limits,
                    free_space=self._free_space,
                    what=f"The artifact folder of {recipe.name} {recipe.version}",
                )
            for artifact in manifest.artifacts:
                self._install_artifact(recipe, artifact, folder, target)
            if unlisted is not None:
                unlisted.write(target)
            self._write_recipe(recipe, text)
        except OSError as exc:
            self._remove(created)
            # A full disk or a file in the way is the deployment's failure, reported with its cause, not an
            # internal error.
            raise PackageError(f"{recipe.name} {recipe.version} could not be installed: {exc}") from exc
        except BaseException:
            self._remove(created)
            raise

    def _write_recipe(self, recipe: Recipe, text: bytes) -> None:
        recipe_path = self.recipe_path(recipe.name, recipe.version)
        if recipe_path.exists() and recipe_path.read_bytes() != text:
            logger.warning(
                "Replacing the installed recipe of %s %s with a different one", recipe.name, recipe.version
            )
        tmp = recipe_path.with_name(f".{recipe_path.name}.tmp")
        try:
            tmp.write_bytes(text)
            tmp.replace(recipe_path)
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _remove(directories: list[Path]) -> None:
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)

    def _install_artifact(
        self, recipe: Recipe, artifact: Artifact, folder: ArtifactFolder | None, target: Path
    ) -> None:
        name = artifact.file_name
        if not name or name in (".", "..") or "/" in name:
            raise PackageError(
                f"Artifact URI {artifact.uri!r} of {recipe.name} {recipe.version} has no file name"
            )
        installed = target / name
        mode = _mode(artifact.permission.read, artifact.permission.execute)
        candidate = folder.file(name) if folder is not None else None
        if candidate is not None:
            self._check_digest(recipe, artifact, candidate)
            check_free_space(
                candidate.stat().st_size,
                target,
                limits=self._limits,
                free_space=self._free_space,
                what=f"Artifact {name!r} of {recipe.name} {recipe.version}",
            )
            copy_file(candidate, installed, mode)
        elif installed.is_file() and not installed.is_symlink():
            self._check_digest(recipe, artifact, installed)
            installed.chmod(mode)
        else:
            where = folder.path if folder is not None else "no artifact directory was given"
            raise PackageError(
                f"Artifact {name!r} of {recipe.name} {recipe.version} (URI {artifact.uri}) not found: {where}"
            )
        if artifact.unarchive is Unarchive.ZIP:
            extract_zip(
                installed,
                self._paths.component_unarchived(recipe.name, recipe.version) / PurePosixPath(name).stem,
                file_mode=mode,
                limits=self._limits,
                free_space=self._free_space,
                what=f"Artifact {name!r} of {recipe.name} {recipe.version}",
            )

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

"""Where a deployment's components come from: the recipes a source offers, and installing the chosen ones.

A deployment resolves over the component versions installed in the component store plus what its source
offers. A local deployment's source is its recipe and artifact directories (:class:`LocalSource`); a fleet
deployment's is the cloud (``edgewise.runtime.fleet.source.CloudSource``, attached by the fleet agent). The
deployment service asks the source for an :class:`Offer` (stage *resolve*), installs the versions chosen from
it (stage *prepare*), and tells the source to :meth:`~ComponentSource.abandon` its work when the deployment is
cancelled meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from edgewise.recipe import Recipe, select_manifest
from edgewise.runtime.deployment.document import DeploymentDocument
from edgewise.runtime.deployment.packages import ComponentStore, read_recipe_dir

T = TypeVar("T")


class Offer(Protocol):
    """What a source offers one deployment."""

    @property
    def recipes(self) -> Mapping[str, Sequence[Recipe]]:
        """The offered recipes by component name; each replaces an installed recipe of the same version."""
        ...

    async def install(self, chosen: Mapping[str, Recipe]) -> None:
        """Put the offered versions among ``chosen`` into the component store, artifacts first.

        Raises:
            DeploymentError: an artifact is missing, cannot be downloaded or has the wrong digest.
        """
        ...


class ComponentSource(Protocol):
    """Where candidate recipes and their artifacts come from. Called from the event loop."""

    async def offer(self, document: DeploymentDocument) -> Offer:
        """The recipes this source has for ``document``.

        Raises:
            DeploymentError: the recipes cannot be read or fetched.
        """
        ...

    def abandon(self) -> None:
        """Stop the work in progress (the deployment was cancelled): a download or a request ends soon."""
        ...


async def run_to_completion(function: Callable[..., T], *args: object) -> T:
    """Run a blocking ``function`` in a thread. A cancellation waits for the thread to end (the source was told
    to abandon its work, so it ends soon) before it propagates: no installation runs on behind the
    deployment's back."""
    thread = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        return await asyncio.shield(thread)
    except asyncio.CancelledError:
        await asyncio.wait([thread])
        if not thread.cancelled():
            thread.exception()  # retrieved: the cancellation is what the caller hears about
        raise


class _DirectoryOffer:
    """The recipes of a local deployment's recipe directory, installed from its artifact directory."""

    def __init__(
        self,
        found: Mapping[str, list[tuple[Recipe, bytes]]],
        *,
        store: ComponentStore,
        platform: Mapping[str, str],
        artifacts_dir: Path | None,
    ) -> None:
        self._found = found
        self._store = store
        self._platform = platform
        self._artifacts_dir = artifacts_dir

    @property
    def recipes(self) -> Mapping[str, Sequence[Recipe]]:
        return {name: [recipe for recipe, _ in found] for name, found in self._found.items()}

    async def install(self, chosen: Mapping[str, Recipe]) -> None:
        await run_to_completion(self._install, chosen)

    def _install(self, chosen: Mapping[str, Recipe]) -> None:
        texts = {
            (recipe.name, recipe.version): text for found in self._found.values() for recipe, text in found
        }
        for name, recipe in chosen.items():
            manifest = select_manifest(recipe, self._platform)
            text = texts.get((name, recipe.version))
            if manifest is not None and text is not None:
                self._store.install(recipe, text, manifest, self._artifacts_dir)


class LocalSource:
    """A local deployment's ``recipeDirectoryPath`` and ``artifactsDirectoryPath`` (both optional)."""

    def __init__(self, store: ComponentStore, *, platform: Mapping[str, str]) -> None:
        self._store = store
        self._platform = dict(platform)

    async def offer(self, document: DeploymentDocument) -> Offer:
        found = await run_to_completion(read_recipe_dir, document.recipe_dir) if document.recipe_dir else {}
        return _DirectoryOffer(
            found, store=self._store, platform=self._platform, artifacts_dir=document.artifacts_dir
        )

    def abandon(self) -> None:
        """Nothing to stop: copying from a local directory is short."""

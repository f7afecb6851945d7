"""The cloud as the component source of fleet deployments: recipes of the dependency closure asked of the cloud
(:mod:`.resolve`), artifacts downloaded from the signed URLs it gave (:mod:`.download`).

The fleet agent creates it without I/O and attaches it to the deployment service before the service starts;
it fetches nothing before :meth:`CloudSource.started` (the agent's start: the download TLS context is built,
the resolve answers are subscribed to), so a fleet deployment re-queued after a restart waits for that.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence

from edgewise.aws_components import BUILTIN_VERSIONS
from edgewise.recipe import Recipe
from edgewise.runtime.deployment import DeploymentDocument, Offer, run_to_completion
from edgewise.runtime.fleet.download import ArtifactDownloader, install_offer
from edgewise.runtime.fleet.resolve import ComponentCatalog, ComponentOffer, fetch_closure
from edgewise.runtime.paths import RootPaths
from edgewise.runtime.settings import ArtifactLimits


class _CloudOffer:
    """The versions the cloud offered for one deployment, installed by downloading their artifacts."""

    def __init__(
        self, offers: Mapping[str, Mapping[str, ComponentOffer]], install: Callable[[ComponentOffer], None]
    ) -> None:
        self._offers = offers
        self._install = install

    @property
    def recipes(self) -> Mapping[str, Sequence[Recipe]]:
        return {
            name: [offer.recipe for offer in by_version.values()] for name, by_version in self._offers.items()
        }

    async def install(self, chosen: Mapping[str, Recipe]) -> None:
        for name, recipe in sorted(chosen.items()):
            offer = self._offers.get(name, {}).get(recipe.version)
            if offer is not None:
                await run_to_completion(self._install, offer)


class CloudSource:
    """Fleet deployments' recipes and artifacts, from the cloud. Call from the event loop."""

    def __init__(
        self,
        catalog: ComponentCatalog,
        *,
        paths: RootPaths,
        platform: Mapping[str, str],
        limits: ArtifactLimits | None = None,
    ) -> None:
        self._catalog = catalog
        self._paths = paths
        self._platform = dict(platform)
        self._limits = limits
        self._downloader: ArtifactDownloader | None = None
        self._ready = asyncio.Event()

    def started(self, downloader: ArtifactDownloader) -> None:
        """The agent has started: the catalog can be asked, ``downloader`` used."""
        self._downloader = downloader
        self._ready.set()

    async def offer(self, document: DeploymentDocument) -> Offer:
        """Ask the cloud for the dependency closure of the deployment's components (built-ins are not asked).

        Raises:
            ComponentResolveError: the cloud refused, answered something malformed, or did not answer.
        """
        await self._ready.wait()
        assert self._downloader is not None
        self._downloader.reset()  # after a cancelled deployment's abandoned download
        offers = await fetch_closure(document.components_to_add, self._catalog.ask, skip=BUILTIN_VERSIONS)
        install = functools.partial(
            install_offer,
            paths=self._paths,
            platform=self._platform,
            downloader=self._downloader,
            limits=self._limits,
        )
        return _CloudOffer(offers, install)

    def abandon(self) -> None:
        """Stop the download in progress; a catalog request stops with the cancelled deployment's task."""
        if self._downloader is not None:
            self._downloader.cancel()

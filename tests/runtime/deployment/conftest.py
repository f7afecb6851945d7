"""A deployment service on a real root and configuration store, over a fake supervisor that settles at once.

The fake supervisor runs nothing: reconciling marks every stored component RUNNING, or BROKEN when the test
said that version breaks; Bootstrap steps answer what the test scripted. So the service's stages, the stored
tree and the history are real, and a deployment takes milliseconds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edgewise.recipe import Recipe
from edgewise.runtime.config import ConfigStore
from edgewise.runtime.deployment import SERVICES, DeploymentDocument, DeploymentService, Offer
from edgewise.runtime.lifecycle import ComponentSpec, ComponentState, ComponentStatus
from edgewise.runtime.lifecycle.bootstrap import BootstrapAction, BootstrapOutcome
from edgewise.runtime.paths import RootPaths

PLATFORM = {"os": "linux", "architecture": "amd64"}


class FakeSupervisor:
    """The supervisor calls the deployment service makes, with states the test decides."""

    def __init__(self, store: ConfigStore) -> None:
        self._store = store
        self.breaks: set[tuple[str, str]] = set()  #: (name, version) that go BROKEN when started
        self.bootstrap_actions: dict[str, BootstrapAction] = {}  #: what each component's Bootstrap asks for
        self.bootstrapped: list[str] = []
        self.reinstalled: list[set[str]] = []
        self._states: dict[str, ComponentState] = {}
        self._versions: dict[str, str] = {}

    def reconcile(self, reinstall: Collection[str] = ()) -> None:
        """What the kernel's reconcile does to a supervisor: run exactly the stored services."""
        self.reinstalled.append(set(reinstall))
        services: Mapping[str, Any] = self._store.get(SERVICES) or {}
        states = {}
        for name, node in services.items():
            version = node["version"]
            if self._states.get(name) is ComponentState.BROKEN and self._versions.get(name) == version:
                states[name] = ComponentState.RUNNING if name in reinstall else ComponentState.BROKEN
            else:
                broken = (name, version) in self.breaks
                states[name] = ComponentState.BROKEN if broken else ComponentState.RUNNING
            self._versions[name] = version
        self._states = states

    def states(self) -> dict[str, ComponentState]:
        return dict(self._states)

    def status(self, name: str) -> ComponentStatus | None:
        state = self._states.get(name)
        if state is None:
            return None
        failure = "Run exited with code 1" if state is ComponentState.BROKEN else None
        return ComponentStatus(name=name, version=self._versions[name], state=state, last_failure=failure)

    async def wait_settled(
        self, names: Collection[str], *, timeout: float | None, stable_for: float = 0.0
    ) -> dict[str, ComponentState]:
        return {name: self._states.get(name, ComponentState.NEW) for name in names}

    async def bootstrap(self, spec: ComponentSpec) -> BootstrapOutcome:
        self.bootstrapped.append(spec.name)
        action = self.bootstrap_actions.get(spec.name, BootstrapAction.CONTINUE)
        return BootstrapOutcome(action, f"The Bootstrap step of {spec.name} asked to {action.value}")


@dataclass
class Device:
    """A runtime root with its store, the fake supervisor, and a directory of recipes to deploy from."""

    paths: RootPaths
    store: ConfigStore
    supervisor: FakeSupervisor
    recipes: Path
    restarts: list[BootstrapAction] = field(default_factory=list)
    services: list[DeploymentService] = field(default_factory=list)

    def service(self) -> DeploymentService:
        """A deployment service on this root, recovered but not started (as the kernel makes one)."""
        service = DeploymentService(
            self.paths,
            store=self.store,
            supervisor=self.supervisor,
            platform=PLATFORM,
            reconcile=self.supervisor.reconcile,
            restart=self.restarts.append,
        )
        self.services.append(service)
        return service

    def recipe(
        self,
        name: str,
        version: str,
        *,
        dependencies: Mapping[str, str] | None = None,
        bootstrap: bool = False,
    ) -> None:
        lifecycle: dict[str, Any] = {"Run": "sleep 600"}
        if bootstrap:
            lifecycle["Bootstrap"] = "true"
        document = {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": name,
            "ComponentVersion": version,
            "ComponentDependencies": {
                dependency: {"VersionRequirement": requirement}
                for dependency, requirement in (dependencies or {}).items()
            },
            "Manifests": [{"Platform": {"os": "linux"}, "Lifecycle": lifecycle}],
        }
        (self.recipes / f"{name}-{version}.json").write_text(json.dumps(document))

    def document(
        self, deployment_id: str, components: Mapping[str, str], **fields: Any
    ) -> DeploymentDocument:
        fields = {"recipe_dir": self.recipes, "timeout": 5.0, **fields}
        return DeploymentDocument(deployment_id=deployment_id, components_to_add=dict(components), **fields)

    def tree(self) -> dict[str, Any]:
        return {"services": self.store.get(("services",)) or {}, "groups": self.store.get(("groups",)) or {}}

    def versions(self) -> dict[str, str]:
        return {name: node["version"] for name, node in (self.store.get(("services",)) or {}).items()}


@pytest.fixture
async def device(tmp_path: Path) -> AsyncIterator[Device]:
    paths = RootPaths.at(tmp_path / "root")
    paths.create()
    store = ConfigStore.open(paths.config_dir, clock=lambda: 1_000)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    device = Device(paths, store, FakeSupervisor(store), recipes)
    yield device
    for service in device.services:
        await service.close()
    store.close()


class ScriptedSource:
    """A component source for fleet deployments whose offer waits until released, or fails."""

    def __init__(
        self, recipes: Mapping[str, list[Recipe]] | None = None, *, error: Exception | None = None
    ) -> None:
        self._recipes = dict(recipes or {})
        self._error = error
        self.asked = asyncio.Event()
        self.release = asyncio.Event()
        self.abandoned = False

    async def offer(self, document: DeploymentDocument) -> Offer:
        self.asked.set()
        if self._error is not None:
            raise self._error
        await self.release.wait()
        return _Recipes(self._recipes)

    def abandon(self) -> None:
        self.abandoned = True


class _Recipes:
    def __init__(self, recipes: Mapping[str, list[Recipe]]) -> None:
        self.recipes = recipes

    async def install(self, chosen: Mapping[str, Recipe]) -> None:
        """The recipes are used as they are: nothing to copy."""

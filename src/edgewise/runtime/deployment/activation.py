"""Stages *bootstrap*, *activate*, *confirm or roll back*: from a planned tree to running components.

Bootstrap steps run first, before anything changes (a step may ask for a restart or a reboot; what already ran
is kept in ``deployments/bootstrap.json`` so that the deployment goes on after it). Activation is crash-safe:
the previous and the planned tree are written to ``deployments/current.json`` (atomically) before the planned
tree is stored and the supervisor reconciled, so a runtime killed at any point after that finds the file on
start and finishes the activation with no network. Then every component must settle: the deployment succeeds,
or the previous tree is restored exactly (unless the document says ``DO_NOTHING``).
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from edgewise.runtime.config import ConfigStore
from edgewise.runtime.deployment.document import DeploymentDocument, FailureHandlingPolicy
from edgewise.runtime.deployment.history import DeploymentStatus, DetailedStatus, write_json_atomically
from edgewise.runtime.lifecycle import ComponentSpec, ComponentStatus
from edgewise.runtime.lifecycle.bootstrap import BootstrapAction, BootstrapOutcome
from edgewise.runtime.lifecycle.states import ComponentState
from edgewise.runtime.paths import RootPaths
from edgewise.runtime.settings import RUN_STABILITY_SECONDS
from edgewise.runtime.specs import build_specs

logger = logging.getLogger(__name__)

#: Store keys: the running components, and the root components each group asked for.
SERVICES = ("services",)
GROUPS = ("groups",)

#: Makes the supervisor run what the store says; the names given are reinstalled (a BROKEN one revived).
Reconcile = Callable[[Collection[str]], None]
#: Asks the runtime to restart itself or reboot the device (a Bootstrap step exited with 100 or 101).
RestartRequest = Callable[[BootstrapAction], None]


class Supervision(Protocol):
    """What activation needs of the lifecycle supervisor."""

    def states(self) -> dict[str, ComponentState]: ...

    def status(self, name: str) -> ComponentStatus | None: ...

    async def wait_settled(
        self, names: Collection[str], *, timeout: float, stable_for: float = ...
    ) -> dict[str, ComponentState]: ...

    async def bootstrap(self, spec: ComponentSpec) -> BootstrapOutcome: ...


@dataclass(frozen=True)
class Outcome:
    """How a deployment ended."""

    status: DeploymentStatus
    detailed: DetailedStatus | None
    cause: str | None = None
    error_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class Activation:
    """What ``current.json`` holds while a deployment is being activated."""

    document: DeploymentDocument
    previous: dict[str, Any]
    planned: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"document": self.document.to_json(), "previous": self.previous, "planned": self.planned}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Activation:
        return cls(DeploymentDocument.from_json(data["document"]), data["previous"], data["planned"])


class DeploymentActivator:
    """Runs Bootstrap steps, activates a planned tree, waits for it to settle, rolls back. Call from the loop.

    The small JSON files it keeps (``current.json``, ``bootstrap.json``) are written through
    ``asyncio.to_thread``, except in :meth:`recover`, which runs before anything else.
    """

    def __init__(
        self,
        paths: RootPaths,
        *,
        store: ConfigStore,
        supervisor: Supervision,
        reconcile: Reconcile,
        thing_name: str,
        restart: RestartRequest | None,
        run_stability: float = RUN_STABILITY_SECONDS,
    ) -> None:
        self._paths = paths
        self._run_stability = run_stability
        self._store = store
        self._supervisor = supervisor
        self._reconcile = reconcile
        self._thing_name = thing_name
        self._restart = restart
        self._current_file = paths.deployments_dir / "current.json"
        #: The components whose Bootstrap ran for the deployment in progress, kept across a restart or reboot.
        self._bootstrap_file = paths.deployments_dir / "bootstrap.json"

    # -- the stored tree ------------------------------------------------------------------------------

    def read_tree(self) -> dict[str, Any]:
        return {"services": self._store.get(SERVICES) or {}, "groups": self._store.get(GROUPS) or {}}

    def write_tree(self, tree: Mapping[str, Any]) -> None:
        whole = self._store.get() or {}
        whole["services"] = copy.deepcopy(tree.get("services") or {})
        whole["groups"] = copy.deepcopy(tree.get("groups") or {})
        self._store.replace_all(whole)

    # -- crash recovery -------------------------------------------------------------------------------

    def recover(self) -> Activation | None:
        """The activation a crash interrupted, its planned tree stored again; None if there is none. Blocks
        (a small file): called once, before anything runs."""
        if not self._current_file.exists():
            return None
        try:
            activation = Activation.from_json(json.loads(self._current_file.read_text("utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.error("Ignoring an unreadable interrupted deployment %s: %s", self._current_file, exc)
            self._current_file.unlink(missing_ok=True)
            return None
        logger.warning(
            "Resuming deployment %s, interrupted during activation", activation.document.deployment_id
        )
        self.write_tree(activation.planned)
        return activation

    # -- bootstrap ------------------------------------------------------------------------------------

    async def bootstrap(
        self, document: DeploymentDocument, previous: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> Outcome | None:
        """Run the Bootstrap steps the deployment needs, before anything is activated; the outcome when the
        deployment failed, None to go on. A step asking for a restart or a reboot does not return: the runtime
        stops, and the deployment, still IN_PROGRESS in the history, is taken up again when it starts,
        skipping the steps already run."""
        # Imported on first use, as the planning it belongs to: only a deployment needs it, not a start.
        from edgewise.runtime.deployment.plan import bootstrap_order

        names = bootstrap_order(previous.get("services") or {}, planned["services"])
        if not names:
            return None
        done = await asyncio.to_thread(self._read_bootstraps, document.deployment_id)
        specs = build_specs(planned["services"], self._paths, thing_name=self._thing_name)
        for name in names:
            spec = specs[name]
            if done.get(name) == spec.version:
                continue
            outcome = await self._supervisor.bootstrap(spec)
            if outcome.action is BootstrapAction.FAIL:
                return _bootstrap_failed(outcome.reason)
            done[name] = spec.version
            state = {"deploymentId": document.deployment_id, "done": done}
            await asyncio.to_thread(write_json_atomically, self._bootstrap_file, state)
            if outcome.action is BootstrapAction.CONTINUE:
                continue
            if self._restart is None:
                return _bootstrap_failed(f"{outcome.reason}, which this runtime cannot do")
            logger.warning(
                "Deployment %s: %s; the deployment goes on once the runtime is back",
                document.deployment_id,
                outcome.reason,
            )
            self._restart(outcome.action)
            # The runtime is stopping and cancels this worker; nothing else may be deployed meanwhile.
            await asyncio.get_running_loop().create_future()
        return None

    def forget_bootstraps(self) -> None:
        """The deployment ended: the Bootstrap steps of the next one start from scratch. Blocks (briefly)."""
        self._bootstrap_file.unlink(missing_ok=True)

    def _read_bootstraps(self, deployment_id: str) -> dict[str, str]:
        """The components whose Bootstrap already ran for ``deployment_id`` (name → version). Blocks."""
        try:
            state = json.loads(self._bootstrap_file.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            logger.error("Ignoring an unreadable bootstrap record %s: %s", self._bootstrap_file, exc)
            return {}
        if not isinstance(state, dict) or state.get("deploymentId") != deployment_id:
            return {}
        done = state.get("done")
        return {str(key): str(value) for key, value in done.items()} if isinstance(done, dict) else {}

    # -- activate, confirm or roll back ---------------------------------------------------------------

    async def activate(self, activation: Activation) -> None:
        """Record the activation in ``current.json``, then store the planned tree (reconciled by :meth:`settle`)."""
        await asyncio.to_thread(write_json_atomically, self._current_file, activation.to_json())
        self.write_tree(activation.planned)

    async def settle(self, activation: Activation) -> Outcome:
        """Reconcile, wait for every component to settle, and roll back to the previous tree if one does not."""
        document = activation.document
        previous_services: dict[str, Any] = activation.previous.get("services") or {}
        planned_services: dict[str, Any] = activation.planned.get("services") or {}
        broken_before = {
            name
            for name, state in self._supervisor.states().items()
            if state is ComponentState.BROKEN and previous_services.get(name) == planned_services.get(name)
        }
        # A deployment that names a BROKEN root component again is how a user revives it.
        revive = {name for name in broken_before if name in document.components_to_add}
        self._reconcile(revive)
        failures = await self._wait(planned_services, ignore=broken_before - revive, timeout=document.timeout)
        if not failures:
            return Outcome(DeploymentStatus.SUCCEEDED, DetailedStatus.SUCCESSFUL)
        if document.failure_policy is FailureHandlingPolicy.DO_NOTHING:
            return Outcome(
                DeploymentStatus.FAILED,
                DetailedStatus.FAILED_ROLLBACK_NOT_REQUESTED,
                cause=failures,
                error_types=("COMPONENT_BROKEN",),
            )
        logger.warning("Deployment %s failed (%s); rolling back", document.deployment_id, failures)
        self.write_tree(activation.previous)
        self._reconcile(set(previous_services) & set(planned_services))
        rollback_failures = await self._wait(
            previous_services, ignore=broken_before, timeout=document.timeout
        )
        if rollback_failures:
            return Outcome(
                DeploymentStatus.FAILED,
                DetailedStatus.FAILED_UNABLE_TO_ROLLBACK,
                cause=f"{failures}; rollback also failed: {rollback_failures}",
                error_types=("COMPONENT_BROKEN",),
            )
        return Outcome(
            DeploymentStatus.FAILED,
            DetailedStatus.FAILED_ROLLBACK_COMPLETE,
            cause=failures,
            error_types=("COMPONENT_BROKEN",),
        )

    async def close(self) -> None:
        """The activation is over and its outcome recorded: nothing is left to resume after a crash."""
        await asyncio.to_thread(self._current_file.unlink, True)

    async def _wait(
        self, services: Mapping[str, Any], *, ignore: Collection[str], timeout: float
    ) -> str | None:
        """Wait for the components to settle; return a failure reason, or None when all are up."""
        names = [name for name in services if name not in ignore]
        states = await self._supervisor.wait_settled(names, timeout=timeout, stable_for=self._run_stability)
        broken = sorted(name for name, state in states.items() if state is ComponentState.BROKEN)
        unsettled = sorted(name for name, state in states.items() if not state.is_settled)
        reasons = []
        for name in broken:
            status = self._supervisor.status(name)
            detail = f" ({status.last_failure})" if status is not None and status.last_failure else ""
            reasons.append(f"{name} is BROKEN{detail}")
        if unsettled:
            reasons.append(
                "timed out after {:.0f} s waiting for {}".format(
                    timeout, ", ".join(f"{name} ({states[name].value})" for name in unsettled)
                )
            )
        return "; ".join(reasons) or None


def _bootstrap_failed(reason: str) -> Outcome:
    # Nothing was activated yet: the components that ran before keep running, unchanged.
    return Outcome(
        DeploymentStatus.FAILED,
        DetailedStatus.FAILED_NO_STATE_CHANGE,
        cause=reason,
        error_types=("COMPONENT_BOOTSTRAP_ERROR",),
    )

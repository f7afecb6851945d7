"""The deployment service: a queue of deployments, applied one at a time, with rollback and crash recovery.

Apply = resolve → install packages → plan the next ``services`` tree → activate (persist, reconcile the
supervisor) → wait for every component to settle → succeed, or roll back to the previous tree exactly.

Crash safety: before activation the previous and the next tree are written to ``deployments/current.json``
(atomically). A runtime killed at any point after that finds the file on start, re-activates the next tree and
finishes the deployment (success or rollback) with no network. Deployments still queued are re-queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from edgewise.recipe import Recipe, select_manifest
from edgewise.runtime.config import ConfigStore
from edgewise.runtime.deployment.document import DeploymentDocument, FailureHandlingPolicy
from edgewise.runtime.deployment.errors import DeploymentError
from edgewise.runtime.deployment.history import (
    DeploymentHistory,
    DeploymentRecord,
    DeploymentStatus,
    DetailedStatus,
    write_json_atomically,
)
from edgewise.runtime.deployment.hooks import DeploymentHook
from edgewise.runtime.deployment.packages import ComponentStore, read_recipe_dir
from edgewise.runtime.deployment.plan import BUILTIN_VERSIONS, bootstrap_order, plan_services
from edgewise.runtime.deployment.resolution import ResolutionError, resolve, union_group_roots
from edgewise.runtime.lifecycle import LifecycleSupervisor
from edgewise.runtime.lifecycle.bootstrap import BootstrapAction
from edgewise.runtime.lifecycle.states import ComponentState
from edgewise.runtime.paths import RootPaths
from edgewise.runtime.settings import ArtifactLimits
from edgewise.runtime.specs import build_specs, configuration_context

logger = logging.getLogger(__name__)
#: How long a started component must stay RUNNING before a deployment counts it as up: Greengrass checks the
#: states once a second, so a Run process that dies within about a second fails the deployment there too.
RUN_STABILITY_SECONDS = 1.0

#: Store keys: the running components, and the root components each group asked for.
SERVICES = ("services",)
GROUPS = ("groups",)

Reconcile = Callable[[Collection[str]], None]
#: Asks the runtime to restart itself or reboot the device (a Bootstrap step exited with 100 or 101).
RestartRequest = Callable[[BootstrapAction], None]


@dataclass(frozen=True)
class _Activation:
    """What ``current.json`` holds while a deployment is being activated."""

    document: DeploymentDocument
    previous: dict[str, Any]
    planned: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"document": self.document.to_json(), "previous": self.previous, "planned": self.planned}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _Activation:
        return cls(DeploymentDocument.from_json(data["document"]), data["previous"], data["planned"])


class DeploymentService:
    """Queues deployments and applies them one at a time."""

    def __init__(
        self,
        paths: RootPaths,
        *,
        store: ConfigStore,
        supervisor: LifecycleSupervisor,
        platform: Mapping[str, str],
        reconcile: Reconcile,
        thing_name: str = "edgewise-device",
        artifact_limits: ArtifactLimits | None = None,
        restart: RestartRequest | None = None,
    ) -> None:
        self._paths = paths
        self._thing_name = thing_name
        self._restart = restart
        self._store = store
        self._supervisor = supervisor
        self._platform = dict(platform)
        self._reconcile = reconcile
        self._packages = ComponentStore(paths, limits=artifact_limits)
        self._history = DeploymentHistory(paths.deployments_dir / "history")
        self._queue: asyncio.Queue[DeploymentDocument] = asyncio.Queue()
        self._current_file = paths.deployments_dir / "current.json"
        #: The components whose Bootstrap ran for the deployment in progress, kept across a restart or reboot.
        self._bootstrap_file = paths.deployments_dir / "bootstrap.json"
        self._interrupted: _Activation | None = None
        self._cancelled: set[str] = set()
        self._active: str | None = None
        self._activating = False
        self._worker: asyncio.Task[None] | None = None
        self._hooks: list[DeploymentHook] = []
        #: Set when a deployment ends, then replaced: what :meth:`wait_final` waits on.
        self._ended = asyncio.Event()

    def add_hook(self, hook: DeploymentHook) -> None:
        """Attach a service to every later deployment (see :mod:`edgewise.runtime.deployment.hooks`)."""
        self._hooks.append(hook)

    # -- start and stop -------------------------------------------------------------------------------

    def recover(self) -> None:
        """Bring the stored tree back to a consistent state before anything runs. Must be called from the event
        loop before the IPC server starts; it reads and writes a few small files.

        An activation interrupted by a crash is re-activated (its planned tree written again) and finished
        by the worker; deployments that were queued or in progress before activation are queued again.
        """
        if self._current_file.exists():
            try:
                self._interrupted = _Activation.from_json(json.loads(self._current_file.read_text("utf-8")))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.error("Ignoring an unreadable interrupted deployment %s: %s", self._current_file, exc)
                self._current_file.unlink(missing_ok=True)
        if self._interrupted is not None:
            logger.warning(
                "Resuming deployment %s, interrupted during activation",
                self._interrupted.document.deployment_id,
            )
            self._write_tree(self._interrupted.planned)
        for record in self._history.list():
            interrupted_id = self._interrupted.document.deployment_id if self._interrupted else None
            if record.status in (DeploymentStatus.QUEUED, DeploymentStatus.IN_PROGRESS) and (
                record.deployment_id != interrupted_id
            ):
                self._queue.put_nowait(DeploymentDocument.from_json(record.document))
                self._history.save(record.with_status(DeploymentStatus.QUEUED))

    def start(self) -> None:
        """Start the worker. Must be called from the event loop, after :meth:`recover` and the first reconcile."""
        self._worker = asyncio.create_task(self._work(), name="deployment-worker")

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    # -- requests -------------------------------------------------------------------------------------

    def submit(self, document: DeploymentDocument) -> DeploymentRecord:
        """Queue a deployment; returns its QUEUED record."""
        for hook in self._hooks:
            document = hook.redact(document)
        record = DeploymentRecord(
            deployment_id=document.deployment_id,
            created_ms=document.created_ms,
            status=DeploymentStatus.QUEUED,
            document=document.to_json(),
        )
        self._history.save(record)
        self._queue.put_nowait(document)
        logger.info("Deployment %s queued (group %s)", document.deployment_id, document.group)
        return record

    def cancel(self, deployment_id: str) -> str:
        """Cancel a queued deployment, or one not yet activating. Returns a message saying what happened.

        Raises:
            KeyError: no such deployment.
        """
        record = self._history.get(deployment_id)
        if record is None:
            raise KeyError(deployment_id)
        if record.status.is_final:
            return f"Deployment {deployment_id} already ended with status {record.status.value}"
        if deployment_id == self._active and self._activating:
            return f"Deployment {deployment_id} is being activated and can no longer be cancelled"
        self._cancelled.add(deployment_id)
        if deployment_id != self._active:
            self._history.save(record.with_status(DeploymentStatus.CANCELED))
            self._announce_end()
        return f"Deployment {deployment_id} cancelled"

    def get(self, deployment_id: str) -> DeploymentRecord | None:
        return self._history.get(deployment_id)

    async def wait_final(self, deployment_id: str) -> DeploymentRecord | None:
        """The deployment's record once it has ended (succeeded, failed or cancelled); None if unknown."""
        while True:
            record = self._history.get(deployment_id)
            if record is None or record.status.is_final:
                return record
            await self._ended.wait()

    def _announce_end(self) -> None:
        ended, self._ended = self._ended, asyncio.Event()
        ended.set()

    def list(self) -> list[DeploymentRecord]:
        return self._history.list()

    # -- the worker -----------------------------------------------------------------------------------

    async def _work(self) -> None:
        if self._interrupted is not None:
            activation, self._interrupted = self._interrupted, None
            self._active = activation.document.deployment_id
            await self._finish_activation(activation)
        while True:
            self._active = None
            document = await self._queue.get()
            if document.deployment_id in self._cancelled:
                continue
            self._active = document.deployment_id
            try:
                await self._deploy(document)
            except Exception:
                logger.exception("Deployment %s crashed", document.deployment_id)
                self._finish(
                    document,
                    DeploymentStatus.FAILED,
                    DetailedStatus.FAILED_NO_STATE_CHANGE,
                    cause="Internal error; see edgewise.log",
                )
            finally:
                self._activating = False

    def _record(self, document: DeploymentDocument) -> DeploymentRecord:
        record = self._history.get(document.deployment_id)
        if record is None:
            record = DeploymentRecord(
                document.deployment_id,
                document.created_ms,
                DeploymentStatus.QUEUED,
                document=document.to_json(),
            )
        return record

    def _finish(
        self,
        document: DeploymentDocument,
        status: DeploymentStatus,
        detailed: DetailedStatus | None,
        *,
        cause: str | None = None,
        error_types: tuple[str, ...] = (),
    ) -> None:
        record = self._record(document).with_status(status, detailed, cause=cause, error_types=error_types)
        self._history.save(record)
        self._bootstrap_file.unlink(missing_ok=True)
        self._announce_end()
        log = logger.info if status is DeploymentStatus.SUCCEEDED else logger.warning
        log(
            "Deployment %s %s%s",
            document.deployment_id,
            (detailed or status).value,
            f": {cause}" if cause else "",
        )

    async def _deploy(self, document: DeploymentDocument) -> None:
        self._history.save(self._record(document).with_status(DeploymentStatus.IN_PROGRESS))
        logger.info("Deployment %s in progress", document.deployment_id)
        previous = self._read_tree()
        try:
            planned = await asyncio.to_thread(self._prepare, document, previous)
            for hook in self._hooks:
                planned = hook.prepare(document, planned)
            for hook in self._hooks:
                rejection = await hook.validate(document, planned["services"])
                if rejection:
                    raise DeploymentError(rejection, error_types=("COMPONENT_CONFIGURATION_REJECTED",))
        except DeploymentError as exc:
            self._finish(
                document,
                DeploymentStatus.FAILED,
                DetailedStatus.FAILED_NO_STATE_CHANGE,
                cause=str(exc),
                error_types=exc.error_types,
            )
            return
        if document.notify_components:
            for hook in self._hooks:
                await hook.before_update(document)
        if document.deployment_id in self._cancelled:
            self._finish(document, DeploymentStatus.CANCELED, None, cause="Cancelled before activation")
            return
        if not await self._bootstrap(document, previous, planned):
            return
        activation = _Activation(document, previous, planned)
        self._activating = True
        await asyncio.to_thread(write_json_atomically, self._current_file, activation.to_json())
        self._write_tree(planned)
        await self._finish_activation(activation)

    async def _bootstrap(
        self, document: DeploymentDocument, previous: Mapping[str, Any], planned: Mapping[str, Any]
    ) -> bool:
        """Run the Bootstrap steps the deployment needs, before anything is activated; False when the deployment
        failed. A step asking for a restart or a reboot does not return: the runtime stops, and the deployment,
        still IN_PROGRESS in the history, is taken up again when it starts, skipping the steps already run."""
        names = bootstrap_order(previous.get("services") or {}, planned["services"])
        if not names:
            return True
        done = await asyncio.to_thread(self._read_bootstraps, document.deployment_id)
        specs = build_specs(planned["services"], self._paths, thing_name=self._thing_name)
        for name in names:
            spec = specs[name]
            if done.get(name) == spec.version:
                continue
            outcome = await self._supervisor.bootstrap(spec)
            if outcome.action is BootstrapAction.FAIL:
                self._fail_bootstrap(document, outcome.reason)
                return False
            done[name] = spec.version
            state = {"deploymentId": document.deployment_id, "done": done}
            await asyncio.to_thread(write_json_atomically, self._bootstrap_file, state)
            if outcome.action is BootstrapAction.CONTINUE:
                continue
            if self._restart is None:
                self._fail_bootstrap(document, f"{outcome.reason}, which this runtime cannot do")
                return False
            logger.warning(
                "Deployment %s: %s; the deployment goes on once the runtime is back",
                document.deployment_id,
                outcome.reason,
            )
            self._restart(outcome.action)
            # The runtime is stopping and cancels this worker; nothing else may be deployed meanwhile.
            await asyncio.get_running_loop().create_future()
        return True

    def _fail_bootstrap(self, document: DeploymentDocument, reason: str) -> None:
        # Nothing was activated yet: the components that ran before keep running, unchanged.
        self._finish(
            document,
            DeploymentStatus.FAILED,
            DetailedStatus.FAILED_NO_STATE_CHANGE,
            cause=reason,
            error_types=("COMPONENT_BOOTSTRAP_ERROR",),
        )

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

    async def _finish_activation(self, activation: _Activation) -> None:
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
            self._finish(document, DeploymentStatus.SUCCEEDED, DetailedStatus.SUCCESSFUL)
            if document.notify_components:
                for hook in self._hooks:
                    await hook.after_update(document)
        elif document.failure_policy is FailureHandlingPolicy.DO_NOTHING:
            self._finish(
                document,
                DeploymentStatus.FAILED,
                DetailedStatus.FAILED_ROLLBACK_NOT_REQUESTED,
                cause=failures,
                error_types=("COMPONENT_BROKEN",),
            )
        else:
            logger.warning("Deployment %s failed (%s); rolling back", document.deployment_id, failures)
            self._write_tree(activation.previous)
            self._reconcile(set(previous_services) & set(planned_services))
            rollback_failures = await self._wait(
                previous_services, ignore=broken_before, timeout=document.timeout
            )
            detailed = (
                DetailedStatus.FAILED_UNABLE_TO_ROLLBACK
                if rollback_failures
                else (DetailedStatus.FAILED_ROLLBACK_COMPLETE)
            )
            cause = (
                failures
                if not rollback_failures
                else f"{failures}; rollback also failed: {rollback_failures}"
            )
            self._finish(
                document, DeploymentStatus.FAILED, detailed, cause=cause, error_types=("COMPONENT_BROKEN",)
            )
        await asyncio.to_thread(self._current_file.unlink, True)

    async def _wait(
        self, services: Mapping[str, Any], *, ignore: Collection[str], timeout: float
    ) -> str | None:
        """Wait for the components to settle; return a failure reason, or None when all are up."""
        names = [name for name in services if name not in ignore]
        states = await self._supervisor.wait_settled(names, timeout=timeout, stable_for=RUN_STABILITY_SECONDS)
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

    # -- preparation (blocking, in a thread) ----------------------------------------------------------

    def _prepare(self, document: DeploymentDocument, previous: Mapping[str, Any]) -> dict[str, Any]:
        groups: dict[str, dict[str, str]] = copy.deepcopy(previous.get("groups") or {})
        group_roots = {} if document.replace_group_roots else dict(groups.get(document.group) or {})
        for name in document.components_to_remove:
            group_roots.pop(name, None)
        group_roots.update(document.components_to_add)
        unknown = set(document.configuration) - set(group_roots)
        if unknown:
            raise DeploymentError(
                f"componentToConfiguration names {', '.join(sorted(unknown))}, which this deployment does not "
                "deploy as a root component",
                error_types=("REQUEST_ERROR",),
            )
        groups[document.group] = group_roots
        roots = union_group_roots(groups)
        offered = read_recipe_dir(document.recipe_dir) if document.recipe_dir else {}
        candidates: dict[str, list[Recipe]] = {
            name: list(recipes) for name, recipes in self._packages.recipes().items()
        }
        for name, found in offered.items():
            versions = {recipe.version for recipe, _ in found}
            candidates[name] = [r for r in candidates.get(name, []) if r.version not in versions]
            candidates[name] += [recipe for recipe, _ in found]
        try:
            resolution = resolve(roots, candidates, builtins=BUILTIN_VERSIONS)
        except ResolutionError as exc:
            raise DeploymentError(str(exc), error_types=("DEPENDENCY_RESOLUTION_ERROR",)) from exc
        texts = {(recipe.name, recipe.version): text for found in offered.values() for recipe, text in found}
        for name, recipe in resolution.components.items():
            manifest = select_manifest(recipe, self._platform)
            text = texts.get((name, recipe.version))
            if manifest is not None and text is not None:
                self._packages.install(recipe, text, manifest, document.artifacts_dir)
        services = plan_services(
            previous.get("services") or {},
            resolution,
            document,
            roots=roots,
            platform=self._platform,
            context=configuration_context(self._paths, thing_name=self._thing_name),
        )
        return {**copy.deepcopy(dict(previous)), "services": services, "groups": groups}

    # -- the stored tree ------------------------------------------------------------------------------

    def _read_tree(self) -> dict[str, Any]:
        return {"services": self._store.get(SERVICES) or {}, "groups": self._store.get(GROUPS) or {}}

    def _write_tree(self, tree: Mapping[str, Any]) -> None:
        whole = self._store.get() or {}
        whole["services"] = copy.deepcopy(tree.get("services") or {})
        whole["groups"] = copy.deepcopy(tree.get("groups") or {})
        self._store.replace_all(whole)

"""The deployment service: a queue of deployments, each taken through the same stages, one at a time.

Whatever a deployment's origin (a local deployment from the CLI, a fleet deployment from the cloud's jobs), it
goes through, in order (:meth:`DeploymentService._deploy`):

1. resolve (:mod:`.resolving`): the groups' root components after it, and one version of every component
   they need, from the installed recipes and those its source offers (:mod:`.sources`);
2. prepare (:mod:`.preparing`): what the source offers of the chosen versions installed, the next tree
   planned; then the hooks' ``prepare`` (:mod:`.hooks`);
3. validate: components may reject their new configuration (the hooks' ``validate``);
4. notify and defer: components may defer the update (the hooks' ``before_update``);
5. bootstrap, activate, confirm or roll back (:mod:`.activation`).

A failure before activation changes nothing (``FAILED_NO_STATE_CHANGE``). A deployment may be cancelled until it
is activated; one being resolved or prepared is interrupted (its source abandons its downloads). Crash
safety is :mod:`.activation`'s: a runtime killed during activation finishes the deployment when it starts
again; deployments still queued or in progress before activation are queued again.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Mapping
from typing import Any

from edgewise.runtime.config import ConfigStore
from edgewise.runtime.deployment.activation import (
    Activation,
    DeploymentActivator,
    Outcome,
    Reconcile,
    RestartRequest,
    Supervision,
)
from edgewise.runtime.deployment.document import DeploymentDocument
from edgewise.runtime.deployment.errors import DeploymentError
from edgewise.runtime.deployment.history import (
    DeploymentHistory,
    DeploymentRecord,
    DeploymentStatus,
    DetailedStatus,
)
from edgewise.runtime.deployment.hooks import DeploymentHook
from edgewise.runtime.deployment.packages import ComponentStore
from edgewise.runtime.deployment.sources import ComponentSource, LocalSource, run_to_completion
from edgewise.runtime.paths import RootPaths
from edgewise.runtime.settings import RUN_STABILITY_SECONDS, ArtifactLimits
from edgewise.runtime.specs import configuration_context

logger = logging.getLogger(__name__)

_INTERNAL_ERROR = "Internal error; see edgewise.log"
#: What only a deployment needs and its worker threads would otherwise import first (see ``_resolved_and_prepared``).
_DEPLOYMENT_ONLY = ("edgewise.recipe._parse", "nodesemver")


class DeploymentService:
    """Queues deployments and applies them one at a time."""

    def __init__(
        self,
        paths: RootPaths,
        *,
        store: ConfigStore,
        supervisor: Supervision,
        platform: Mapping[str, str],
        reconcile: Reconcile,
        thing_name: str = "edgewise-device",
        artifact_limits: ArtifactLimits | None = None,
        restart: RestartRequest | None = None,
        run_stability: float = RUN_STABILITY_SECONDS,
    ) -> None:
        self._paths = paths
        self._thing_name = thing_name
        self._platform = dict(platform)
        self._packages = ComponentStore(paths, limits=artifact_limits)
        self._local_source = LocalSource(self._packages, platform=platform)
        self._fleet_source: ComponentSource | None = None
        self._activator = DeploymentActivator(
            paths,
            store=store,
            supervisor=supervisor,
            reconcile=reconcile,
            thing_name=thing_name,
            restart=restart,
            run_stability=run_stability,
        )
        self._history = DeploymentHistory(paths.deployments_dir / "history")
        self._queue: asyncio.Queue[DeploymentDocument] = asyncio.Queue()
        self._interrupted: Activation | None = None
        self._cancelled: set[str] = set()
        self._active: str | None = None
        self._activating = False
        #: The resolve and prepare stages of the active deployment, and its source: what a cancel interrupts.
        self._preparing: tuple[asyncio.Task[dict[str, Any]], ComponentSource] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._hooks: list[DeploymentHook] = []
        #: Set when a deployment ends, then replaced: what :meth:`wait_final` waits on.
        self._ended = asyncio.Event()

    def add_hook(self, hook: DeploymentHook) -> None:
        """Attach a service to every later deployment (see :mod:`edgewise.runtime.deployment.hooks`)."""
        self._hooks.append(hook)

    def attach_source(self, source: ComponentSource) -> None:
        """Where fleet deployments (those with a ``configurationArn``) get their recipes and artifacts: the fleet
        agent's cloud source. Without one they resolve over the installed components only."""
        self._fleet_source = source

    # -- start and stop -------------------------------------------------------------------------------

    def recover(self) -> None:
        """Bring the stored tree back to a consistent state before anything runs. Must be called from the event
        loop before the IPC server starts; it reads and writes a few small files.

        An activation interrupted by a crash is re-activated (its planned tree written again) and finished
        by the worker; deployments that were queued or in progress before activation are queued again.
        """
        self._interrupted = self._activator.recover()
        interrupted_id = self._interrupted.document.deployment_id if self._interrupted else None
        for record in self._history.list():
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
        """Cancel a queued deployment, or one not yet activating (its resolution and preparation, downloads
        included, are interrupted). Returns a message saying what happened.

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
        elif self._preparing is not None:
            task, source = self._preparing
            task.cancel()
            source.abandon()
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
            await self._settle(activation)
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
                self._finish(document, _failed_before_activation(DeploymentError(_INTERNAL_ERROR)))
            finally:
                self._activating = False

    async def _deploy(self, document: DeploymentDocument) -> None:
        """The stages, in order; a stage that fails or is cancelled ends the deployment."""
        self._history.save(self._record(document).with_status(DeploymentStatus.IN_PROGRESS))
        logger.info("Deployment %s in progress", document.deployment_id)
        previous = self._activator.read_tree()
        try:
            planned = await self._resolve_and_prepare(document, previous)
            await self._validate(document, planned)
        except asyncio.CancelledError:
            if _being_closed():
                raise
            self._finish(document, _CANCELLED)
            return
        except DeploymentError as exc:
            # Abandoned by a cancelled source, the work in progress may fail: the cancellation is the news.
            cancelled = document.deployment_id in self._cancelled
            self._finish(document, _CANCELLED if cancelled else _failed_before_activation(exc))
            return
        await self._notify_and_defer(document)
        if document.deployment_id in self._cancelled:
            self._finish(document, _CANCELLED)
            return
        failed = await self._activator.bootstrap(document, previous, planned)
        if failed is not None:
            self._finish(document, failed)
            return
        activation = Activation(document, previous, planned)
        self._activating = True
        await self._activator.activate(activation)
        await self._settle(activation)

    async def _resolve_and_prepare(
        self, document: DeploymentDocument, previous: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Stages resolve and prepare, as a task that :meth:`cancel` may interrupt."""
        source = self._source_for(document)
        task = asyncio.create_task(self._resolved_and_prepared(document, previous, source))
        self._preparing = task, source
        try:
            return await task
        finally:
            self._preparing = None

    async def _resolved_and_prepared(
        self, document: DeploymentDocument, previous: Mapping[str, Any], source: ComponentSource
    ) -> dict[str, Any]:
        # Imported on first use, on the event loop's thread: resolution, planning, recipe parsing (PyYAML) and
        # node-semver are only needed once a deployment arrives, and importing them slowed every start. In a
        # worker thread their objects would land in that thread's malloc arena and keep more memory resident.
        for module in _DEPLOYMENT_ONLY:
            importlib.import_module(module)
        from edgewise.runtime.deployment.preparing import prepare
        from edgewise.runtime.deployment.resolving import next_groups, resolve_deployment

        groups = next_groups(document, previous.get("groups") or {})
        offer = await source.offer(document)
        installed = await run_to_completion(self._packages.recipes)
        resolved = await run_to_completion(resolve_deployment, groups, installed, offer.recipes)
        planned = await prepare(
            document,
            previous,
            resolved,
            offer,
            platform=self._platform,
            context=configuration_context(self._paths, thing_name=self._thing_name),
        )
        for hook in self._hooks:
            planned = hook.prepare(document, planned)
        return planned

    async def _validate(self, document: DeploymentDocument, planned: Mapping[str, Any]) -> None:
        """Stage validate: components may reject their new configuration.

        Raises:
            DeploymentError: a component rejected it.
        """
        for hook in self._hooks:
            rejection = await hook.validate(document, planned["services"])
            if rejection:
                raise DeploymentError(rejection, error_types=("COMPONENT_CONFIGURATION_REJECTED",))

    async def _notify_and_defer(self, document: DeploymentDocument) -> None:
        """Stage notify and defer: with ``NOTIFY_COMPONENTS``, components are told and may defer the update."""
        if document.notify_components:
            for hook in self._hooks:
                await hook.before_update(document)

    def _source_for(self, document: DeploymentDocument) -> ComponentSource:
        if document.configuration_arn is not None and self._fleet_source is not None:
            return self._fleet_source
        return self._local_source

    async def _settle(self, activation: Activation) -> None:
        """Confirm or roll back an activated deployment, and record how it ended."""
        document = activation.document
        outcome = await self._activator.settle(activation)
        self._finish(document, outcome)
        if outcome.status is DeploymentStatus.SUCCEEDED and document.notify_components:
            for hook in self._hooks:
                await hook.after_update(document)
        await self._activator.close()

    # -- the history ----------------------------------------------------------------------------------

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

    def _finish(self, document: DeploymentDocument, outcome: Outcome) -> None:
        record = self._record(document).with_status(
            outcome.status, outcome.detailed, cause=outcome.cause, error_types=outcome.error_types
        )
        self._history.save(record)
        self._activator.forget_bootstraps()
        self._announce_end()
        log = logger.info if outcome.status is DeploymentStatus.SUCCEEDED else logger.warning
        log(
            "Deployment %s %s%s",
            document.deployment_id,
            (outcome.detailed or outcome.status).value,
            f": {outcome.cause}" if outcome.cause else "",
        )


_CANCELLED = Outcome(DeploymentStatus.CANCELED, None, cause="Cancelled before activation")


def _failed_before_activation(error: DeploymentError) -> Outcome:
    return Outcome(
        DeploymentStatus.FAILED,
        DetailedStatus.FAILED_NO_STATE_CHANGE,
        cause=str(error),
        error_types=error.error_types,
    )


def _being_closed() -> bool:
    """Whether the running task itself is being cancelled (the service is closing), not just what it awaited."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0

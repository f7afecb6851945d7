"""The device agent: fleet deployments from the cloud's jobs, applied by the runtime's own deployment service.

For each deployment job execution the cloud offers (``describe $next`` on every connection and every
notification): check the document, report IN_PROGRESS, fetch the recipes of the dependency closure and resolve
it over every group the device runs, download and install the artifacts the chosen versions need, submit the
deployment to the :class:`DeploymentService` (notifications, validation, rollback: the same engine as local
deployments), then report SUCCEEDED or FAILED with Greengrass's ``statusDetails``. One execution at a time.

What happens to an execution is kept in the :class:`JobLedger`, so that a runtime killed mid-deployment finishes
it (the deployment service recovers it) and reports it after the restart, and a report made offline waits in
the cloud link's spool; should it still be lost (the cloud's jobs service was not listening yet when the spool
was flushed), the cloud keeps the execution pending and the device reports again when it next asks. A job cancelled in the cloud before activation cancels the deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgewise.recipe import Recipe
from edgewise.runtime.cloudlink import CloudLinkError
from edgewise.runtime.deployment import (
    DeploymentDocument,
    DeploymentError,
    DeploymentRecord,
    DeploymentStatus,
    DetailedStatus,
    parse_fleet_deployment,
)
from edgewise.runtime.deployment.packages import ComponentStore
from edgewise.runtime.deployment.plan import BUILTIN_VERSIONS
from edgewise.runtime.deployment.service import GROUPS
from edgewise.runtime.fleet.download import (
    ArtifactDownloader,
    DownloadSettings,
    artifact_context,
    install_offer,
)
from edgewise.runtime.fleet.errors import FleetDeploymentCanceled
from edgewise.runtime.fleet.jobs import (
    NEXT,
    PENDING,
    JobExecution,
    JobsClient,
    JobsRejection,
    deployment_status_details,
)
from edgewise.runtime.fleet.ledger import JobEntry, JobLedger, JobStage
from edgewise.runtime.fleet.resolve import ComponentCatalog, fetch_closure, resolve_groups
from edgewise.runtime.fleet.status import FleetStatusReporter

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink import CloudLink, CloudSettings
    from edgewise.runtime.config import ConfigStore
    from edgewise.runtime.deployment import DeploymentService
    from edgewise.runtime.lifecycle import LifecycleSupervisor
    from edgewise.runtime.paths import RootPaths

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Resend:
    """A final status to report again for an execution the cloud still shows as pending."""

    execution: JobExecution
    status: str
    details: dict[str, str]


#: Statuses with which the cloud takes an execution away from the device.
_WITHDRAWN = ("CANCELED", "REMOVED")
_GONE = ("ResourceNotFound", "TerminalStateReached")


def deployment_information(
    entry: JobEntry, status: str, details: Mapping[str, str], record: DeploymentRecord | None
) -> dict[str, Any]:
    """The ``deploymentInformation`` of a fleet status message for a finished deployment."""
    return {
        "status": status,
        "fleetConfigurationArnForStatus": entry.configuration_arn or "",
        "deploymentId": entry.deployment_id or "",
        "statusDetails": {
            "detailedStatus": details.get("detailed-deployment-status", ""),
            "failureCause": details.get("deployment-failure-cause", ""),
            "errorStack": list(record.error_stack) if record else [],
            "errorTypes": list(record.error_types) if record else [],
        },
        "unchangedRootComponents": [],
    }


class FleetAgent:
    """Receives, applies and reports fleet deployments; publishes fleet status. Call from the event loop."""

    def __init__(
        self,
        link: CloudLink,
        *,
        thing: str,
        settings: CloudSettings,
        paths: RootPaths,
        store: ConfigStore,
        supervisor: LifecycleSupervisor,
        deployments: DeploymentService,
        platform: Mapping[str, str],
        download_settings: DownloadSettings | None = None,
        resolve_timeout: float = 30.0,
        confirm_interval: float = 10.0,
    ) -> None:
        self._link = link
        self._settings = settings
        self._paths = paths
        self._store = store
        self._deployments = deployments
        self._platform = dict(platform)
        self._download_settings = download_settings
        self._ledger = JobLedger(paths.deployments_dir / "fleet.json")
        self._jobs = JobsClient(
            link,
            thing,
            on_notify=self._notified,
            on_execution=self._described,
            on_rejected=self._rejected,
            on_updated=self._confirmed,
        )
        self._catalog = ComponentCatalog(link, thing, timeout=resolve_timeout)
        self._packages = ComponentStore(paths)
        self.status = FleetStatusReporter(
            link,
            thing=thing,
            platform=platform,
            store=store,
            supervisor=supervisor,
            group_arns=lambda: self._ledger.group_arns,
            interval=settings.fleet.status_interval,
        )
        self._downloader: ArtifactDownloader | None = None
        self._offered: JobExecution | None = None
        self._wake = asyncio.Event()
        #: Job ids to describe (or NEXT), and final reports to send again, in order.
        self._requests: asyncio.Queue[str | _Resend] = asyncio.Queue()
        #: Final reports the cloud has not accepted yet: client token -> job id.
        self._unconfirmed: dict[str, str] = {}
        self._confirm_interval = confirm_interval
        self._current: JobEntry | None = None
        self._cancel_requested = False
        self._tasks: list[asyncio.Task[None]] = []
        self._remove_listener: Callable[[], None] | None = None

    # -- start and stop -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the ledger, subscribe, and start working; returns without waiting for the cloud."""
        await asyncio.to_thread(self._ledger.load)
        cloud = self._settings
        context = await asyncio.to_thread(
            artifact_context, cloud.root_ca, cloud.certificate, cloud.private_key
        )
        self._downloader = ArtifactDownloader(context, self._download_settings)
        await self._jobs.start()
        await self._catalog.start()
        self._remove_listener = self._link.add_status_listener(self._connection_changed)
        await self.status.start()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._run(), name="fleet-agent"))
        self._tasks.append(loop.create_task(self._ask_loop(), name="fleet-agent-requests"))
        self._tasks.append(loop.create_task(self._confirm_loop(), name="fleet-agent-confirmations"))
        if self._link.connected:
            self._ask(NEXT)
        logger.info("Fleet agent started")

    async def close(self) -> None:
        if self._remove_listener is not None:
            self._remove_listener()
        if self._downloader is not None:
            self._downloader.cancel()  # a download in a worker thread stops at once
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.status.close()
        self._jobs.close()
        self._catalog.close()

    # -- what the cloud says --------------------------------------------------------------------------

    def _ask(self, job_id: str) -> None:
        self._requests.put_nowait(job_id)

    async def _ask_loop(self) -> None:
        while True:
            request = await self._requests.get()
            try:
                if isinstance(request, _Resend):
                    logger.info(
                        "Job %s is still pending in the cloud; reporting %s again",
                        request.execution.job_id,
                        request.status,
                    )
                    self._forget_report(request.execution.job_id)
                    token = await self._jobs.update(request.execution, request.status, request.details)
                    self._unconfirmed[token] = request.execution.job_id
                else:
                    await self._jobs.describe(request)
            except CloudLinkError as exc:
                logger.warning("Cannot ask the jobs service about %s: %s", request, exc)

    def _check_reported(self, execution: JobExecution) -> None:
        """Report again an execution whose final status we sent but the cloud still shows as pending: the
        report was lost on its way (the cloud's jobs service was not subscribed yet when the spool was
        flushed after a reconnect, for instance)."""
        entry = self._ledger.get(execution.key)
        if entry is None or entry.stage is not JobStage.REPORTED or entry.status is None:
            return
        if execution.status in PENDING:
            self._requests.put_nowait(_Resend(execution, entry.status, dict(entry.details)))
        else:
            self._forget_report(execution.job_id)

    def _confirmed(self, job_id: str, client_token: str) -> None:
        self._unconfirmed.pop(client_token, None)

    def _forget_report(self, job_id: str) -> None:
        for token in [token for token, job in self._unconfirmed.items() if job == job_id]:
            del self._unconfirmed[token]

    async def _confirm_loop(self) -> None:
        """Ask about every final report the cloud has not accepted within ``confirm_interval`` seconds."""
        while True:
            await asyncio.sleep(self._confirm_interval)
            if self._link.connected:
                for job_id in sorted(set(self._unconfirmed.values())):
                    self._ask(job_id)

    def _connection_changed(self, connected: bool) -> None:
        if connected:
            self._ask(NEXT)  # a device back from offline gets the latest deployment

    def _notified(self, pending: dict[str, list[str]]) -> None:
        current = self._current
        if current is not None and not any(current.job_id in ids for ids in pending.values()):
            self._ask(current.job_id)  # gone from the pending list: cancelled, or just finished?
        self._ask(NEXT)

    def _described(self, requested: str, execution: JobExecution | None) -> None:
        current = self._current
        if requested != NEXT and execution is not None:
            self._check_reported(execution)
        if requested != NEXT:
            withdrawn = execution.status if execution is not None and execution.status in _WITHDRAWN else None
            if current is not None and requested == current.job_id and withdrawn:
                self._cancel(f"the cloud says it is {withdrawn}")
            return
        if execution is None or execution.status not in PENDING:
            if current is not None:
                self._ask(current.job_id)
            return
        if current is not None and execution.key == current.key:
            return
        entry = self._ledger.get(execution.key)
        if entry is not None and entry.stage.is_finished:
            self._check_reported(execution)
            return
        if current is not None:
            self._ask(current.job_id)  # another execution is first now: is ours still wanted?
        self._offered = execution
        self._wake.set()

    def _rejected(self, rejection: JobsRejection) -> None:
        logger.warning(
            "The jobs service rejected %s of job %s: %s %s",
            rejection.operation,
            rejection.job_id,
            rejection.code,
            rejection.message,
        )
        if rejection.job_id in self._unconfirmed.values():
            if rejection.code in _GONE or rejection.code == "InvalidStateTransition":
                self._forget_report(rejection.job_id)  # already final in the cloud: the report did arrive
            elif rejection.operation == "update":
                self._ask(rejection.job_id)  # see what the cloud holds; a pending execution is reported again
        current = self._current
        if current is None or rejection.job_id != current.job_id or current.stage is JobStage.REPORTED:
            return
        if rejection.operation == "get" and rejection.code in _GONE:
            self._cancel(f"the jobs service answers {rejection.code}")
        elif rejection.operation == "update":
            self._ask(current.job_id)

    def _cancel(self, why: str) -> None:
        current = self._current
        if current is None or self._cancel_requested or current.stage is JobStage.REPORTED:
            return
        self._cancel_requested = True
        logger.warning("Job %s was withdrawn (%s); cancelling its deployment", current.job_id, why)
        if current.stage is JobStage.APPLYING and current.deployment_id:
            logger.info("%s", self._deployments.cancel(current.deployment_id))
            return
        self._catalog.abandon(FleetDeploymentCanceled(current.job_id))
        if self._downloader is not None:
            self._downloader.cancel()

    # -- the work -------------------------------------------------------------------------------------

    async def _run(self) -> None:
        for entry in self._ledger.unfinished():
            submitted = entry.deployment_id and self._deployments.get(entry.deployment_id) is not None
            if entry.stage is JobStage.APPLYING and submitted:
                self._current = entry
                try:
                    await self._finish(entry, _execution_of(entry), held=False)
                except Exception:
                    logger.exception("The interrupted deployment job %s could not be reported", entry.job_id)
                finally:
                    self._current = None
                continue
            # Not submitted before the restart: the cloud offers the execution again, and it starts over.
            self._ledger.forget(entry.key)
        while True:
            await self._wake.wait()
            self._wake.clear()
            execution, self._offered = self._offered, None
            if execution is None:
                continue
            try:
                await self._handle(execution)
            except Exception:
                logger.exception("Deployment job %s could not be handled", execution.job_id)
                await self._abandon(execution)
            finally:
                self._current = None
            self._ask(NEXT)

    async def _handle(self, execution: JobExecution) -> None:
        """Apply and report one execution; ``_current`` is it until the caller clears it."""
        self._cancel_requested = False
        entry = self._ledger.get(execution.key)
        if entry is not None and entry.stage is JobStage.APPLYING:
            self._current = entry
            await self._finish(entry, execution, held=False)
            return
        if self._downloader is not None:
            self._downloader.reset()
        entry = self._ledger.begin(
            JobEntry(
                key=execution.key,
                job_id=execution.job_id,
                execution_number=execution.execution_number,
                version=execution.version,
                stage=JobStage.PREPARING,
            )
        )
        self._current = entry
        logger.info("Deployment job %s (execution %s) received", execution.job_id, execution.execution_number)
        try:
            document = parse_fleet_deployment(execution.document)
        except DeploymentError as exc:
            await self._report_failure(entry, execution, exc)
            return
        entry = self._current = self._ledger.update(
            entry,
            deployment_id=document.deployment_id,
            group=document.group,
            configuration_arn=document.configuration_arn,
        )
        await self._jobs.update(execution, "IN_PROGRESS", expected_version=execution.version)
        self.status.hold()
        try:
            await self._prepare(execution, document)
            entry = self._current = self._ledger.update(entry, stage=JobStage.APPLYING)
            # Recorded before submitting: a restart in between finds the deployment, never loses it.
            self._deployments.submit(document)
        except DeploymentError as exc:
            if isinstance(exc, FleetDeploymentCanceled) or self._cancel_requested:
                self._ledger.update(entry, stage=JobStage.CANCELED)
                self.status.deployment_finished(entry.group, None)
                logger.info("Deployment job %s cancelled before activation", execution.job_id)
            else:
                await self._report_failure(entry, execution, exc)
            return
        await self._finish(entry, execution, held=True)

    async def _abandon(self, execution: JobExecution) -> None:
        """After an unexpected error: report the execution failed, so that it is not offered again and again."""
        self.status.release()
        entry = self._current
        if entry is None or entry.stage is not JobStage.PREPARING:
            return  # a submitted deployment is reported when the deployment service ends it (after a restart)
        try:
            await self._report_failure(entry, execution, DeploymentError("Internal error; see edgewise.log"))
        except Exception:
            logger.exception("Deployment job %s could not be reported", execution.job_id)

    async def _prepare(self, execution: JobExecution, document: DeploymentDocument) -> None:
        """Recipes of the closure, resolution over every group, artifacts into the component store."""
        offers = await fetch_closure(document.components_to_add, self._catalog.ask, skip=BUILTIN_VERSIONS)
        installed = await asyncio.to_thread(self._packages.recipes)
        candidates: dict[str, list[Recipe]] = {name: list(recipes) for name, recipes in installed.items()}
        for name, by_version in offers.items():
            kept = [recipe for recipe in candidates.get(name, []) if recipe.version not in by_version]
            candidates[name] = kept + [offer.recipe for offer in by_version.values()]
        groups: dict[str, Any] = dict(self._store.get(GROUPS) or {})
        groups[document.group] = dict(document.components_to_add)
        resolution = resolve_groups(groups, candidates, builtins=BUILTIN_VERSIONS)
        assert self._downloader is not None
        for name, recipe in sorted(resolution.components.items()):
            offer = offers.get(name, {}).get(recipe.version)
            if self._cancel_requested:
                raise FleetDeploymentCanceled(execution.job_id)
            if offer is not None:
                await asyncio.to_thread(
                    install_offer,
                    offer,
                    paths=self._paths,
                    platform=self._platform,
                    downloader=self._downloader,
                )
        if self._cancel_requested:
            raise FleetDeploymentCanceled(execution.job_id)

    async def _finish(self, entry: JobEntry, execution: JobExecution, *, held: bool) -> None:
        """Wait for the submitted deployment to end, then report it."""
        if not held:
            self.status.hold()
        assert entry.deployment_id is not None
        record = await self._deployments.wait_final(entry.deployment_id)
        if record is not None and record.status is DeploymentStatus.CANCELED:
            self._ledger.update(entry, stage=JobStage.CANCELED)
            self.status.deployment_finished(entry.group, None)
            logger.info("Deployment %s cancelled; job %s not reported", entry.deployment_id, entry.job_id)
            return
        if record is None:
            status = "FAILED"
            details = deployment_status_details(
                DetailedStatus.FAILED_NO_STATE_CHANGE.value, cause="The deployment record was lost"
            )
        else:
            status = "SUCCEEDED" if record.status is DeploymentStatus.SUCCEEDED else "FAILED"
            details = deployment_status_details(
                (record.detailed_status or DetailedStatus.FAILED_NO_STATE_CHANGE).value,
                cause=record.failure_cause,
                error_types=record.error_types,
                error_stack=record.error_stack,
            )
        await self._report(entry, execution, status, details, record)

    async def _report_failure(self, entry: JobEntry, execution: JobExecution, error: DeploymentError) -> None:
        """Report a deployment that failed before anything changed on the device."""
        logger.warning("Deployment job %s failed before activation: %s", execution.job_id, error)
        details = deployment_status_details(
            DetailedStatus.FAILED_NO_STATE_CHANGE.value, cause=str(error), error_types=error.error_types
        )
        record = DeploymentRecord(
            deployment_id=entry.deployment_id or "",
            created_ms=0,
            status=DeploymentStatus.FAILED,
        ).with_status(
            DeploymentStatus.FAILED,
            DetailedStatus.FAILED_NO_STATE_CHANGE,
            cause=str(error),
            error_types=error.error_types,
        )
        await self._report(entry, execution, "FAILED", details, record)

    async def _report(
        self,
        entry: JobEntry,
        execution: JobExecution,
        status: str,
        details: dict[str, str],
        record: DeploymentRecord | None,
    ) -> None:
        token = await self._jobs.update(execution, status, details)
        self._unconfirmed[token] = execution.job_id
        entry = self._ledger.update(entry, stage=JobStage.REPORTED, status=status, details=details)
        if self._current is not None and self._current.key == entry.key:
            self._current = entry  # what the cloud says about it from now on is about a finished execution
        information = deployment_information(entry, status, details, record)
        self._ledger.deployment_finished(
            group=entry.group,
            configuration_arn=entry.configuration_arn,
            information=information,
            succeeded=status == "SUCCEEDED",
        )
        self.status.deployment_finished(entry.group, information)


def _execution_of(entry: JobEntry) -> JobExecution:
    """The execution an entry stands for, to report on it after a restart."""
    return JobExecution(entry.job_id, "IN_PROGRESS", entry.version, entry.execution_number, None)

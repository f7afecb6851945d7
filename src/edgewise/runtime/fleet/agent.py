"""The device agent: fleet deployments from the cloud's jobs, applied by the runtime's own deployment service.

One execution at a time, each in as few requests as the protocol allows. While idle the agent asks the cloud to
start the next pending execution (``start-next``: the execution with its document, moved to IN_PROGRESS in the
same request) when it connects and when a notification lists pending executions; it checks the document, submits
the deployment to the :class:`DeploymentService`, waits for it to end, then reports SUCCEEDED or FAILED with
Greengrass's ``statusDetails``. It does not ask again after reporting: the notification the cloud sends when the
execution leaves the pending list says whether another one is pending. While it handles one (or finishes one
interrupted by a restart) it never starts another, so it asks ``describe $next`` instead on a (re)connection
(start-next would move a second execution to IN_PROGRESS should the current one have been cancelled), and a
notification that arrives meanwhile is remembered and acted on when the current one ends. A question about the
next execution left unanswered is asked again every ``confirm_interval`` seconds (the device configuration's
``cloud.fleet.confirmIntervalSeconds``).

The deployment service takes a fleet deployment through the same stages as a local one (resolution over every
group, preparation, validation, notification, activation, rollback); its recipes and artifacts come from the cloud
through the agent's :class:`CloudSource`, which the agent attaches to the service when it is created.

What happens to an execution is kept in the :class:`JobLedger`, so that a runtime killed mid-deployment finishes
it (the deployment service recovers it) and reports it after the restart, and a report made offline waits in
the cloud link's spool; should it still be lost (the cloud's jobs service was not listening yet when the spool
was flushed), the cloud keeps the execution pending and the device reports again when it next asks. A job
cancelled in the cloud before activation cancels the deployment (its downloads and requests to the cloud stop).

A final report is made once and confirmed by its ``update/accepted``, or by the cloud showing the execution final
already (a describe, or an ``InvalidStateTransition`` rejection of the report). An answer that shows the
execution still pending is no proof that the report was lost: the jobs service answers requests concurrently,
so a describe answered just before the report was applied arrives after it. The report is therefore made again
only when it is still unconfirmed and the cloud refused it, or it has had ``confirm_interval`` seconds to be
answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgewise.protocol import health
from edgewise.protocol.jobs import NEXT
from edgewise.protocol.jobs import PENDING_STATUSES as PENDING
from edgewise.runtime.cloudlink import CloudLinkError
from edgewise.runtime.deployment import (
    DeploymentError,
    DeploymentRecord,
    DeploymentStatus,
    DetailedStatus,
    parse_fleet_deployment,
)
from edgewise.runtime.fleet.download import ArtifactDownloader, DownloadSettings, artifact_context
from edgewise.runtime.fleet.jobs import JobExecution, JobsClient, RejectedRequest, deployment_status_details
from edgewise.runtime.fleet.ledger import JobEntry, JobLedger, JobStage
from edgewise.runtime.fleet.resolve import ComponentCatalog
from edgewise.runtime.fleet.source import CloudSource
from edgewise.runtime.fleet.status import FleetStatusReporter
from edgewise.runtime.settings import ArtifactLimits

if TYPE_CHECKING:
    from edgewise.runtime.cloudlink import CloudLink, CloudLinkSettings
    from edgewise.runtime.config import ConfigStore
    from edgewise.runtime.deployment import DeploymentService
    from edgewise.runtime.lifecycle import LifecycleSupervisor
    from edgewise.runtime.paths import RootPaths

logger = logging.getLogger(__name__)


@dataclass
class _Report:
    """A final report the cloud has not confirmed yet."""

    key: str  #: its ledger entry's
    status: str
    tokens: set[str]  #: client tokens of each time it was sent: the answer to any of them confirms it
    sent_at: float  #: event loop time it was last sent, or queued to be sent again
    refused: bool = False  #: the cloud rejected it, not for holding a final status already


@dataclass(frozen=True)
class _Resend:
    """A final status to report again for an execution the cloud still shows as pending."""

    execution: JobExecution
    status: str
    details: dict[str, str]


@dataclass(frozen=True)
class _StartNext:
    """The request for the cloud to start the next pending execution (a describe of ``$next`` while busy)."""


_START_NEXT = _StartNext()

#: Statuses with which the cloud takes an execution away from the device.
_WITHDRAWN = ("CANCELED", "REMOVED")
_GONE = ("ResourceNotFound", "TerminalStateReached")


def deployment_information(
    entry: JobEntry, status: str, details: Mapping[str, str], record: DeploymentRecord | None
) -> dict[str, Any]:
    """The ``deploymentInformation`` of a fleet status message for a finished deployment."""
    return health.deployment_information(
        status=status,
        configuration_arn=entry.configuration_arn or "",
        deployment_id=entry.deployment_id or "",
        detailed_status=details.get("detailed-deployment-status", ""),
        failure_cause=details.get("deployment-failure-cause", ""),
        error_stack=record.error_stack if record else (),
        error_types=record.error_types if record else (),
    )


class FleetAgent:
    """Receives, applies and reports fleet deployments; publishes fleet status. Call from the event loop.

    Creating it does no I/O and attaches its :class:`CloudSource` to ``deployments``: create it before the
    deployment service recovers and starts, and :meth:`start` it after, so that a fleet deployment the service
    re-queues fetches its components once the agent is started, and an interrupted one is reported.
    """

    def __init__(
        self,
        link: CloudLink,
        *,
        thing: str,
        settings: CloudLinkSettings,
        paths: RootPaths,
        store: ConfigStore,
        supervisor: LifecycleSupervisor,
        deployments: DeploymentService,
        platform: Mapping[str, str],
        download_settings: DownloadSettings | None = None,
        artifact_limits: ArtifactLimits | None = None,
        resolve_timeout: float = 30.0,
        confirm_interval: float | None = None,
    ) -> None:
        self._link = link
        self._settings = settings
        self._deployments = deployments
        self._download_settings = download_settings
        self._ledger = JobLedger(paths.deployments_dir / "fleet.json")
        self._jobs = JobsClient(
            link,
            thing,
            on_notify=self._notified,
            on_started=self._started,
            on_execution=self._described,
            on_rejected=self._rejected,
            on_updated=self._confirmed,
        )
        self._catalog = ComponentCatalog(link, thing, timeout=resolve_timeout)
        self._source = CloudSource(self._catalog, paths=paths, platform=platform, limits=artifact_limits)
        deployments.attach_source(self._source)
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
        #: Job ids to describe (or NEXT), start-next, and final reports to send again, in order.
        self._requests: asyncio.Queue[str | _StartNext | _Resend] = asyncio.Queue()
        #: Final reports the cloud has not confirmed yet, by job id.
        self._reports: dict[str, _Report] = {}
        #: None: the device configuration's ``cloud.fleet.confirmIntervalSeconds``.
        self._confirm_interval = (
            settings.fleet.confirm_interval if confirm_interval is None else confirm_interval
        )
        #: When the next execution was last asked for (start-next or ``describe $next``) and not answered yet (a
        #: rejection is no answer: asked again).
        self._next_asked_at: float | None = None
        #: The executions (``JobExecution.key``) of the latest notification that arrived while busy or while the
        #: next execution was being asked for: acted on when the current execution ends (or the question is
        #: answered). Keys rather than job ids: a retry of the job being handled is another execution.
        self._notified_pending: frozenset[str] | None = None
        #: Executions submitted before a restart, finished (and reported) before any other.
        self._recovered: list[JobEntry] = []
        self._current: JobEntry | None = None
        #: The current execution's final report is being sent: a notification without it is no cancellation.
        self._reporting = False
        self._cancel_requested = False
        self._tasks: list[asyncio.Task[None]] = []
        self._remove_listener: Callable[[], None] | None = None

    # -- start and stop -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the ledger, subscribe, and start working; returns without waiting for the cloud."""
        await asyncio.to_thread(self._ledger.load)
        for entry in self._ledger.unfinished():
            submitted = entry.deployment_id and self._deployments.get(entry.deployment_id) is not None
            if entry.stage is JobStage.APPLYING and submitted:
                self._recovered.append(entry)
            else:
                # Not submitted before the restart: the cloud offers the execution again, and it starts over.
                self._ledger.forget(entry.key)
        now = asyncio.get_running_loop().time()
        for entry in self._ledger.unconfirmed():
            # Perhaps still in the cloud link's spool: it gets the usual time to be answered.
            if entry.status is not None:
                self._reports[entry.job_id] = _Report(entry.key, entry.status, set(), now)
        cloud = self._settings
        context = await asyncio.to_thread(
            artifact_context, cloud.root_ca, cloud.certificate, cloud.private_key
        )
        self._downloader = ArtifactDownloader(context, self._download_settings)
        await self._jobs.start()
        await self._catalog.start()
        self._source.started(self._downloader)
        self._remove_listener = self._link.add_status_listener(self._connection_changed)
        await self.status.start()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._run(), name="fleet-agent"))
        self._tasks.append(loop.create_task(self._ask_loop(), name="fleet-agent-requests"))
        self._tasks.append(loop.create_task(self._confirm_loop(), name="fleet-agent-confirmations"))
        if self._link.connected:
            self._ask_next()
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

    def _applying(self) -> JobEntry | None:
        """The current execution while it can still be cancelled: not reported, nor being reported."""
        current = self._current
        if current is None or current.stage is JobStage.REPORTED or self._reporting:
            return None
        return current

    def _busy(self) -> bool:
        """An execution is being handled, or offered and about to be."""
        return self._current is not None or self._offered is not None or bool(self._recovered)

    def _ask_next(self) -> None:
        """Ask for the next pending execution: start-next while idle, ``describe $next`` while busy."""
        self._next_asked_at = asyncio.get_running_loop().time()
        self._requests.put_nowait(NEXT if self._busy() else _START_NEXT)

    async def _ask_loop(self) -> None:
        while True:
            request = await self._requests.get()
            try:
                if isinstance(request, _Resend):
                    report = self._reports.get(request.execution.job_id)
                    if report is None:
                        continue  # confirmed while the request waited
                    logger.info(
                        "Job %s is still pending in the cloud; reporting %s again",
                        request.execution.job_id,
                        request.status,
                    )
                    token = await self._jobs.update(request.execution, request.status, request.details)
                    report.tokens.add(token)
                elif isinstance(request, _StartNext):
                    # Busy since it was asked (an earlier answer offered an execution): never start a second one.
                    if self._busy():
                        await self._jobs.describe(NEXT)
                    else:
                        await self._jobs.start_next()
                else:
                    await self._jobs.describe(request)
            except CloudLinkError as exc:
                logger.warning("Cannot ask the jobs service about %s: %s", request, exc)

    def _check_reported(self, execution: JobExecution) -> None:
        """Compare what the cloud says about an execution we reported with our report.

        A final status confirms the report. A pending one means the report was lost on its way (the cloud's
        jobs service was not subscribed yet when the spool was flushed after a reconnect, for instance) only
        if the report is not confirmed and was refused or has waited ``confirm_interval`` seconds for its
        answer; otherwise the answer may have been made before the report arrived.
        """
        entry = self._ledger.get(execution.key)
        if entry is None or entry.stage is not JobStage.REPORTED or entry.status is None:
            return
        if execution.status not in PENDING:
            self._reports.pop(execution.job_id, None)
            self._mark_confirmed(entry)
            return
        if entry.confirmed:
            logger.debug(
                "Job %s shows as %s in an answer older than its report", entry.job_id, execution.status
            )
            return
        now = asyncio.get_running_loop().time()
        report = self._reports.get(execution.job_id)
        if report is None:
            report = self._reports[execution.job_id] = _Report(entry.key, entry.status, set(), now)
        elif not report.refused and now - report.sent_at < self._confirm_interval:
            return  # the confirm loop asks again once the report has had its time
        # Once per interval, however many answers come: each counts the report from now.
        report.sent_at, report.refused = now, False
        self._requests.put_nowait(_Resend(execution, entry.status, dict(entry.details)))

    def _confirmed(self, job_id: str, client_token: str) -> None:
        report = self._reports.get(job_id)
        if report is not None and client_token in report.tokens:
            self._report_confirmed(job_id)

    def _report_confirmed(self, job_id: str) -> None:
        report = self._reports.pop(job_id, None)
        entry = self._ledger.get(report.key) if report is not None else None
        if entry is not None:
            self._mark_confirmed(entry)

    def _mark_confirmed(self, entry: JobEntry) -> None:
        if not entry.confirmed:
            entry = self._ledger.update(entry, confirmed=True)
            if self._current is not None and self._current.key == entry.key:
                self._current = entry

    def _report_rejected(self, rejection: RejectedRequest) -> bool:
        """Handle a rejection of an unconfirmed final report (or of a describe of its execution); False when
        the rejection is about something else."""
        job_id = rejection.job_id
        report = self._reports.get(job_id)
        if report is None:
            return False
        if rejection.operation == "update":
            # Nothing else is sent for an execution once it is reported; a token, when echoed, must match.
            if rejection.client_token is not None and rejection.client_token not in report.tokens:
                return False
        elif rejection.code not in _GONE:
            return False
        cloud_status = rejection.execution_status
        if rejection.code in _GONE or (
            rejection.code == "InvalidStateTransition" and cloud_status not in PENDING
        ):
            # Final in the cloud already (our report arrived twice) or gone: nothing more to report.
            if cloud_status is None or cloud_status == report.status:
                logger.info(
                    "Job %s is final in the cloud already: its %s report is confirmed", job_id, report.status
                )
            else:
                logger.info(
                    "Job %s is %s in the cloud; it keeps that status rather than our %s",
                    job_id,
                    cloud_status,
                    report.status,
                )
            self._report_confirmed(job_id)
            return True
        logger.warning(
            "The jobs service rejected the %s report of job %s (%s %s); asking for its status to report again",
            report.status,
            job_id,
            rejection.code,
            rejection.message,
        )
        report.refused = True
        self._ask(job_id)  # a pending execution is reported again
        return True

    async def _confirm_loop(self) -> None:
        """Ask about every final report the cloud has not confirmed within ``confirm_interval`` seconds, and
        again for the next pending execution when that question has had as long without an answer."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._confirm_interval)
            if self._link.connected:
                now = loop.time()
                asked = self._next_asked_at
                if asked is not None and now - asked >= self._confirm_interval:
                    # A lost answer would leave a pending execution waiting for the next notification or
                    # reconnection. Asked only while unanswered: an idle fleet sends nothing.
                    self._ask_next()
                for job_id in sorted(self._reports):
                    if now - self._reports[job_id].sent_at >= self._confirm_interval:
                        self._ask(job_id)

    def _connection_changed(self, connected: bool) -> None:
        if connected:
            self._ask_next()  # a device back from offline gets the latest deployment

    def _notified(self, pending: dict[str, list[str]]) -> None:
        listed = frozenset(key for keys in pending.values() for key in keys)
        applying = self._applying()
        if applying is not None and applying.key not in listed:
            self._ask(applying.job_id)  # gone from the pending list while being applied: cancelled?
        if self._busy() or self._next_asked_at is not None:
            # The latest list is the one that counts once the current execution ends or the question is answered.
            self._notified_pending = listed
        elif listed:
            self._ask_next()

    def _started(self, execution: JobExecution | None) -> None:
        """The answer to start-next: the execution to handle now, already IN_PROGRESS in the cloud."""
        self._next_asked_at = None
        notified, self._notified_pending = self._notified_pending, None
        if execution is None or execution.status not in PENDING:
            if notified:
                self._ask_next()  # listed after the question: the answer may have been made before
            return
        # What was listed before is forgotten: it may list executions handled since (a notification sent before
        # their report), and the cloud lists what is still pending when this one leaves the pending list.
        self._offer(execution)

    def _is_new(self, execution: JobExecution) -> bool:
        """Whether ``execution`` is still to be handled: not the current one, nor one reported already (whose
        report is checked against it instead). Asks about the execution being applied, which it is ahead of."""
        current, applying = self._current, self._applying()
        if current is not None and execution.key == current.key:
            return False
        entry = self._ledger.get(execution.key)
        if entry is not None and entry.stage.is_finished:
            self._check_reported(execution)
            return False
        if applying is not None:
            self._ask(applying.job_id)  # another execution is first now: is ours still wanted?
        return True

    def _offer(self, execution: JobExecution) -> None:
        if self._is_new(execution):
            self._offered = execution
            self._wake.set()

    def _described(self, requested: str, execution: JobExecution | None) -> None:
        current = self._current
        if requested == NEXT:
            self._next_asked_at = None
        if requested != NEXT and execution is not None:
            self._check_reported(execution)
        if requested != NEXT:
            withdrawn = execution.status if execution is not None and execution.status in _WITHDRAWN else None
            if current is not None and requested == current.job_id and withdrawn:
                self._cancel(f"the cloud says it is {withdrawn}")
            return
        # ``describe $next`` is asked only while busy: it never offers an execution, which start-next starts.
        applying = self._applying()
        if execution is None or execution.status not in PENDING:
            if applying is not None:
                self._ask(applying.job_id)  # ours is not pending: cancelled?
            elif not self._busy() and self._notified_pending:
                self._notified_pending = None
                self._ask_next()
            return
        if not self._is_new(execution):
            return
        if self._busy():
            self._notified_pending = (self._notified_pending or frozenset()) | {execution.key}
        else:
            self._ask_next()  # idle since it was asked

    def _rejected(self, rejection: RejectedRequest) -> None:
        if self._report_rejected(rejection):
            return
        logger.warning(
            "The jobs service rejected %s of job %s: %s %s",
            rejection.operation,
            rejection.job_id,
            rejection.code,
            rejection.message,
        )
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
            # Stops its preparation too: the downloads and the requests to the cloud end.
            logger.info("%s", self._deployments.cancel(current.deployment_id))
        # Otherwise never submitted: its document was refused, and its failure is being reported.

    # -- the work -------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while self._recovered:
            entry = self._current = self._recovered.pop(0)
            try:
                await self._finish(entry, _execution_of(entry), held=False)
            except Exception:
                logger.exception("The interrupted deployment job %s could not be reported", entry.job_id)
            finally:
                self._current = None
                self._reporting = False
            self._ended(entry.key)
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
                self._reporting = False
            self._ended(execution.key)

    def _ended(self, key: str) -> None:
        """The execution ``key`` is handled. Ask for the next one only if a notification that came meanwhile
        listed another (a retry of the same job included): otherwise the one the cloud sends when ours leaves
        the pending list says."""
        notified, self._notified_pending = self._notified_pending, None
        if self._busy():
            self._notified_pending = notified  # an offered execution comes first
        elif notified is not None and notified - {key}:
            self._ask_next()

    async def _handle(self, execution: JobExecution) -> None:
        """Apply and report one execution; ``_current`` is it until the caller clears it."""
        self._cancel_requested = False
        entry = self._ledger.get(execution.key)
        if entry is not None and entry.stage is JobStage.APPLYING:
            self._current = entry
            await self._finish(entry, execution, held=False)
            return
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
        # IN_PROGRESS already: start-next moved it there. No await from here to the submission, so nothing
        # can cancel it in between.
        entry = self._current = self._ledger.update(
            entry,
            stage=JobStage.APPLYING,
            deployment_id=document.deployment_id,
            group=document.group,
            configuration_arn=document.configuration_arn,
        )
        self.status.hold()
        # Recorded before submitting: a restart in between finds the deployment, never loses it.
        self._deployments.submit(document)
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
        """Report a deployment that failed before it was submitted (nothing changed on the device)."""
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
        self._reporting = True
        token = await self._jobs.update(execution, status, details)
        now = asyncio.get_running_loop().time()
        self._reports[execution.job_id] = _Report(entry.key, status, {token}, now)
        information = deployment_information(entry, status, details, record)
        entry = self._ledger.finish(entry, status=status, details=details, information=information)
        if self._current is not None and self._current.key == entry.key:
            self._current = entry  # what the cloud says about it from now on is about a finished execution
        self.status.deployment_finished(entry.group, information)


def _execution_of(entry: JobEntry) -> JobExecution:
    """The execution an entry stands for, to report on it after a restart."""
    return JobExecution(entry.job_id, "IN_PROGRESS", entry.version, entry.execution_number, None)

"""The training worker: runs queued training jobs as subprocesses and registers the models they produce.

One asyncio task claims QUEUED jobs, at most ``training_concurrency`` at once, every ``poll_interval`` seconds
and whenever :meth:`TrainingWorker.wake` is called (after an API write to ``/training-jobs``). For each job it
writes ``DATA_DIR/training/<job id>/dataset.parquet`` and ``request.json`` and runs
``python -m edgewise.ml.training.job --dataset ... --request ... --out DATA_DIR/training/<job id>/model`` (no
shell, its own process group). The job prints one JSON object per line; ``phase`` and ``candidate`` events are
stored on the job as they come (a line over :data:`LINE_MAX_BYTES` is skipped, at most :data:`MAX_CANDIDATES`
candidates are kept, the best). Its stderr goes to ``DATA_DIR/training/<job id>/job.log`` (the first
:data:`LOG_MAX_BYTES`), which stays there when the job fails; a job that succeeds leaves no files.

When the process exits 0 the ``model`` directory is registered in the model registry
(:func:`edgewise.cloud.models.registry.open_registry`, opened while the job runs: the first opening imports
MLflow and creates its tables, seconds that would otherwise come after the job) and the job SUCCEEDS with the new
version; otherwise it FAILS with the job's own reason (its last ``failed`` event), else the end of its stderr.
A job that proposes an alias (``propose_alias``: a drift retraining's ``challenger``) has it pointed at the new
version before it SUCCEEDS (:func:`edgewise.cloud.drift.retraining.propose`). A job cancelled through
the API, one running past twice its time budget plus :data:`DEADLINE_SLACK_S`, and every job still running when
the worker closes are stopped with SIGTERM, then SIGKILL after :data:`KILL_AFTER_S` seconds. Jobs a crashed cloud
left RUNNING are failed when the worker starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from edgewise.cloud.db import utcnow
from edgewise.cloud.services import CloudServices
from edgewise.cloud.training import service
from edgewise.cloud.training.models import TrainingJob, TrainingStatus

if TYPE_CHECKING:
    from edgewise.ml.registry import ModelRegistry

logger = logging.getLogger(__name__)

TRAINING_DIR: Final = "training"
MODEL_DIR: Final = "model"
DATASET_FILE: Final = "dataset.parquet"
REQUEST_FILE: Final = "request.json"
LOG_FILE: Final = "job.log"
LINE_MAX_BYTES: Final = 1024 * 1024
MAX_CANDIDATES: Final = 1000
KILL_AFTER_S: Final = 5.0
DEADLINE_SLACK_S: Final = 300.0
#: How often a running job's progress is written at most (a candidate can arrive every few milliseconds).
PROGRESS_INTERVAL_S: Final = 0.5
STDERR_TAIL_BYTES: Final = 4096
LOG_MAX_BYTES: Final = 16 * 1024 * 1024
_READ_CHUNK: Final = 64 * 1024
#: The stop reason of a job cancelled through the API (its status says so already).
CANCELLED: Final = "cancelled"


def _score(candidate: dict[str, Any]) -> float:
    score = candidate.get("score")
    return float(score) if isinstance(score, int | float) and score == score else float("-inf")


def best_first(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``candidates`` by score, best first, at most :data:`MAX_CANDIDATES`."""
    return sorted(candidates, key=_score, reverse=True)[:MAX_CANDIDATES]


def _candidate_key(candidate: dict[str, Any]) -> str:
    return json.dumps([candidate.get("learner"), candidate.get("params")], sort_keys=True, default=str)


@dataclass
class _Progress:
    """What a running job has reported so far. A candidate reported again (once its size and latency are
    measured) replaces its first report."""

    phase: str = "starting"
    candidates: dict[str, dict[str, Any]] = field(default_factory=dict)
    failure: str | None = None
    changed: bool = False

    def take(self, event: object) -> None:
        if not isinstance(event, dict):
            return
        kind = event.get("event")
        if kind == "phase" and isinstance(event.get("message"), str):
            self.phase = event["message"]
            self.changed = True
        elif kind == "candidate" and isinstance(event.get("candidate"), dict):
            self.candidates[_candidate_key(event["candidate"])] = event["candidate"]
            if len(self.candidates) > 2 * MAX_CANDIDATES:
                self.candidates = {_candidate_key(kept): kept for kept in self.leaderboard()}
            self.changed = True
        elif kind == "failed" and isinstance(event.get("reason"), str):
            self.failure = event["reason"]

    def leaderboard(self) -> list[dict[str, Any]]:
        """The candidates so far, best first, at most MAX_CANDIDATES."""
        return best_first(list(self.candidates.values()))


async def _json_lines(stream: asyncio.StreamReader, on_event: Callable[[object], None]) -> None:
    """Call ``on_event`` with each line of ``stream`` that is JSON; lines over LINE_MAX_BYTES are skipped."""
    buffer = bytearray()
    skipping = False
    while chunk := await stream.read(_READ_CHUNK):
        buffer += chunk
        while (end := buffer.find(b"\n")) >= 0:
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            if skipping:
                skipping = False
                continue
            if len(line) <= LINE_MAX_BYTES:
                _parse(line, on_event)
        if len(buffer) > LINE_MAX_BYTES:
            buffer.clear()
            skipping = True
    if buffer and not skipping:
        _parse(bytes(buffer), on_event)


def _parse(line: bytes, on_event: Callable[[object], None]) -> None:
    try:
        event = json.loads(line)
    except ValueError:
        logger.debug("training-job-output-not-json line=%.200r", line)
        return
    on_event(event)


async def _stderr_to_log(stream: asyncio.StreamReader, log: Path, tail: deque[bytes]) -> None:
    """Write the job's stderr to ``log`` (its first LOG_MAX_BYTES), keeping its last bytes in ``tail``."""
    written = 0
    with log.open("ab") as output:
        while chunk := await stream.read(_READ_CHUNK):
            if written < LOG_MAX_BYTES:
                output.write(chunk[: LOG_MAX_BYTES - written])
                output.flush()
                written += len(chunk)
            tail.append(chunk)
            while sum(len(part) for part in tail) - len(tail[0]) >= STDERR_TAIL_BYTES:
                tail.popleft()


def _stderr_reason(tail: deque[bytes], returncode: int) -> str:
    text = b"".join(tail)[-STDERR_TAIL_BYTES:].decode("utf-8", "replace").strip()
    if text:
        return f"the training process exited with status {returncode}: {text}"
    return f"the training process exited with status {returncode} and said nothing"


class _RunningJob:
    """One job's process, and why the worker stopped it, if it did."""

    def __init__(self, job: TrainingJob) -> None:
        self.job = job
        self.process: asyncio.subprocess.Process | None = None
        self.stop_reason: str | None = None
        self.stop_requested = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stop_requested.set()


class TrainingWorker:
    """Runs queued training jobs (see the module docstring) until closed."""

    #: What the cloud's logs call this worker.
    name = "training"

    def __init__(self, services: CloudServices, *, poll_interval: float = 2.0) -> None:
        self._services = services
        self._settings = services.settings
        self._poll_interval = poll_interval
        self._root = services.settings.data_dir / TRAINING_DIR
        self._woken = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._running: dict[str, _RunningJob] = {}
        self._stopping = False

    async def start(self) -> None:
        """Fail the jobs a stopped cloud left RUNNING, then start running queued jobs."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        failed = await asyncio.to_thread(self._fail_interrupted)
        if failed:
            logger.warning("training-jobs-interrupted count=%d reason=%r", failed, service.INTERRUPTED)
        self._task = asyncio.create_task(self._run(), name=self.name)
        logger.info("training-worker-started concurrency=%d", self._settings.training_concurrency)

    async def close(self) -> None:
        """Stop every running job's process (those jobs fail: the cloud stopped while they ran), then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._woken.set()
        await task
        running = list(self._running.values())
        for job in running:
            job.stop(service.INTERRUPTED)
        await asyncio.gather(*(job.task for job in running if job.task is not None), return_exceptions=True)

    def wake(self) -> None:
        """Look for queued and cancelled jobs soon; safe to call from any thread."""
        if self._loop is None or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._woken.set)

    def processes(self) -> dict[str, int]:
        """The process id of each running job, by job id."""
        return {
            job_id: job.process.pid
            for job_id, job in self._running.items()
            if job.process is not None and job.process.returncode is None
        }

    def _fail_interrupted(self) -> int:
        with self._services.sessions() as session:
            return service.fail_interrupted(session, now=utcnow())

    async def _run(self) -> None:
        while not self._stopping:
            self._woken.clear()
            try:
                await self._pass()
            except Exception:
                logger.exception("training-worker-pass-failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self._poll_interval)

    async def _pass(self) -> None:
        if self._running:
            current = await asyncio.to_thread(self._statuses, list(self._running))
            for job_id, running in list(self._running.items()):
                if current.get(job_id) is not TrainingStatus.RUNNING:
                    running.stop(CANCELLED)
        while len(self._running) < self._settings.training_concurrency and not self._stopping:
            job = await asyncio.to_thread(self._claim)
            if job is None:
                return
            running = _RunningJob(job)
            self._running[job.id] = running
            running.task = asyncio.create_task(self._run_job(running), name=f"training-{job.id}")

    def _statuses(self, job_ids: list[str]) -> dict[str, TrainingStatus]:
        with self._services.sessions() as session:
            return service.statuses(session, job_ids)

    def _claim(self) -> TrainingJob | None:
        with self._services.sessions() as session:
            return service.claim_next(session, now=utcnow())

    async def _run_job(self, running: _RunningJob) -> None:
        job = running.job
        progress = _Progress()
        try:
            logger.info(
                "training-job-started job=%s model=%s dataset=%s", job.id, job.model_name, job.dataset_name
            )
            await self._execute(running, progress)
        except Exception as exc:
            logger.exception("training-job-error job=%s", job.id)
            await self._finish(
                job, progress, TrainingStatus.FAILED, error=f"the cloud could not run the job: {exc}"
            )
        finally:
            self._running.pop(job.id, None)
            self.wake()

    async def _execute(self, running: _RunningJob, progress: _Progress) -> None:
        job = running.job
        job_dir = self._root / job.id
        model_dir = job_dir / MODEL_DIR
        try:
            await asyncio.to_thread(self._prepare, job, job_dir, model_dir)
        except Exception as exc:
            logger.warning("training-job-prepare-failed job=%s error=%s", job.id, exc)
            await self._finish(
                job, progress, TrainingStatus.FAILED, error=f"the job could not be prepared: {exc}"
            )
            return
        opening = asyncio.create_task(asyncio.to_thread(self._open_registry))
        try:
            try:
                returncode, tail = await self._run_process(running, progress, job_dir, model_dir)
            finally:
                await asyncio.to_thread((job_dir / DATASET_FILE).unlink, missing_ok=True)
            if running.stop_reason == CANCELLED:
                logger.info("training-job-cancelled job=%s", job.id)
                return
            if running.stop_reason is not None:
                await self._finish(job, progress, TrainingStatus.FAILED, error=running.stop_reason)
                return
            if returncode != 0:
                reason = progress.failure or _stderr_reason(tail, returncode)
                logger.info("training-job-failed job=%s reason=%.300s", job.id, reason)
                await self._finish(job, progress, TrainingStatus.FAILED, error=reason)
                return
            await self._register(job, progress, job_dir, model_dir)
        finally:
            # A job that failed or was stopped need not wait for the opening (its thread finishes by itself).
            opening.cancel()
            await asyncio.wait([opening])

    def _open_registry(self) -> None:
        """Open the model registry ahead of registering: a failure here is reported by the registering."""
        from edgewise.cloud.models.registry import open_registry

        try:
            open_registry(self._settings)
        except Exception as exc:
            logger.info("training-registry-not-open error=%s", exc)

    def _prepare(self, job: TrainingJob, job_dir: Path, model_dir: Path) -> None:
        """Write the dataset's bytes and the request where the job reads them."""
        model_dir.mkdir(parents=True, exist_ok=True)
        reader = self._services.artifact_store.open(job.dataset_sha256)
        try:
            with (job_dir / DATASET_FILE).open("wb") as output:
                while chunk := reader.read(_READ_CHUNK * 16):
                    output.write(chunk)
        finally:
            reader.close()
        (job_dir / REQUEST_FILE).write_text(json.dumps(job.request, indent=2), encoding="utf-8")

    async def _run_process(
        self, running: _RunningJob, progress: _Progress, job_dir: Path, model_dir: Path
    ) -> tuple[int, deque[bytes]]:
        """Run the job's process until it exits or is stopped; its exit status and the end of its stderr."""
        job = running.job
        command = [
            sys.executable,
            "-m",
            "edgewise.ml.training.job",
            "--dataset",
            str(job_dir / DATASET_FILE),
            "--request",
            str(job_dir / REQUEST_FILE),
            "--out",
            str(model_dir),
        ]
        # Its own process group, so that stopping it also stops whatever it started (Ray, joblib workers).
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        running.process = process
        assert process.stdout is not None
        assert process.stderr is not None
        tail: deque[bytes] = deque()
        readers = [
            asyncio.create_task(_json_lines(process.stdout, progress.take)),
            asyncio.create_task(_stderr_to_log(process.stderr, job_dir / LOG_FILE, tail)),
        ]
        writer = asyncio.create_task(self._write_progress(job.id, progress))
        exited = asyncio.create_task(process.wait())
        stop_asked = asyncio.create_task(running.stop_requested.wait())
        deadline = 2 * _time_budget(job) + DEADLINE_SLACK_S
        try:
            done, _ = await asyncio.wait(
                {exited, stop_asked}, timeout=deadline, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                running.stop(
                    f"the job ran past its deadline of {deadline:.0f} s "
                    f"(twice its time budget + {DEADLINE_SLACK_S:.0f} s)"
                )
            if not exited.done():
                await _terminate(process, exited)
        finally:
            stop_asked.cancel()
            if not exited.done():
                await _terminate(process, exited)
            # The pipes close with the process group; a reader still blocked after that is given up.
            _, stuck = await asyncio.wait(readers, timeout=KILL_AFTER_S)
            for reader in (*stuck, writer):
                reader.cancel()
            await asyncio.gather(*readers, writer, return_exceptions=True)
        return exited.result(), tail

    async def _write_progress(self, job_id: str, progress: _Progress) -> None:
        """Store the job's phase and leaderboard whenever they changed, at most every PROGRESS_INTERVAL_S."""
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            if progress.changed:
                progress.changed = False
                leaderboard = progress.leaderboard()
                await asyncio.to_thread(self._record_progress, job_id, progress.phase, leaderboard)

    def _record_progress(self, job_id: str, phase: str, leaderboard: list[dict[str, Any]]) -> None:
        with self._services.sessions() as session:
            service.record_progress(session, job_id, phase=phase, leaderboard=leaderboard)

    async def _register(self, job: TrainingJob, progress: _Progress, job_dir: Path, model_dir: Path) -> None:
        """Register the job's model directory as a new version of its model, and record that version."""
        # result.json's leaderboard has the size and latency of each candidate the job exported.
        for candidate in await asyncio.to_thread(_result_leaderboard, model_dir):
            progress.take({"event": "candidate", "candidate": candidate})
        progress.phase = "registering the model"
        await asyncio.to_thread(self._record_progress, job.id, progress.phase, progress.leaderboard())
        try:
            version = await asyncio.to_thread(self._register_blocking, job, job_dir, model_dir)
        except Exception as exc:
            logger.warning("training-job-register-failed job=%s error=%s", job.id, exc)
            await self._finish(
                job, progress, TrainingStatus.FAILED, error=f"registering the model failed: {exc}"
            )
            return
        await self._finish(job, progress, TrainingStatus.SUCCEEDED, model_version=version)
        logger.info("training-job-succeeded job=%s model=%s version=%s", job.id, job.model_name, version)
        await asyncio.to_thread(shutil.rmtree, job_dir, ignore_errors=True)

    def _register_blocking(self, job: TrainingJob, job_dir: Path, model_dir: Path) -> str:
        from edgewise.cloud.models.registry import open_registry

        if not (model_dir / REQUEST_FILE).exists():
            shutil.copyfile(job_dir / REQUEST_FILE, model_dir / REQUEST_FILE)
        registry = open_registry(self._settings)
        info = registry.register_training(
            job.model_name,
            model_dir,
            dataset=job.dataset_name,
            dataset_sha256=job.dataset_sha256,
            job_id=job.id,
        )
        if job.propose_alias is not None:
            self._propose(job, registry, info.version)
        return info.version

    def _propose(self, job: TrainingJob, registry: ModelRegistry, version: str) -> None:
        """Point the alias the job proposes (a drift retraining's ``challenger``) at its version; the version
        stays registered, and the job succeeds, whatever happens to the alias."""
        from edgewise.cloud.drift import retraining

        try:
            with self._services.sessions() as session:
                retraining.propose(session, registry, job, version)
        except Exception:
            logger.exception(
                "training-job-alias-failed job=%s model=%s alias=%s version=%s",
                job.id,
                job.model_name,
                job.propose_alias,
                version,
            )

    async def _finish(
        self,
        job: TrainingJob,
        progress: _Progress,
        status: TrainingStatus,
        *,
        error: str | None = None,
        model_version: str | None = None,
    ) -> None:
        leaderboard = progress.leaderboard()

        def finish() -> bool:
            with self._services.sessions() as session:
                return service.finish(
                    session,
                    job.id,
                    status,
                    now=utcnow(),
                    leaderboard=leaderboard,
                    error=error,
                    model_version=model_version,
                )

        if not await asyncio.to_thread(finish):
            logger.info("training-job-ended-elsewhere job=%s status=%s", job.id, status.value)


def _time_budget(job: TrainingJob) -> float:
    value = job.request.get("timeBudgetS")
    return float(value) if isinstance(value, int | float) else 0.0


def _result_leaderboard(model_dir: Path) -> list[dict[str, Any]]:
    """The leaderboard in the job's ``result.json``; empty when there is none."""
    try:
        result = json.loads((model_dir / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    leaderboard = result.get("leaderboard") if isinstance(result, dict) else None
    if not isinstance(leaderboard, list):
        return []
    return [entry for entry in leaderboard if isinstance(entry, dict)]


async def _terminate(process: asyncio.subprocess.Process, exited: asyncio.Task[int]) -> None:
    """SIGTERM to the process group, SIGKILL after KILL_AFTER_S; returns once the process has exited."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(exited), KILL_AFTER_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await exited

"""One component's state machine, with the transitions of Greengrass's, driven by one asyncio task.

Requests are expressed, as in Greengrass, as a *desired-state list* that the task works through:

    start      [RUNNING]
    restart    [INSTALLED, RUNNING]
    reinstall  [NEW, RUNNING]
    stop       [FINISHED]

Each turn of the task's loop first drops from the head of the list the states already reached, then
runs the handler of the current state, which makes at most one transition or waits once. Whatever
can change a handler's decision (a request, a step process exiting, a reported state, another
component changing state) sets one wake event; handlers check every condition before they wait, and
the event is only cleared after a wait, so no wake-up is lost and nothing needs a lock.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from edgewise.recipe import DependencyType
from edgewise.runtime.lifecycle.cgroups import CgroupLimiter
from edgewise.runtime.lifecycle.errors import LifecycleError, StepError
from edgewise.runtime.lifecycle.logs import ComponentLog
from edgewise.runtime.lifecycle.process import StepProcess
from edgewise.runtime.lifecycle.restart import COUNTED_STATES, ErrorCounter, RestartBackoff
from edgewise.runtime.lifecycle.settings import LifecycleSettings
from edgewise.runtime.lifecycle.spec import ComponentSpec
from edgewise.runtime.lifecycle.states import ComponentState
from edgewise.runtime.lifecycle.status import ComponentStatus
from edgewise.runtime.lifecycle.step import StepLauncher, step_timeout

logger = logging.getLogger(__name__)

NEW = ComponentState.NEW
INSTALLED = ComponentState.INSTALLED
STARTING = ComponentState.STARTING
RUNNING = ComponentState.RUNNING
STOPPING = ComponentState.STOPPING
ERRORED = ComponentState.ERRORED
BROKEN = ComponentState.BROKEN
FINISHED = ComponentState.FINISHED

#: The only reported transitions Greengrass accepts (it ignores others); IPC ``UpdateState`` goes through it.
ACCEPTED_REPORTS: Mapping[ComponentState, frozenset[ComponentState]] = {
    NEW: frozenset({ERRORED}),
    STARTING: frozenset({RUNNING, ERRORED, FINISHED}),
    RUNNING: frozenset({ERRORED, FINISHED}),
    STOPPING: frozenset({ERRORED, FINISHED}),
}

#: States in which a component that is being removed no longer needs its HARD dependencies.
CLOSABLE_STATES = frozenset({NEW, INSTALLED, FINISHED, BROKEN})
#: How much of a failed step's last stderr line its state reason keeps.
_MAX_ERROR_LINE = 400
#: How long a failed step's output may take to be read to its end.
_DRAIN_TIMEOUT = 0.5


class ServiceHost(Protocol):
    """What a component's state machine needs from the supervisor that owns it."""

    def dependency_ready(self, name: str) -> bool:
        """True when HARD dependents of ``name`` may start."""

    def dependers_closable(self, name: str) -> bool:
        """True when every HARD depender of ``name`` that is being removed has stopped."""

    def state_changed(self, service: ComponentService, old: ComponentState, new: ComponentState) -> None:
        """``service`` moved from ``old`` to ``new``."""

    def progressed(self) -> None:
        """Something other than the state changed (a request, a reached desired state)."""


@dataclass(frozen=True)
class _Failure:
    """Why the component is ERRORED, and how many errors of that origin are counted."""

    origin: ComponentState
    reason: str
    errors: int


@dataclass(frozen=True)
class _StepResult:
    ok: bool
    reason: str
    interrupted: bool = False


class ComponentService:
    """Runs one component's lifecycle. All methods must be called from the event loop thread."""

    def __init__(
        self,
        spec: ComponentSpec,
        *,
        settings: LifecycleSettings,
        host: ServiceHost,
        environment: Callable[[ComponentSpec], Mapping[str, str]],
        base_environment: Mapping[str, str],
        clock: Callable[[], float],
    ) -> None:
        self.name = spec.name
        self._spec = spec  #: the spec in effect
        self._pending: ComponentSpec | None = None  #: a newer spec, taken at the next NEW or INSTALLED
        self._started: ComponentSpec | None = None  #: the spec whose Shutdown must run (not a newer one's)
        self._settings = settings
        self._host = host
        self._state = NEW
        self._clock = clock
        self._state_since = clock()  #: when the component entered its current state
        self._desired: list[ComponentState] = [RUNNING]
        self._reason = ""  #: why the last request was made; the reason of the transition it causes
        self._leaving = False
        self._uninstall = False  #: removed by a deployment: run Uninstall once it has stopped
        self._reported: ComponentState | None = None
        self._wake = asyncio.Event()
        self._errors = ErrorCounter(clock)
        self._backoff = RestartBackoff(settings.restart_backoff_base, settings.restart_backoff_cap)
        self._retry_at: float | None = None
        self._failure: _Failure | None = None
        self._processes: list[StepProcess] = []
        self._main: StepProcess | None = None  #: the Startup (in STARTING) or Run process being watched
        self._main_timeout: float | None = None
        self._main_deadline: float | None = None
        self._last_exit_code: int | None = None
        self._last_failure: str | None = None
        self._paused = False  #: its process groups are stopped (SIGSTOP) by a PauseComponent request
        #: How many times a requested NEW or INSTALLED was reached: a restart has taken effect.
        self.restarts = 0
        self.log = ComponentLog(
            settings.log_dir / f"{spec.name}.log",
            max_bytes=settings.log_max_bytes,
            backups=settings.log_backups,
        )
        self._launcher = StepLauncher(
            spec.name,
            work_dir=settings.work_dir / spec.name,
            log=self.log,
            base_environment=base_environment,
            environment=environment,
            default_user=settings.run_as,
            on_exit=self.wake,
            limiter=CgroupLimiter(settings.cgroup_root),
        )

    # --- what the supervisor reads ---------------------------------------------------------------

    @property
    def state(self) -> ComponentState:
        """The current state."""
        return self._state

    @property
    def state_since(self) -> float:
        """When (on the supervisor's clock) the component entered its current state."""
        return self._state_since

    @property
    def watching_process(self) -> bool:
        """True while a Startup or Run process of the component runs and its exit would change the state."""
        return self._main is not None

    @property
    def spec(self) -> ComponentSpec:
        """The spec in effect (a newer one may be pending)."""
        return self._spec

    @property
    def leaving(self) -> bool:
        """True once the component is being removed or the runtime is shutting down."""
        return self._leaving

    @property
    def settled(self) -> bool:
        """True when the component is RUNNING, FINISHED or BROKEN with no request still to carry out."""
        return self._state.is_settled and not self._desired and not self._leaving

    @property
    def closable(self) -> bool:
        """True when nothing of the component runs that could still need its dependencies."""
        return self._state in CLOSABLE_STATES

    def hard_depends_on(self, name: str) -> bool:
        """True when the spec in effect has a HARD dependency on ``name``."""
        return name != self.name and self._spec.dependencies.get(name) is DependencyType.HARD

    def status(self) -> ComponentStatus:
        """A snapshot of the component."""
        return ComponentStatus(
            name=self.name,
            version=self._spec.version,
            state=self._state,
            pids=tuple(p.pid for p in self._processes if p.returncode is None),
            error_counts=self._errors.counts(),
            last_exit_code=self._last_exit_code,
            last_failure=self._last_failure,
            paused=self._paused,
        )

    # --- requests ----------------------------------------------------------------------------------

    def activate(self) -> None:
        """Called once the supervisor knows the service: a built-in service is RUNNING at once."""
        if self._spec.builtin:
            self._desired.clear()
            self._set_state(RUNNING, "built-in service")

    def wake(self) -> None:
        """Make the task look at its conditions again."""
        self._wake.set()

    def update(self, spec: ComponentSpec, *, reinstall: bool) -> None:
        """Take ``spec`` as the desired spec: restart, or reinstall when needed, or do nothing if
        it is unchanged and no reinstall is asked for."""
        rejoining, self._leaving = self._leaving, False
        self._uninstall = False
        current = self._pending or self._spec
        if not rejoining and not reinstall and current.differs_only_in_limits(spec):
            # As in Greengrass, new limits apply to the running processes; nothing restarts.
            if self._pending is None:
                self._spec = spec
            else:
                self._pending = spec
            self._launcher.update_limits(spec.resource_limits)
            return
        unchanged = spec == current
        if unchanged and not reinstall:
            if rejoining:
                # Removed, then deployed again before it was gone: carry on or start again.
                self._request([] if self._state is RUNNING else [RUNNING], "deployed again")
            return
        if spec.builtin and self._spec.builtin and self._state is RUNNING and not reinstall:
            self._spec, self._pending = spec, None
            self._request([], "")
            return
        self._pending = spec if spec != self._spec else None
        if reinstall or self._state is BROKEN or NEW in self._desired or spec.needs_reinstall(self._spec):
            self._request([NEW, RUNNING], "reinstall requested" if reinstall else "its spec changed")
        else:
            self._request([INSTALLED, RUNNING], "its spec changed" if self._pending else "restart requested")

    def request_restart(self, reason: str) -> None:
        """Restart without reinstalling, or reinstall a BROKEN component (which must start afresh)."""
        if self._state is BROKEN:
            self._request([NEW, RUNNING], reason)
        elif NEW not in self._desired:
            self._request([INSTALLED, RUNNING], reason)

    def request_stop(self, reason: str) -> None:
        """Stop and stay FINISHED until restarted or redeployed."""
        self._request([FINISHED], reason)

    def leave(self, reason: str, *, uninstall: bool = False) -> None:
        """Stop for good: the task ends once the component is FINISHED or BROKEN. With ``uninstall`` (the
        component was removed by a deployment) its Uninstall step runs after it stopped."""
        self._leaving = True
        self._uninstall = uninstall
        self._request([FINISHED], reason)

    def dependency_left_ready(self, dependency: str, state: ComponentState) -> None:
        """A HARD dependency stopped being ready: restart if running, unless something else is asked."""
        if self._state in (STARTING, RUNNING) and self._desired in ([], [RUNNING]) and not self._spec.builtin:
            self._request([INSTALLED, RUNNING], f"HARD dependency {dependency!r} is {state}")

    def report(self, state: ComponentState) -> bool:
        """A state the component reported (IPC ``UpdateState``); False when :data:`ACCEPTED_REPORTS` rejects it."""
        if self._spec.builtin or state not in ACCEPTED_REPORTS.get(self._state, frozenset()):
            logger.warning("component-report-ignored: %s reported %s while %s", self.name, state, self._state)
            return False
        self._reported = state
        self.wake()
        return True

    def pause(self) -> None:
        """Stop (SIGSTOP) every process group of the component; its state stays RUNNING. Idempotent.

        Raises:
            LifecycleError: the component is not RUNNING.
        """
        if self._state is not RUNNING:
            raise LifecycleError(
                f"Component {self.name!r} is {self._state}; only a RUNNING component can be paused"
            )
        if self._paused:
            return
        self._signal_groups(signal.SIGSTOP)
        self._paused = True
        self.log.write("lifecycle", "INFO", "paused")
        logger.info("component-paused: %s", self.name)

    def resume(self) -> None:
        """Continue (SIGCONT) a paused component; a RUNNING component that is not paused is left alone.

        Raises:
            LifecycleError: the component is neither paused nor RUNNING.
        """
        if not self._paused and self._state is not RUNNING:
            raise LifecycleError(
                f"Component {self.name!r} is {self._state}; only a paused component can be resumed"
            )
        self._unpause("resume requested")

    def _unpause(self, reason: str) -> None:
        """Continue the processes of a paused component; a stopped process could not exit or shut down."""
        if not self._paused:
            return
        self._signal_groups(signal.SIGCONT)
        self._paused = False
        self.log.write("lifecycle", "INFO", f"resumed: {reason}")
        logger.info("component-resumed: %s (%s)", self.name, reason)

    def _signal_groups(self, signum: signal.Signals) -> None:
        for process in self._processes:
            try:
                os.killpg(process.pid, signum)
            except ProcessLookupError:
                continue

    def _request(self, desired: list[ComponentState], reason: str) -> None:
        self._desired = desired
        self._reason = reason
        self._retry_at = None
        self.wake()
        self._host.progressed()

    # --- the task ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Drive the state machine until the component has left. Cancelling it kills every process."""
        handlers = {
            NEW: self._on_new,
            INSTALLED: self._on_installed,
            STARTING: self._on_starting,
            RUNNING: self._on_running,
            STOPPING: self._on_stopping,
            ERRORED: self._on_errored,
            BROKEN: self._on_broken,
            FINISHED: self._on_finished,
        }
        try:
            while True:
                while not (self._leaving and self._state in (FINISHED, BROKEN)):
                    self._consume_reached()
                    try:
                        await handlers[self._state]()
                    except Exception as exc:
                        # A bug here must not leave processes behind or stop the other components.
                        logger.exception("component-supervision-failed: %s in %s", self.name, self._state)
                        await self._terminate_all(0.0)
                        self._main = None
                        self._desired.clear()
                        self._last_failure = f"internal error: {exc!r}"
                        self._set_state(BROKEN, self._last_failure)
                if not self._uninstall:
                    break
                self._uninstall = False
                await self._run_uninstall()
                if self._leaving:
                    break
                # Deployed again while Uninstall ran: what it installed may be gone, so install afresh.
                self._request([NEW, RUNNING], "deployed again after Uninstall")
        except asyncio.CancelledError:
            await self._terminate_all(0.0)
            raise
        finally:
            # A step that exited on its own (a FINISHED Run) still holds its transport until the next launch
            # closes it; the component has left, so there is no next launch.
            for process in self._processes:
                if process.returncode is not None:
                    process.close()
            self._launcher.release()
            self.log.close()

    def _consume_reached(self) -> None:
        reached = False
        while self._desired and self._desired[0] is self._state:
            self._desired.pop(0)
            if self._state in (NEW, INSTALLED):
                self.restarts += 1
            reached = True
        if reached:
            self._host.progressed()

    async def _on_new(self) -> None:
        self._adopt_pending()
        head = self._head()
        if head is FINISHED:
            self._set_state(FINISHED, self._reason)
        elif head is None:
            await self._sleep(None)
        elif await self._backing_off():
            return
        elif self._spec.builtin:
            self._set_state(INSTALLED, "built-in service")
        else:
            result = await self._run_step("Install", self._spec, interrupt=self._install_interrupted)
            if result.interrupted and self._reported is ERRORED:
                await self._fail(NEW, "the component reported ERRORED during Install")
            elif result.interrupted:
                return
            elif result.ok:
                self._set_state(INSTALLED, result.reason)
            else:
                await self._fail(NEW, result.reason)

    async def _run_uninstall(self) -> None:
        """Run Uninstall, then kill what it left behind. Its failure is logged and otherwise ignored, as in
        Greengrass: the component is gone either way, and the deployment that removed it goes on."""
        if self._spec.builtin or "Uninstall" not in self._spec.lifecycle.steps:
            return
        try:
            result = await self._run_step("Uninstall", self._spec)
        except Exception as exc:
            # A bug here must not keep the component from leaving.
            logger.exception("component-uninstall-crashed: %s", self.name)
            result = _StepResult(False, f"internal error: {exc!r}")
        await self._terminate_all(self._settings.grace_period)
        if result.ok:
            self.log.write("lifecycle", "INFO", f"uninstalled: {result.reason}")
            logger.info("component-uninstalled: %s (%s)", self.name, result.reason)
        else:
            self.log.write("lifecycle", "WARN", f"Uninstall failed: {result.reason}")
            logger.warning("component-uninstall-failed: %s: %s", self.name, result.reason)

    def _install_interrupted(self) -> bool:
        # NEW was dropped from the list when reached, so a NEW at the head is a new reinstall request.
        return self._reported is ERRORED or self._head() in (NEW, FINISHED)

    async def _on_installed(self) -> None:
        self._adopt_pending()
        head = self._head()
        if head is NEW or head is FINISHED:
            self._set_state(head, self._reason)
        elif head is None:
            await self._sleep(None)
        elif await self._backing_off():
            return
        elif not self._dependencies_ready():
            await self._sleep(None)
        else:
            self._set_state(STARTING, "")

    async def _on_starting(self) -> None:
        if self._main is None:
            await self._launch_main()
        else:
            await self._watch_startup(self._main)

    async def _launch_main(self) -> None:
        spec = self._spec
        if self._head() not in (None, RUNNING):
            self._set_state(INSTALLED, self._reason)
            return
        if not self._dependencies_ready():
            self._set_state(INSTALLED, "a HARD dependency is no longer ready")
            return
        self._started = spec
        if spec.builtin:
            self._set_state(RUNNING, "built-in service")
            return
        name = next((n for n in ("Startup", "Run") if n in spec.lifecycle.steps), None)
        if name is None:
            self._finish_on_its_own("no Startup or Run step")
            return
        try:
            process = await self._launch(name, spec)
        except StepError as exc:
            await self._fail(STARTING, str(exc))
            return
        if process is None:
            if name == "Startup":
                self._set_state(RUNNING, "Startup skipped")
            else:
                self._finish_on_its_own("Run skipped")
            return
        loop = asyncio.get_running_loop()
        self._main = process
        self._main_timeout = step_timeout(name, spec.lifecycle.steps[name])
        self._main_deadline = None if self._main_timeout is None else loop.time() + self._main_timeout
        if name == "Run":
            self._set_state(RUNNING, f"Run started, pid {process.pid}")

    async def _watch_startup(self, process: StepProcess) -> None:
        rc = process.returncode
        if self._reported is RUNNING:
            self._main = None
            self._set_state(RUNNING, "the component reported RUNNING")
        elif self._reported is ERRORED:
            await self._fail(STARTING, "the component reported ERRORED during Startup")
        elif self._reported is FINISHED:
            self._stop_on_its_own("the component reported FINISHED")
        elif rc is not None:
            self._last_exit_code = rc
            self._main = None
            if rc == 0:
                self._set_state(RUNNING, "Startup exited with code 0")
            else:
                await self._fail(STARTING, _exit_text("Startup", rc))
        elif self._should_stop():
            self._set_state(STOPPING, self._reason)
        elif self._main_deadline is not None and asyncio.get_running_loop().time() >= self._main_deadline:
            await process.terminate(self._settings.grace_period)
            await self._fail(STARTING, f"Startup did not finish within {self._main_timeout:g}s")
        else:
            await self._sleep(self._main_deadline)

    async def _on_running(self) -> None:
        main = self._main
        if self._should_stop():
            self._set_state(STOPPING, self._reason)
        elif self._spec.builtin:
            await self._sleep(None)
        elif self._reported is ERRORED:
            await self._fail(RUNNING, "the component reported ERRORED")
        elif self._reported is FINISHED:
            self._stop_on_its_own("the component reported FINISHED")
        elif main is not None and (rc := main.returncode) is not None:
            self._main = None
            self._last_exit_code = rc
            if rc == 0:
                self._stop_on_its_own("Run exited with code 0")
            else:
                await self._fail(RUNNING, _exit_text("Run", rc))
        elif (
            main is not None
            and self._main_deadline is not None
            and asyncio.get_running_loop().time() >= self._main_deadline
        ):
            self._main = None
            self._unpause("Run timed out")
            await main.terminate(self._settings.grace_period)
            await self._fail(RUNNING, f"Run timed out after {self._main_timeout:g}s")
        else:
            await self._sleep(self._main_deadline if main is not None else None)

    async def _on_stopping(self) -> None:
        spec = self._started or self._spec
        result = _StepResult(True, "") if spec.builtin else await self._run_step("Shutdown", spec)
        await self._terminate_all(self._settings.grace_period)
        self._main = None
        self._started = None
        if not result.ok:
            await self._fail(STOPPING, result.reason)
        elif self._reported is ERRORED:
            await self._fail(STOPPING, "the component reported ERRORED while stopping")
        else:
            self._set_state(self._after_stop(), "")

    async def _on_errored(self) -> None:
        failure = self._failure
        assert failure is not None, "ERRORED is only entered through _fail"
        spec = self._started or self._spec
        if not spec.builtin:
            result = await self._run_step("Recover", spec)
            if not result.ok:
                # As in Greengrass, a failing Recover is only logged; the retry happens regardless.
                self.log.write("lifecycle", "WARN", f"Recover failed: {result.reason}")
                logger.warning("component-recover-failed: %s: %s", self.name, result.reason)
        if failure.origin in COUNTED_STATES:
            if not self._desired:
                # As in Greengrass, an error with nothing else asked for is retried.
                self._desired = [RUNNING]
            delay = self._backoff.delay(failure.errors)
            self._retry_at = asyncio.get_running_loop().time() + delay if delay > 0 else None
        if failure.origin is NEW:
            self._set_state(NEW, "retrying Install")
        elif failure.origin in (STARTING, RUNNING):
            self._set_state(STOPPING, "cleaning up after the error")
        else:
            self._set_state(self._after_stop(), "")

    async def _on_broken(self) -> None:
        if self._head() is NEW:
            self._errors.clear_all()
            self._set_state(NEW, self._reason)
            return
        if self._desired:
            # Only a reinstall brings a component back from BROKEN; other requests lapse.
            self._desired.clear()
            self._host.progressed()
        await self._sleep(None)

    async def _on_finished(self) -> None:
        head = self._head()
        if head is NEW:
            self._set_state(NEW, self._reason)
        elif head in (INSTALLED, RUNNING):
            self._set_state(INSTALLED, self._reason)
        else:
            await self._sleep(None)

    # --- helpers -----------------------------------------------------------------------------------

    def _head(self) -> ComponentState | None:
        return self._desired[0] if self._desired else None

    def _adopt_pending(self) -> None:
        if self._pending is not None:
            self._spec, self._pending = self._pending, None

    def _should_stop(self) -> bool:
        """True when a request wants the component out of STARTING/RUNNING, and, if it is being removed,
        its HARD dependers have stopped first."""
        if self._head() in (None, RUNNING):
            return False
        return not self._leaving or self._host.dependers_closable(self.name)

    def _dependencies_ready(self) -> bool:
        return all(
            self._host.dependency_ready(name)
            for name, kind in self._spec.dependencies.items()
            if kind is DependencyType.HARD and name != self.name
        )

    def _after_stop(self) -> ComponentState:
        head = self._head()
        if head is NEW:
            return NEW
        if head in (INSTALLED, RUNNING):
            return INSTALLED
        return FINISHED

    def _finish_on_its_own(self, reason: str) -> None:
        """STARTING → FINISHED: there was nothing to keep running, which satisfies a start request."""
        if self._desired == [RUNNING]:
            self._desired.clear()
        self._set_state(FINISHED, reason)

    def _stop_on_its_own(self, reason: str) -> None:
        """The component ended by itself: stop it (Shutdown, kill leftovers) and leave it FINISHED,
        unless a restart or stop is already asked for."""
        if self._desired in ([], [RUNNING]):
            self._desired = [FINISHED]
        self._set_state(STOPPING, reason)

    async def _backing_off(self) -> bool:
        """True while the retry delay after an error is not over."""
        if self._retry_at is None:
            return False
        if asyncio.get_running_loop().time() < self._retry_at:
            await self._sleep(self._retry_at)
            return True
        self._retry_at = None
        return False

    async def _fail(self, origin: ComponentState, reason: str) -> None:
        """Enter ERRORED from ``origin``, or BROKEN when that makes too many errors."""
        self._main = None
        self._last_failure = reason
        errors = 0
        if origin in COUNTED_STATES:
            window = self._spec.lifecycle.error_reset_time
            if window is None:
                window = self._settings.error_window
            errors = self._errors.record(origin, window=window)
            if errors >= self._settings.error_threshold:
                await self._break(origin, f"{reason}; {errors} errors within {window:g}s")
                return
        self._failure = _Failure(origin, reason, errors)
        self._set_state(ERRORED, reason)

    async def _break(self, origin: ComponentState, reason: str) -> None:
        self._unpause("stopping after too many errors")
        spec = self._started or self._spec
        if origin in (STARTING, RUNNING) and not spec.builtin:
            result = await self._run_step("Shutdown", spec)
            if not result.ok:
                self.log.write("lifecycle", "WARN", f"Shutdown failed: {result.reason}")
        await self._terminate_all(self._settings.grace_period)
        self._started = None
        self._desired.clear()
        self._retry_at = None
        self._last_failure = reason
        self._set_state(BROKEN, reason)

    async def _run_step(
        self, name: str, spec: ComponentSpec, *, interrupt: Callable[[], bool] | None = None
    ) -> _StepResult:
        """Run a step to its end, its timeout, or until ``interrupt()`` says to kill it."""
        step = spec.lifecycle.steps.get(name)
        if step is None:
            return _StepResult(True, f"no {name} step")
        try:
            process = await self._launch(name, spec)
        except StepError as exc:
            return _StepResult(False, str(exc))
        if process is None:
            return _StepResult(True, f"{name} skipped")
        timeout = step_timeout(name, step)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while (rc := process.returncode) is None:
            if interrupt is not None and interrupt():
                await process.terminate(self._settings.grace_period)
                return _StepResult(False, f"{name} interrupted", interrupted=True)
            if deadline is not None and loop.time() >= deadline:
                await process.terminate(self._settings.grace_period)
                return _StepResult(False, f"{name} timed out after {timeout:g}s")
            await self._sleep(deadline)
        if name == "Install":
            self._last_exit_code = rc
        reason = _exit_text(name, rc)
        if rc != 0:
            # The shell has exited; its last lines may still be in the pipe.
            await process.drain(_DRAIN_TIMEOUT)
        if rc != 0 and process.last_error_line:
            # The step's own last word on stderr (e.g. why a model package was refused) reaches the state
            # reason, and from there the deployment's failure cause.
            reason = f"{reason}: {process.last_error_line[:_MAX_ERROR_LINE]}"
        return _StepResult(rc == 0, reason)

    async def _launch(self, name: str, spec: ComponentSpec) -> StepProcess | None:
        for done in [p for p in self._processes if p.finished]:
            done.close()
            self._processes.remove(done)
        process = await self._launcher.launch(name, spec)
        if process is not None:
            self._processes.append(process)
        return process

    async def _terminate_all(self, grace: float) -> None:
        """Stop every process group the component started, the still-running and the leftover ones."""
        self._unpause("stopping")
        processes = list(self._processes)
        results = await asyncio.gather(*(p.terminate(grace) for p in processes), return_exceptions=True)
        for process, result in zip(processes, results, strict=True):
            if isinstance(result, BaseException):
                logger.error("component-kill-failed: %s pid %d: %r", self.name, process.pid, result)
            else:
                self._processes.remove(process)

    async def _sleep(self, deadline: float | None) -> None:
        """Wait for a wake-up or the loop time ``deadline``."""
        try:
            async with asyncio.timeout_at(deadline):
                await self._wake.wait()
        except TimeoutError:
            pass
        self._wake.clear()

    def _set_state(self, new: ComponentState, reason: str) -> None:
        old = self._state
        if new is old:
            return
        self._state = new
        self._state_since = self._clock()
        self._reported = None
        if new is not RUNNING:
            self._unpause(f"leaving RUNNING for {new}")
        if old in COUNTED_STATES and new not in (ERRORED, BROKEN):
            self._errors.clear(old)
        self.log.write("lifecycle", "INFO", f"state {old} -> {new}" + (f": {reason}" if reason else ""))
        logger.info(
            "component-state-changed: %s %s -> %s%s",
            self.name,
            old,
            new,
            f" ({reason})" if reason else "",
            extra={"component": self.name, "old_state": str(old), "new_state": str(new), "reason": reason},
        )
        self._host.state_changed(self, old, new)


def _exit_text(step: str, code: int) -> str:
    if code < 0:
        return f"{step} was killed by signal {-code}"
    return f"{step} exited with code {code}"

"""The lifecycle supervisor: runs the set of components a deployment asks for.

Each component is a :class:`~edgewise.runtime.lifecycle.service.ComponentService` driven by its own
task, which this supervisor owns, awaits on shutdown, and forgets once the component has left. The
supervisor connects the components: HARD dependencies gate starts and cascade restarts, and a
component being removed waits for its HARD dependers to stop first.

Example::

    supervisor = LifecycleSupervisor(settings, environment=lambda spec: {"SVCUID": tokens[spec.name]})
    supervisor.apply({spec.name: spec for spec in specs})
    states = await supervisor.wait_settled(list(specs_by_name), timeout=120)
    ...
    await supervisor.shutdown()
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Collection, Mapping

from edgewise.runtime.lifecycle.bootstrap import BootstrapAction, BootstrapOutcome, run_bootstrap
from edgewise.runtime.lifecycle.cgroups import CgroupLimiter
from edgewise.runtime.lifecycle.errors import ComponentNotSupervisedError, LifecycleError
from edgewise.runtime.lifecycle.logs import ComponentLog
from edgewise.runtime.lifecycle.service import ComponentService
from edgewise.runtime.lifecycle.settings import LifecycleSettings
from edgewise.runtime.lifecycle.spec import ComponentSpec
from edgewise.runtime.lifecycle.states import ComponentState
from edgewise.runtime.lifecycle.status import ComponentStatus
from edgewise.runtime.lifecycle.step import StepLauncher, inherited_environment

logger = logging.getLogger(__name__)

#: Called with (component, old state, new state) on every state change, on the event loop thread.
StateCallback = Callable[[str, ComponentState, ComponentState], None]


class LifecycleSupervisor:
    """Runs components, keeps them in their desired states, and stops them in dependency order.

    Every method must be called from the event loop thread.

    Args:
        settings: directories, error policy, kill grace and log rotation.
        environment: the runtime's variables for a component's steps (IPC socket, SVCUID, region, ...);
            called before each step, so values that change between runs are picked up.
        clock: monotonic seconds, read to count errors within their reset window.
    """

    def __init__(
        self,
        settings: LifecycleSettings,
        *,
        environment: Callable[[ComponentSpec], Mapping[str, str]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._environment = environment
        self._clock = clock
        self._base_environment = inherited_environment(os.environ)
        self._services: dict[str, ComponentService] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._subscribers: list[StateCallback] = []
        self._progress = asyncio.Event()
        self._closing = False

    # --- the desired set ---------------------------------------------------------------------------

    def apply(self, specs: Mapping[str, ComponentSpec], *, reinstall: Collection[str] = ()) -> None:
        """Make ``specs`` the set of components to run; returns at once.

        New components are installed and started; removed ones are stopped (dependents first) and
        forgotten; changed ones are restarted, or reinstalled when :meth:`ComponentSpec.needs_reinstall`
        says so; names in ``reinstall`` are reinstalled even if unchanged (this is how a deployment
        revives a BROKEN component); unchanged ones are left alone.

        Raises:
            ValueError: a spec is keyed by another name, a name cannot be a directory name, or
                ``reinstall`` names a component that is not in ``specs``.
            RuntimeError: the supervisor has been shut down.
        """
        if self._closing:
            msg = "The lifecycle supervisor has been shut down; it cannot apply a new set of components"
            raise RuntimeError(msg)
        _check_specs(specs, reinstall)
        for name, service in self._services.items():
            if name not in specs and not service.leaving:
                service.leave("removed from the deployment", uninstall=True)
        for name, spec in specs.items():
            existing = self._services.get(name)
            if existing is None:
                self._start(spec)
            else:
                existing.update(spec, reinstall=name in reinstall)
        self._notify()

    async def wait_settled(
        self, names: Collection[str], *, timeout: float | None, stable_for: float = 0.0
    ) -> dict[str, ComponentState]:
        """Wait until each named component is RUNNING, FINISHED or BROKEN with no request pending, or
        until ``timeout`` seconds pass; return their states either way. Components that are not (or no
        longer) supervised count as settled and are left out of the result. Components being removed must
        be gone too: a deployment is not done while a component it removed still runs. A RUNNING component
        whose Run process is being watched counts only once it has been RUNNING for ``stable_for`` seconds, so
        that a process that dies right after it started is seen failing rather than taken for a success.
        (Built-in services and components without a Run process count at once.)"""
        wanted = list(names)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout

        def settled() -> bool:
            if any(service.leaving for service in self._services.values()):
                return False
            return all(name not in self._services or self._services[name].settled for name in wanted)

        def unstable_for() -> float:
            """How long until the last RUNNING component has been RUNNING for ``stable_for`` seconds."""
            now = self._clock()
            running = [
                service.state_since
                for service in (self._services.get(name) for name in wanted)
                if service is not None
                and service.state is ComponentState.RUNNING
                and service.watching_process
            ]
            return max((since + stable_for - now for since in running), default=0.0)

        while await self._wait_until(settled, None if deadline is None else deadline - loop.time()):
            remaining = unstable_for()
            if remaining <= 0:
                break
            if deadline is not None:
                remaining = min(remaining, deadline - loop.time())
                if remaining <= 0:
                    break
            # Nothing to wake on when all goes well: sleep out the stability window, then check again.
            await asyncio.sleep(remaining)
        return {name: self._services[name].state for name in wanted if name in self._services}

    # --- reading -----------------------------------------------------------------------------------

    def state(self, name: str) -> ComponentState | None:
        """The component's state, or None when it is not supervised."""
        service = self._services.get(name)
        return None if service is None else service.state

    def states(self) -> dict[str, ComponentState]:
        """The state of every supervised component (including those being removed)."""
        return {name: service.state for name, service in self._services.items()}

    def status(self, name: str) -> ComponentStatus | None:
        """A snapshot of the component, or None when it is not supervised."""
        service = self._services.get(name)
        return None if service is None else service.status()

    def subscribe(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback(name, old, new)`` on every state change; returns the function that unsubscribes.

        A callback must not block; an exception it raises is logged and otherwise ignored.
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    # --- requests from the CLI and IPC -------------------------------------------------------------

    async def restart(self, name: str) -> None:
        """Restart a component without reinstalling it (a BROKEN one is reinstalled).

        Returns once its old processes are gone and it is on its way back: use :meth:`wait_settled` to
        wait for it to run.

        Raises:
            ComponentNotSupervisedError: no such component (or it is being removed).
            LifecycleError: it is a built-in service, which cannot be restarted.
        """
        service = self._controllable(name, "restarted")
        before = service.restarts
        service.request_restart("restart requested")
        await self._wait_until(
            lambda: (
                self._services.get(name) is not service
                or service.restarts > before
                or (service.state is ComponentState.BROKEN and service.settled)
            ),
            None,
        )

    async def stop(self, name: str) -> None:
        """Stop a component; it stays FINISHED until restarted or deployed again. Returns once stopped
        (a BROKEN component stays BROKEN).

        Raises:
            ComponentNotSupervisedError: no such component (or it is being removed).
            LifecycleError: it is a built-in service, which cannot be stopped.
        """
        service = self._controllable(name, "stopped")
        service.request_stop("stop requested")
        await self._wait_until(lambda: self._services.get(name) is not service or service.settled, None)

    def pause(self, name: str) -> None:
        """Freeze a RUNNING component: SIGSTOP to each of its process groups; its state stays RUNNING.

        A paused component is resumed before it is stopped, restarted or removed. Pausing twice is harmless.

        Raises:
            ComponentNotSupervisedError: no such component (or it is being removed).
            LifecycleError: it is a built-in service, or not RUNNING.
        """
        self._controllable(name, "paused").pause()

    def resume(self, name: str) -> None:
        """Continue a paused component (SIGCONT to its process groups); a running one is left alone.

        Raises:
            ComponentNotSupervisedError: no such component (or it is being removed).
            LifecycleError: it is a built-in service, or neither paused nor RUNNING.
        """
        self._controllable(name, "resumed").resume()

    def report_state(self, name: str, state: ComponentState) -> bool:
        """A state a component reports itself (IPC ``UpdateState``: RUNNING or ERRORED).

        Returns False when the component is unknown or the transition is not one Greengrass accepts (for
        example RUNNING while already RUNNING).
        """
        service = self._services.get(name)
        return service is not None and service.report(state)

    async def bootstrap(self, spec: ComponentSpec) -> BootstrapOutcome:
        """Run the Bootstrap step of ``spec`` (which need not be supervised) and say what its exit code asks for.

        It runs as the component's other steps do, with its output in the component's log.
        """
        service = self._services.get(spec.name)
        log = (
            service.log
            if service is not None
            else ComponentLog(
                self._settings.log_dir / f"{spec.name}.log",
                max_bytes=self._settings.log_max_bytes,
                backups=self._settings.log_backups,
            )
        )
        exited = asyncio.Event()
        launcher = StepLauncher(
            spec.name,
            work_dir=self._settings.work_dir / spec.name,
            log=log,
            base_environment=self._base_environment,
            environment=self._environment,
            default_user=self._settings.run_as,
            on_exit=exited.set,
            limiter=CgroupLimiter(self._settings.cgroup_root),
        )
        try:
            outcome = await run_bootstrap(launcher, spec, exited=exited, grace=self._settings.grace_period)
            log.write(
                "lifecycle", "INFO" if outcome.action is BootstrapAction.CONTINUE else "WARN", outcome.reason
            )
        finally:
            if service is None:
                launcher.release()
                log.close()
        logger.info("component-bootstrapped: %s", outcome.reason)
        return outcome

    async def shutdown(self, *, timeout: float = 30.0) -> None:
        """Stop every component, dependents before their dependencies, and return when all are gone.

        Components still stopping after ``timeout`` seconds have their processes killed at once.
        """
        self._closing = True
        for service in self._services.values():
            if not service.leaving:
                service.leave("the runtime is shutting down")
        self._notify()
        if not await self._wait_until(lambda: not self._services, timeout):
            left = ", ".join(f"{name} ({service.state})" for name, service in self._services.items())
            logger.warning(
                "lifecycle-shutdown-timeout: still stopping after %.1fs, killing: %s", timeout, left
            )
            for task in self._tasks.values():
                task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # --- ServiceHost -------------------------------------------------------------------------------

    def dependency_ready(self, name: str) -> bool:
        """True when ``name`` is ready for its HARD dependents; components not supervised count as ready."""
        service = self._services.get(name)
        return service is None or service.state.is_ready

    def dependers_closable(self, name: str) -> bool:
        """True when every HARD depender of ``name`` that is being removed has stopped."""
        return all(
            service.closable
            for service in self._services.values()
            if service.leaving and service.hard_depends_on(name)
        )

    def state_changed(self, service: ComponentService, old: ComponentState, new: ComponentState) -> None:
        """Tell subscribers, restart HARD dependents when ``service`` stops being ready, wake everyone."""
        for callback in list(self._subscribers):
            try:
                callback(service.name, old, new)
            except Exception:
                logger.exception(
                    "lifecycle-subscriber-failed: %r on %s %s -> %s", callback, service.name, old, new
                )
        if old.is_ready and not new.is_ready:
            for other in self._services.values():
                if other is not service and other.hard_depends_on(service.name):
                    other.dependency_left_ready(service.name, new)
        self._notify()

    def progressed(self) -> None:
        """A request was made or carried out: wake waiters."""
        self._notify()

    # --- internals ---------------------------------------------------------------------------------

    def _start(self, spec: ComponentSpec) -> None:
        service = ComponentService(
            spec,
            settings=self._settings,
            host=self,
            environment=self._environment,
            base_environment=self._base_environment,
            clock=self._clock,
        )
        self._services[spec.name] = service
        service.activate()
        self._tasks[spec.name] = asyncio.get_running_loop().create_task(
            self._supervise(service), name=f"lifecycle:{spec.name}"
        )

    async def _supervise(self, service: ComponentService) -> None:
        try:
            await service.run()
        finally:
            if self._services.get(service.name) is service:
                del self._services[service.name]
                del self._tasks[service.name]
            self._notify()

    def _controllable(self, name: str, action: str) -> ComponentService:
        service = self._services.get(name)
        if service is None or service.leaving:
            raise ComponentNotSupervisedError(name)
        if service.spec.builtin:
            msg = f"Component {name!r} is a built-in service of the runtime; it cannot be {action}"
            raise LifecycleError(msg)
        return service

    def _notify(self) -> None:
        # Waiters hold the old event, which is set; later waiters get a fresh one.
        self._progress.set()
        self._progress = asyncio.Event()
        for service in self._services.values():
            service.wake()

    async def _wait_until(self, condition: Callable[[], bool], timeout: float | None) -> bool:
        """Wait until ``condition()`` holds (True) or ``timeout`` seconds pass (False)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not condition():
            try:
                async with asyncio.timeout_at(deadline):
                    await self._progress.wait()
            except TimeoutError:
                return condition()
        return True


def _check_specs(specs: Mapping[str, ComponentSpec], reinstall: Collection[str]) -> None:
    problems = []
    for key, spec in specs.items():
        if key != spec.name:
            problems.append(f"specs[{key!r}] is the spec of {spec.name!r}")
        if not spec.name or spec.name in (".", "..") or "/" in spec.name or "\0" in spec.name:
            problems.append(f"component name {spec.name!r} cannot be used as a directory name")
    unknown = sorted(set(reinstall) - set(specs))
    if unknown:
        problems.append(f"reinstall names components that are not in specs: {', '.join(unknown)}")
    if problems:
        raise ValueError("Cannot apply the components: " + "; ".join(problems))

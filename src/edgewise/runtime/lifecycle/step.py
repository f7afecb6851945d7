"""Starting one lifecycle step: its environment, its ``Skipif`` check, the user it
runs as and its working directory, then the process itself."""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import pwd
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from edgewise.recipe import LifecycleStep, Skipif
from edgewise.runtime.lifecycle.cgroups import CgroupError, CgroupLimiter, ResourceLimits
from edgewise.runtime.lifecycle.errors import StepError
from edgewise.runtime.lifecycle.logs import ComponentLog
from edgewise.runtime.lifecycle.process import Identity, StepProcess
from edgewise.runtime.lifecycle.spec import ComponentSpec

logger = logging.getLogger(__name__)

#: Seconds a step may take when its recipe sets no ``Timeout``; None: no limit.
DEFAULT_TIMEOUTS: Mapping[str, float | None] = {
    "Bootstrap": 120.0,
    "Install": 120.0,
    "Startup": 120.0,
    "Run": None,
    "Shutdown": 15.0,
    "Recover": 60.0,
    "Uninstall": 120.0,
}

#: Variables a step inherits from the runtime's own environment; everything else comes from the
#: runtime (``environment``) and the recipe (``Setenv``), so a component sees the same variables
#: however the runtime was started.
INHERITED_VARIABLES = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "TZ",
    "TMPDIR",
)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def step_timeout(name: str, step: LifecycleStep) -> float | None:
    """The step's ``Timeout``, or the default for that step."""
    return step.timeout if step.timeout is not None else DEFAULT_TIMEOUTS.get(name)


def inherited_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of ``environ`` every step starts from."""
    base = {name: environ[name] for name in INHERITED_VARIABLES if name in environ}
    base.setdefault("PATH", DEFAULT_PATH)
    return base


def step_environment(
    base: Mapping[str, str],
    *,
    identity: Identity | None,
    runtime: Mapping[str, str],
    lifecycle_setenv: Mapping[str, str],
    step: LifecycleStep,
) -> dict[str, str]:
    """The environment of a step, outermost first so that later sources win, as in Greengrass:
    inherited → the user's HOME/USER/LOGNAME → the runtime's variables → lifecycle Setenv → step Setenv."""
    env = dict(base)
    if identity is not None:
        env.update(HOME=identity.home, USER=identity.user, LOGNAME=identity.user)
    for source in (runtime, lifecycle_setenv, step.setenv):
        env.update({name: str(value) for name, value in source.items()})
    return env


def skip_reason(skipif: Skipif, *, path: str | None, cwd: Path) -> str | None:
    """Why the step is skipped, or None when it must run. Relative ``exists`` paths are read from ``cwd``.

    Raises:
        ValueError: the check is neither ``onpath`` nor ``exists``.
    """
    if skipif.check == "onpath":
        found = shutil.which(skipif.target, path=path) is not None
    elif skipif.check == "exists":
        found = (cwd / skipif.target).exists()
    else:
        msg = f"Skipif check must be 'onpath' or 'exists', not {skipif.check!r}"
        raise ValueError(msg)
    if found == skipif.negate:
        return None
    written = f"{'!' if skipif.negate else ''}{skipif.check} {skipif.target}"
    return f"Skipif {written!r} holds"


def wanted_user(spec: ComponentSpec, step: LifecycleStep, *, default: str | None, euid: int) -> str | None:
    """The "user[:group]" a step must run as, or None to run it as the runtime's own user.

    Only a runtime running as root switches users, and never for a step that requires privilege.
    """
    if euid != 0 or step.requires_privilege:
        return None
    return spec.posix_user or default


def resolve_identity(text: str) -> Identity:
    """Look up "user[:group]" (names or numeric ids); the group defaults to the user's primary group.

    Blocks on the user database (it may be remote); call it via ``asyncio.to_thread``.

    Raises:
        LookupError: the user or group does not exist; the message names it.
    """
    user_text, _, group_text = text.partition(":")
    try:
        entry = pwd.getpwuid(int(user_text)) if user_text.isdigit() else pwd.getpwnam(user_text)
    except KeyError:
        msg = f"user {user_text!r} does not exist"
        raise LookupError(msg) from None
    gid = entry.pw_gid
    if group_text:
        try:
            gid = int(group_text) if group_text.isdigit() else grp.getgrnam(group_text).gr_gid
        except KeyError:
            msg = f"group {group_text!r} does not exist"
            raise LookupError(msg) from None
    groups = tuple(os.getgrouplist(entry.pw_name, gid))
    return Identity(user=entry.pw_name, uid=entry.pw_uid, gid=gid, home=entry.pw_dir, groups=groups)


class StepLauncher:
    """Starts the lifecycle steps of one component. Must be used from the event loop thread."""

    def __init__(
        self,
        component: str,
        *,
        work_dir: Path,
        log: ComponentLog,
        base_environment: Mapping[str, str],
        environment: Callable[[ComponentSpec], Mapping[str, str]],
        default_user: str | None,
        on_exit: Callable[[], None],
        limiter: CgroupLimiter,
    ) -> None:
        self.component = component
        self._limiter = limiter
        self._cgroup: Path | None = None  #: the component's cgroup, once created
        self._applied: ResourceLimits | None = None  #: the limits written into it
        self._warned: ResourceLimits | None = None  #: the limits last warned about, to warn once
        self.work_dir = work_dir
        self._log = log
        self._base = base_environment
        self._environment = environment
        self._default_user = default_user
        self._on_exit = on_exit

    async def launch(self, name: str, spec: ComponentSpec) -> StepProcess | None:
        """Start step ``name`` of ``spec``; None when the spec has no such step or its Skipif holds.

        Raises:
            StepError: the step cannot be started; the message says why.
        """
        step = spec.lifecycle.steps.get(name)
        if step is None:
            return None
        user = wanted_user(spec, step, default=self._default_user, euid=os.geteuid())
        identity = None
        if user is not None:
            try:
                identity = await asyncio.to_thread(resolve_identity, user)
            except LookupError as exc:
                raise StepError(self.component, name, f"cannot run as {user!r}: {exc}") from None
        try:
            runtime = dict(self._environment(spec))
        except Exception as exc:
            logger.exception("component-environment-failed: %s", self.component)
            raise StepError(self.component, name, f"its environment could not be built: {exc}") from exc
        if name == "Uninstall":
            # Greengrass sets it for Uninstall only: the version being removed.
            runtime["GREENGRASS_COMPONENT_VERSION"] = spec.version
        env = step_environment(
            self._base, identity=identity, runtime=runtime, lifecycle_setenv=spec.lifecycle.setenv, step=step
        )
        try:
            self._prepare_work_dir(identity)
            reason = (
                None
                if step.skipif is None
                else skip_reason(step.skipif, path=env.get("PATH"), cwd=self.work_dir)
            )
        except (OSError, ValueError) as exc:
            raise StepError(self.component, name, str(exc)) from exc
        if reason is not None:
            self._log.write("lifecycle", "INFO", f"{name} skipped: {reason}")
            return None
        # Logged before the spawn: the first output lines can arrive before the spawn returns.
        self._log.write(
            "lifecycle", "INFO", f"{name} starting" + (f" as {identity.user}" if identity else "")
        )
        try:
            process = await StepProcess.spawn(
                name,
                step.script,
                cwd=self.work_dir,
                env=env,
                identity=identity,
                on_line=lambda is_stderr, text: self._log.write(name, "WARN" if is_stderr else "INFO", text),
                on_exit=self._on_exit,
            )
        except OSError as exc:
            raise StepError(self.component, name, f"the process could not be started: {exc}") from exc
        if spec.resource_limits is not None:
            self._confine(spec.resource_limits, process.pid)
        return process

    def update_limits(self, limits: ResourceLimits | None) -> None:
        """New limits for processes already running: rewritten into the cgroup, without a restart."""
        if self._cgroup is None or limits == self._applied:
            return
        try:
            self._cgroup = self._limiter.apply(self.component, limits)
            self._applied = limits
        except CgroupError as exc:
            self._warn(limits or ResourceLimits(), exc)

    def release(self) -> None:
        """Remove the component's cgroup; call once none of its processes is left."""
        if self._cgroup is not None:
            self._limiter.release(self.component)
            self._cgroup = None
            self._applied = None

    def _confine(self, limits: ResourceLimits, pid: int) -> None:
        """Put the step's process under the component's limits, or warn (once per limits) that it cannot."""
        try:
            if self._cgroup is None or limits != self._applied:
                self._cgroup = self._limiter.apply(self.component, limits)
                self._applied = limits
            self._limiter.place(self._cgroup, pid)
        except CgroupError as exc:
            self._warn(limits, exc)

    def _warn(self, limits: ResourceLimits, exc: CgroupError) -> None:
        if self._warned == limits:
            return
        self._warned = limits
        message = f"resource limits ({limits.describe()}) are not enforced, running without them: {exc}"
        self._log.write("lifecycle", "WARN", message)
        logger.warning("component-limits-not-enforced: Component %r: %s", self.component, message)

    def _prepare_work_dir(self, identity: Identity | None) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if identity is not None:
            os.chown(self.work_dir, identity.uid, identity.gid)

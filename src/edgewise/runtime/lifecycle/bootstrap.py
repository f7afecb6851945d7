"""Running a component's ``Bootstrap`` step once, outside its state machine.

A deployment runs Bootstrap before it activates a component that is new, changes version or changes its
Bootstrap step. The step runs like any other (same environment, user, working directory, cgroup), and its
exit code says what the deployment does next: see :class:`BootstrapOutcome`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum

from edgewise.runtime.lifecycle.errors import StepError
from edgewise.runtime.lifecycle.spec import ComponentSpec
from edgewise.runtime.lifecycle.step import StepLauncher, step_timeout

logger = logging.getLogger(__name__)

#: Exit codes with a meaning of their own, as in Greengrass.
RESTART_EXIT_CODE = 100
REBOOT_EXIT_CODE = 101


class BootstrapAction(StrEnum):
    """What the deployment does after a Bootstrap step."""

    CONTINUE = "continue"  #: exit 0 (or no step, or skipped): go on
    RESTART = "restart"  #: exit 100: restart the runtime, then go on with the deployment
    REBOOT = "reboot"  #: exit 101: reboot the device, then go on with the deployment
    FAIL = "fail"  #: any other exit, a timeout, or a step that cannot start: the deployment fails


@dataclass(frozen=True)
class BootstrapOutcome:
    """How one Bootstrap step ended."""

    action: BootstrapAction
    reason: str  #: a sentence naming the component and what happened


async def run_bootstrap(
    launcher: StepLauncher, spec: ComponentSpec, *, exited: asyncio.Event, grace: float
) -> BootstrapOutcome:
    """Run ``spec``'s Bootstrap step to its end or its timeout (default 120 s), then kill what it left running.

    ``exited`` is the event the ``launcher``'s ``on_exit`` sets. Must be called from the event loop thread.
    """
    step = spec.lifecycle.steps.get("Bootstrap")
    if step is None:
        return BootstrapOutcome(BootstrapAction.CONTINUE, f"Component {spec.name!r} has no Bootstrap step")
    try:
        process = await launcher.launch("Bootstrap", spec)
    except StepError as exc:
        return BootstrapOutcome(BootstrapAction.FAIL, str(exc))
    if process is None:
        return BootstrapOutcome(BootstrapAction.CONTINUE, f"Bootstrap of {spec.name!r} skipped")
    timeout = step_timeout("Bootstrap", step)
    try:
        async with asyncio.timeout(timeout):
            while process.returncode is None:
                await exited.wait()
                exited.clear()
    except TimeoutError:
        await process.terminate(grace)
        return BootstrapOutcome(
            BootstrapAction.FAIL, f"Bootstrap of {spec.name!r} did not finish within {timeout:g}s"
        )
    # Whatever the step started in the background is not the component: it must not outlive the step.
    await process.terminate(grace)
    code = process.returncode
    assert code is not None
    if code == 0:
        return BootstrapOutcome(BootstrapAction.CONTINUE, f"Bootstrap of {spec.name!r} exited with code 0")
    if code == RESTART_EXIT_CODE:
        return BootstrapOutcome(
            BootstrapAction.RESTART, f"Bootstrap of {spec.name!r} exited with code 100: restart the runtime"
        )
    if code == REBOOT_EXIT_CODE:
        return BootstrapOutcome(
            BootstrapAction.REBOOT, f"Bootstrap of {spec.name!r} exited with code 101: reboot the device"
        )
    described = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    return BootstrapOutcome(BootstrapAction.FAIL, f"Bootstrap of {spec.name!r} {described}")

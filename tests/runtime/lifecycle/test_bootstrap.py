"""The Bootstrap step run by the supervisor for a deployment: what each exit code asks for."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from shlex import quote

import pytest

from edgewise.recipe import LifecycleStep, Skipif
from edgewise.runtime.lifecycle import ComponentSpec, LifecycleSupervisor
from edgewise.runtime.lifecycle.bootstrap import BootstrapAction

SpecBuilder = Callable[..., ComponentSpec]


@pytest.mark.parametrize(
    ("code", "action"),
    [
        (0, BootstrapAction.CONTINUE),
        (100, BootstrapAction.RESTART),
        (101, BootstrapAction.REBOOT),
        (1, BootstrapAction.FAIL),
        (102, BootstrapAction.FAIL),
    ],
)
async def test_the_exit_code_says_what_the_deployment_does(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, code: int, action: BootstrapAction
) -> None:
    outcome = await supervisor.bootstrap(make_spec("a", Bootstrap=f"exit {code}"))

    assert outcome.action is action
    assert f"exited with code {code}" in outcome.reason
    assert "'a'" in outcome.reason


async def test_bootstrap_runs_with_the_component_environment_in_its_work_directory(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    spec = make_spec(
        "a", setenv={"OUTER": "lifecycle"}, Bootstrap=f'echo "$AWS_REGION $OUTER $PWD" > {quote(str(out))}'
    )

    outcome = await supervisor.bootstrap(spec)

    assert outcome.action is BootstrapAction.CONTINUE
    assert out.read_text().strip() == f"eu-west-1 lifecycle {tmp_path / 'work' / 'a'}"
    assert "Bootstrap of 'a' exited with code 0" in (tmp_path / "logs" / "a.log").read_text()
    # Bootstrap does not make the component supervised: the deployment activates it afterwards.
    assert supervisor.states() == {}


async def test_a_bootstrap_past_its_timeout_is_killed_and_fails(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder
) -> None:
    outcome = await supervisor.bootstrap(make_spec("a", Bootstrap=LifecycleStep("sleep 30", timeout=0.2)))

    assert outcome.action is BootstrapAction.FAIL
    assert outcome.reason == "Bootstrap of 'a' did not finish within 0.2s"


async def test_a_skipped_or_missing_bootstrap_continues(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder
) -> None:
    skipped = LifecycleStep("exit 1", skipif=Skipif(check="onpath", target="sh"))

    assert (await supervisor.bootstrap(make_spec("a", Bootstrap=skipped))).action is BootstrapAction.CONTINUE
    assert (await supervisor.bootstrap(make_spec("b", Run="true"))).action is BootstrapAction.CONTINUE

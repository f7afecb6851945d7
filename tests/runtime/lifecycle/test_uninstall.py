"""The Uninstall step: run when a component is removed (after it stopped), never on a runtime shutdown."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from shlex import quote

from edgewise.recipe import LifecycleStep
from edgewise.runtime.lifecycle import ComponentSpec, ComponentState, LifecycleSettings, LifecycleSupervisor

S = ComponentState
SpecBuilder = Callable[..., ComponentSpec]
Waiter = Callable[..., Awaitable[None]]


async def test_removing_a_component_runs_uninstall_after_shutdown_with_its_environment(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path
) -> None:
    events = tmp_path / "events"
    record = f">> {quote(str(events))}"
    spec = make_spec(
        "a",
        version="2.1.0",
        Run="sleep 30",
        Shutdown=f"echo shutdown {record}",
        Uninstall=LifecycleStep(
            f'echo "uninstall $GREENGRASS_COMPONENT_VERSION $AWS_REGION $MARK $PWD" {record}',
            setenv={"MARK": "step-setenv"},
        ),
    )
    supervisor.apply({"a": spec})
    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}

    supervisor.apply({})
    assert await supervisor.wait_settled([], timeout=10) == {}

    assert supervisor.states() == {}
    work = tmp_path / "work" / "a"
    assert events.read_text().splitlines() == ["shutdown", f"uninstall 2.1.0 eu-west-1 step-setenv {work}"]


async def test_shutting_the_runtime_down_does_not_uninstall(
    settings: LifecycleSettings, make_spec: SpecBuilder, tmp_path: Path
) -> None:
    marker = tmp_path / "uninstalled"
    supervisor = LifecycleSupervisor(settings, environment=lambda spec: {})
    supervisor.apply({"a": make_spec("a", Run="sleep 30", Uninstall=f"touch {quote(str(marker))}")})
    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}

    await supervisor.shutdown(timeout=10)

    assert supervisor.states() == {}
    assert not marker.exists()


async def test_a_failing_uninstall_is_logged_and_the_component_still_leaves(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path
) -> None:
    supervisor.apply({"a": make_spec("a", Run="sleep 30", Uninstall="echo cleaning; exit 3")})
    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}

    supervisor.apply({})
    await supervisor.wait_settled([], timeout=10)

    assert supervisor.states() == {}
    log = (tmp_path / "logs" / "a.log").read_text()
    assert "cleaning" in log
    assert "Uninstall failed: Uninstall exited with code 3" in log


async def test_an_uninstall_that_hangs_is_killed_at_its_timeout(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path
) -> None:
    supervisor.apply({"a": make_spec("a", Run="sleep 30", Uninstall=LifecycleStep("sleep 30", timeout=0.3))})
    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}

    supervisor.apply({})
    await supervisor.wait_settled([], timeout=10)

    assert supervisor.states() == {}
    assert "Uninstall failed: Uninstall timed out after 0.3s" in (tmp_path / "logs" / "a.log").read_text()


async def test_a_component_deployed_again_during_uninstall_is_installed_afresh(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path, wait_for: Waiter
) -> None:
    installs = tmp_path / "installs"
    gate = tmp_path / "gate"
    spec = make_spec(
        "a",
        Install=f"echo install >> {quote(str(installs))}",
        Run="sleep 30",
        Uninstall=f"while [ ! -e {quote(str(gate))} ]; do sleep 0.02; done",
    )
    supervisor.apply({"a": spec})
    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}
    supervisor.apply({})
    await wait_for(
        lambda: "Uninstall starting" in (tmp_path / "logs" / "a.log").read_text(), "Uninstall runs"
    )

    supervisor.apply({"a": spec})
    gate.touch()

    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}
    assert installs.read_text().splitlines() == ["install", "install"]

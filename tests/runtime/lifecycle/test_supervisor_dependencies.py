"""Dependencies at runtime: HARD dependencies gate starts, cascade restarts and order stops."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from shlex import quote

from edgewise.runtime.lifecycle import ComponentSpec, ComponentState, LifecycleSettings, LifecycleSupervisor

S = ComponentState
#: A background process that outlives its Startup script, as a daemon would.
DAEMON = "sleep 30 > /dev/null 2>&1 &"
SpecBuilder = Callable[..., ComponentSpec]
Waiter = Callable[..., Awaitable[None]]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def append(path: Path, text: str) -> str:
    return f"echo {text} >> {quote(str(path))}"


def record_all(supervisor: LifecycleSupervisor) -> list[tuple[str, S, S]]:
    seen: list[tuple[str, S, S]] = []
    supervisor.subscribe(lambda name, old, new: seen.append((name, old, new)))
    return seen


async def test_hard_dependent_starts_only_once_its_dependency_runs(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path, wait_for: Waiter
) -> None:
    order = tmp_path / "order"
    seen = record_all(supervisor)
    supervisor.apply(
        {
            # B is listed first and has nothing to install: only the gate holds it back.
            "b": make_spec("b", hard=("a",), Run=f"{append(order, 'b-run')}; exec sleep 30"),
            "a": make_spec("a", Install="sleep 0.2", Startup=f"sleep 0.2; {append(order, 'a-up')}"),
        }
    )

    assert await supervisor.wait_settled(["a", "b"], timeout=10) == {"a": S.RUNNING, "b": S.RUNNING}
    await wait_for(lambda: len(lines(order)) == 2, "b ran")
    assert lines(order) == ["a-up", "b-run"]
    assert seen.index(("a", S.STARTING, S.RUNNING)) < seen.index(("b", S.INSTALLED, S.STARTING))


async def test_dependent_waits_in_installed_while_its_dependency_is_not_ready(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder
) -> None:
    supervisor.apply(
        {"a": make_spec("a", Startup="exec sleep 30"), "b": make_spec("b", hard=("a",), Run="true")}
    )

    states = await supervisor.wait_settled(["a", "b"], timeout=0.5)

    assert states == {"a": S.STARTING, "b": S.INSTALLED}


async def test_dependency_outside_the_set_counts_as_ready(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder
) -> None:
    supervisor.apply({"b": make_spec("b", hard=("aws.greengrass.Nucleus",), Run="exec sleep 30")})

    assert await supervisor.wait_settled(["b"], timeout=10) == {"b": S.RUNNING}


async def test_soft_dependency_neither_gates_nor_restarts(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path, wait_for: Waiter
) -> None:
    runs = tmp_path / "runs"
    supervisor.apply(
        {
            "a": make_spec("a", Startup="exec sleep 30"),  # never reports RUNNING
            "b": make_spec("b", soft=("a",), Run=f"{append(runs, 'b')}; exec sleep 30"),
        }
    )

    assert await supervisor.wait_settled(["b"], timeout=10) == {"b": S.RUNNING}
    assert supervisor.state("a") is S.STARTING
    await wait_for(lambda: len(lines(runs)) == 1, "b ran")
    seen = record_all(supervisor)

    await supervisor.restart("a")

    await wait_for(lambda: supervisor.state("a") is S.STARTING, "a starting again")
    assert [change for change in seen if change[0] == "b"] == []
    assert supervisor.state("b") is S.RUNNING
    assert len(lines(runs)) == 1


async def test_restarting_a_dependency_restarts_its_hard_dependents(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path, wait_for: Waiter
) -> None:
    order = tmp_path / "order"
    supervisor.apply(
        {
            # Startup ends after the echo, so the file order is the order in which they became RUNNING.
            "a": make_spec("a", Startup=f"{append(order, 'a-run')}; {DAEMON}"),
            "b": make_spec("b", hard=("a",), Startup=f"{append(order, 'b-run')}; {DAEMON}"),
            "c": make_spec("c", hard=("b",), Startup=f"{append(order, 'c-run')}; {DAEMON}"),
        }
    )
    await wait_for(lambda: len(lines(order)) == 3, "all three ran")
    seen = record_all(supervisor)

    await supervisor.restart("a")

    await wait_for(lambda: len(lines(order)) == 6, "all three ran again")
    assert lines(order)[3:] == ["a-run", "b-run", "c-run"]
    assert await supervisor.wait_settled(["a", "b", "c"], timeout=10) == {
        "a": S.RUNNING,
        "b": S.RUNNING,
        "c": S.RUNNING,
    }
    assert ("b", S.STOPPING, S.INSTALLED) in seen
    assert seen.index(("a", S.STARTING, S.RUNNING)) < seen.index(("b", S.INSTALLED, S.STARTING))


async def test_crashing_dependency_restarts_its_hard_dependents(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path, wait_for: Waiter
) -> None:
    runs = tmp_path / "runs"
    crash_once = f"[ -e {quote(str(tmp_path / 'crashed'))} ] || {{ touch {quote(str(tmp_path / 'crashed'))}; exit 1; }}"
    supervisor.apply(
        {
            "a": make_spec("a", Run=f"sleep 0.2; {crash_once}; exec sleep 30"),
            "b": make_spec("b", hard=("a",), Run=f"{append(runs, 'b')}; exec sleep 30"),
        }
    )

    await wait_for(lambda: len(lines(runs)) == 2, "b ran twice")
    assert await supervisor.wait_settled(["a", "b"], timeout=10) == {"a": S.RUNNING, "b": S.RUNNING}


async def test_removal_stops_dependents_before_their_dependencies(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path
) -> None:
    order = tmp_path / "order"
    supervisor.apply(
        {
            "a": make_spec("a", Run="exec sleep 30", Shutdown=append(order, "a-stop")),
            "b": make_spec(
                "b", hard=("a",), Run="exec sleep 30", Shutdown=f"sleep 0.2; {append(order, 'b-stop')}"
            ),
            "keep": make_spec("keep", Run="exec sleep 30"),
        }
    )
    await supervisor.wait_settled(["a", "b", "keep"], timeout=10)

    supervisor.apply({"keep": make_spec("keep", Run="exec sleep 30")})

    assert await supervisor.wait_settled(["a", "b", "keep"], timeout=10) == {"keep": S.RUNNING}
    assert lines(order) == ["b-stop", "a-stop"]
    assert supervisor.states() == {"keep": S.RUNNING}


async def test_shutdown_stops_dependents_before_their_dependencies(
    settings: LifecycleSettings, make_spec: SpecBuilder, tmp_path: Path
) -> None:
    order = tmp_path / "order"
    supervisor = LifecycleSupervisor(settings, environment=lambda spec: {})
    supervisor.apply(
        {
            "c": make_spec(
                "c", hard=("b",), Run="exec sleep 30", Shutdown=f"sleep 0.1; {append(order, 'c')}"
            ),
            "a": make_spec("a", Run="exec sleep 30", Shutdown=append(order, "a")),
            "b": make_spec(
                "b", hard=("a",), Run="exec sleep 30", Shutdown=f"sleep 0.1; {append(order, 'b')}"
            ),
        }
    )
    await supervisor.wait_settled(["a", "b", "c"], timeout=10)

    await supervisor.shutdown(timeout=10)

    assert lines(order) == ["c", "b", "a"]


async def test_removed_dependency_lets_a_remaining_dependent_run_again(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder
) -> None:
    b = make_spec("b", hard=("a",), Run="exec sleep 30")
    supervisor.apply({"a": make_spec("a", Run="exec sleep 30"), "b": b})
    await supervisor.wait_settled(["a", "b"], timeout=10)

    supervisor.apply({"b": b})

    assert await supervisor.wait_settled(["a", "b"], timeout=10) == {"b": S.RUNNING}

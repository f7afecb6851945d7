"""The supervisor runs real ``sh -c`` components through the Greengrass lifecycle state machine."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path
from shlex import quote

import pytest

from edgewise.recipe import LifecycleStep, Skipif
from edgewise.runtime.lifecycle import (
    ComponentNotSupervisedError,
    ComponentSpec,
    ComponentState,
    ComponentStatus,
    LifecycleError,
    LifecycleSettings,
    LifecycleSupervisor,
)

S = ComponentState
SpecBuilder = Callable[..., ComponentSpec]
Waiter = Callable[..., Awaitable[None]]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def status_of(supervisor: LifecycleSupervisor, name: str) -> ComponentStatus:
    status = supervisor.status(name)
    assert status is not None, f"{name} is not supervised"
    return status


def record_transitions(supervisor: LifecycleSupervisor, name: str) -> list[tuple[S, S]]:
    seen: list[tuple[S, S]] = []
    supervisor.subscribe(lambda component, old, new: seen.append((old, new)) if component == name else None)
    return seen


async def test_run_step_makes_component_running(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder
) -> None:
    supervisor.apply({"a": make_spec("a", Run="sleep 30")})

    states = await supervisor.wait_settled(["a"], timeout=10)

    assert states == {"a": S.RUNNING}
    status = status_of(supervisor, "a")
    assert len(status.pids) == 1


async def test_run_exit_zero_finishes_component(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path, wait_for: Waiter
) -> None:
    shutdown_marker = tmp_path / "shutdown"
    supervisor.apply({"a": make_spec("a", Run="true", Shutdown=f"touch {quote(str(shutdown_marker))}")})

    await wait_for(lambda: supervisor.state("a") is S.FINISHED, "a FINISHED")

    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.FINISHED}
    assert shutdown_marker.exists()


async def test_component_without_run_or_startup_finishes(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder
) -> None:
    supervisor.apply({"a": make_spec("a", Install="true")})

    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.FINISHED}


async def test_crash_errors_then_restarts(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path, wait_for: Waiter
) -> None:
    runs = tmp_path / "runs"
    # Crashes on its first run only.
    script = f"echo run >> {quote(str(runs))}; [ $(wc -l < {quote(str(runs))}) -ge 2 ] || exit 3; sleep 30"
    seen = record_transitions(supervisor, "a")
    supervisor.apply({"a": make_spec("a", Run=script)})

    await wait_for(lambda: len(lines(runs)) == 2 and supervisor.state("a") is S.RUNNING, "a restarted")

    assert (S.RUNNING, S.ERRORED) in seen
    assert seen[-1] == (S.STARTING, S.RUNNING)
    status = status_of(supervisor, "a")
    assert status.last_exit_code == 3
    assert status.last_failure == "Run exited with code 3"
    assert status.error_counts == {S.RUNNING: 1}


async def test_three_crashes_break_component(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path, wait_for: Waiter
) -> None:
    runs = tmp_path / "runs"
    supervisor.apply({"a": make_spec("a", Run=f"echo run >> {quote(str(runs))}; exit 1")})

    await wait_for(lambda: supervisor.state("a") is S.BROKEN, "a BROKEN")

    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.BROKEN}
    assert len(lines(runs)) == 3
    status = status_of(supervisor, "a")
    assert "3 errors" in str(status.last_failure)


async def test_a_failed_step_s_last_stderr_line_is_part_of_its_failure_reason(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder
) -> None:
    install = "echo progress; echo first >&2; echo 'package refused: bad digest' >&2; echo '  ' >&2; exit 1"
    supervisor.apply({"a": make_spec("a", Install=install, Run="sleep 30")})

    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.BROKEN}
    failure = str(status_of(supervisor, "a").last_failure)
    assert failure.startswith("Install exited with code 1: package refused: bad digest; 3 errors")


async def test_a_run_step_that_dies_soon_after_starting_is_not_taken_for_running(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder
) -> None:
    supervisor.apply({"a": make_spec("a", Run="sleep 1; exit 1")})

    # Without a stability window the component counts as up the moment its process starts.
    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}
    # With one, it has to stay up: this one keeps dying until it is BROKEN.
    assert await supervisor.wait_settled(["a"], timeout=60, stable_for=3.0) == {"a": S.BROKEN}


async def test_a_component_that_stays_up_counts_once_the_window_has_passed(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    supervisor.apply({"a": make_spec("a", Run="sleep 30"), "b": make_spec("b", Install="true")})

    assert await supervisor.wait_settled(["a", "b"], timeout=10, stable_for=0.5) == {
        "a": S.RUNNING,
        "b": S.FINISHED,
    }
    assert loop.time() - started >= 0.5


async def test_broken_component_stays_broken_until_reinstalled(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path, wait_for: Waiter
) -> None:
    installs = tmp_path / "installs"
    fixed = tmp_path / "fixed"
    spec = make_spec(
        "a",
        Install=f"echo install >> {quote(str(installs))}",
        Run=f"[ -e {quote(str(fixed))} ] || exit 1; sleep 30",
    )
    supervisor.apply({"a": spec})
    await wait_for(lambda: supervisor.state("a") is S.BROKEN, "a BROKEN")

    supervisor.apply({"a": spec})  # unchanged, no reinstall: nothing happens
    assert await supervisor.wait_settled(["a"], timeout=1) == {"a": S.BROKEN}

    fixed.touch()
    supervisor.apply({"a": spec}, reinstall=["a"])

    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}
    assert len(lines(installs)) == 2
    status = status_of(supervisor, "a")
    assert status.error_counts == {}


async def test_errors_further_apart_than_the_window_never_break(
    settings: LifecycleSettings, make_spec: SpecBuilder, tmp_path: Path, wait_for: Waiter
) -> None:
    runs = tmp_path / "runs"
    # Every reading of the clock is two windows later than the previous one.
    clock = itertools.count(0.0, 2 * settings.error_window).__next__
    supervisor = LifecycleSupervisor(settings, environment=lambda spec: {}, clock=lambda: float(clock()))
    script = f"echo run >> {quote(str(runs))}; [ $(wc -l < {quote(str(runs))}) -ge 5 ] || exit 1; sleep 30"
    try:
        supervisor.apply({"a": make_spec("a", Run=script)})
        await wait_for(lambda: len(lines(runs)) == 5 and supervisor.state("a") is S.RUNNING, "fifth run")
        status = status_of(supervisor, "a")
        assert status.error_counts == {S.RUNNING: 1}
    finally:
        await supervisor.shutdown(timeout=10)


async def test_recipe_error_reset_time_overrides_the_window(
    settings: LifecycleSettings, make_spec: SpecBuilder, tmp_path: Path, wait_for: Waiter
) -> None:
    runs = tmp_path / "runs"
    clock = itertools.count(0.0, 10.0).__next__  # 10 s between errors: within 1 h, beyond 5 s
    supervisor = LifecycleSupervisor(settings, environment=lambda spec: {}, clock=lambda: float(clock()))
    script = f"echo run >> {quote(str(runs))}; [ $(wc -l < {quote(str(runs))}) -ge 4 ] || exit 1; sleep 30"
    try:
        supervisor.apply({"a": make_spec("a", Run=script, error_reset_time=5.0)})
        await wait_for(lambda: len(lines(runs)) == 4 and supervisor.state("a") is S.RUNNING, "fourth run")
        status = status_of(supervisor, "a")
        assert status.error_counts == {S.RUNNING: 1}
    finally:
        await supervisor.shutdown(timeout=10)


async def test_install_failure_is_retried(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path
) -> None:
    marker = tmp_path / "failed-once"
    install = f"[ -e {quote(str(marker))} ] && exit 0; touch {quote(str(marker))}; exit 7"
    seen = record_transitions(supervisor, "a")
    supervisor.apply({"a": make_spec("a", Install=install, Run="sleep 30")})

    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}
    assert seen[:3] == [(S.NEW, S.ERRORED), (S.ERRORED, S.NEW), (S.NEW, S.INSTALLED)]
    status = status_of(supervisor, "a")
    assert status.error_counts == {}  # cleared by NEW -> INSTALLED


async def test_recover_runs_on_every_error(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path, wait_for: Waiter
) -> None:
    recovered = tmp_path / "recovered"
    spec = make_spec("a", Run="exit 1", Recover=f"echo recover >> {quote(str(recovered))}")
    supervisor.apply({"a": spec})

    await wait_for(lambda: supervisor.state("a") is S.BROKEN, "a BROKEN")

    assert len(lines(recovered)) == 2  # the third error goes to BROKEN instead of ERRORED


async def test_startup_exit_zero_makes_component_running(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder
) -> None:
    seen = record_transitions(supervisor, "a")
    supervisor.apply({"a": make_spec("a", Startup="true")})

    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}
    assert seen[-1] == (S.STARTING, S.RUNNING)


async def test_startup_process_that_keeps_running_waits_for_reported_running(
    supervisor: LifecycleSupervisor,
    make_spec: SpecBuilder,
    tmp_path: Path,
    wait_for: Waiter,
    alive: Callable[[int], bool],
) -> None:
    pid_file = tmp_path / "pid"
    supervisor.apply({"a": make_spec("a", Startup=f"echo $$ > {quote(str(pid_file))}; exec sleep 30")})
    await wait_for(lambda: pid_file.exists() and supervisor.state("a") is S.STARTING, "Startup launched")

    assert await supervisor.wait_settled(["a"], timeout=0.3) == {"a": S.STARTING}
    assert supervisor.report_state("a", S.RUNNING)

    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}
    pid = int(pid_file.read_text())
    assert alive(pid)  # still tracked, killed on stop
    await supervisor.stop("a")
    assert not alive(pid)


async def test_startup_timeout_errors_and_kills_the_startup_process(
    supervisor: LifecycleSupervisor,
    make_spec: SpecBuilder,
    tmp_path: Path,
    wait_for: Waiter,
    alive: Callable[[int], bool],
) -> None:
    pids = tmp_path / "pids"
    startup = LifecycleStep(f"echo $$ >> {quote(str(pids))}; exec sleep 30", timeout=0.3)
    seen = record_transitions(supervisor, "a")
    supervisor.apply({"a": make_spec("a", Startup=startup)})

    await wait_for(lambda: (S.STARTING, S.ERRORED) in seen, "Startup timed out")

    first = int(lines(pids)[0])
    await wait_for(lambda: not alive(first), "timed-out Startup killed", timeout=2)
    status = status_of(supervisor, "a")
    assert status.last_failure == "Startup did not finish within 0.3s"


async def test_report_state_follows_the_accepted_transitions(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, wait_for: Waiter
) -> None:
    supervisor.apply({"a": make_spec("a", Run="sleep 30")})
    await supervisor.wait_settled(["a"], timeout=10)
    seen = record_transitions(supervisor, "a")

    assert not supervisor.report_state("a", S.RUNNING)  # RUNNING -> RUNNING is not a transition
    assert not supervisor.report_state("a", S.NEW)
    assert not supervisor.report_state("missing", S.ERRORED)
    assert supervisor.report_state("a", S.ERRORED)

    await wait_for(lambda: seen[-1:] == [(S.STARTING, S.RUNNING)], "restarted after the reported error")
    assert seen[0] == (S.RUNNING, S.ERRORED)


async def test_run_timeout_kills_the_whole_process_group(
    supervisor: LifecycleSupervisor,
    make_spec: SpecBuilder,
    tmp_path: Path,
    wait_for: Waiter,
    alive: Callable[[int], bool],
) -> None:
    child_file = tmp_path / "child"
    run = LifecycleStep(f"sleep 30 & echo $! > {quote(str(child_file))}; wait", timeout=0.3)
    seen = record_transitions(supervisor, "a")
    supervisor.apply({"a": make_spec("a", Run=run)})
    await wait_for(lambda: child_file.exists() and child_file.read_text().strip() != "", "child started")
    child = int(child_file.read_text())

    await wait_for(lambda: (S.RUNNING, S.ERRORED) in seen, "Run timed out")

    assert not alive(child)
    status = status_of(supervisor, "a")
    assert status.last_failure == "Run timed out after 0.3s"


async def test_process_ignoring_sigterm_is_killed_after_the_grace_period(
    supervisor: LifecycleSupervisor,
    make_spec: SpecBuilder,
    tmp_path: Path,
    wait_for: Waiter,
    alive: Callable[[int], bool],
) -> None:
    pid_file = tmp_path / "pid"
    # The trap is inherited by the sleep; neither will die of SIGTERM.
    run = f"trap '' TERM; sleep 30 & echo $! > {quote(str(pid_file))}; wait"
    supervisor.apply({"a": make_spec("a", Run=run)})
    await wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "", "started")
    child = int(pid_file.read_text())

    await supervisor.stop("a")

    assert supervisor.state("a") is S.FINISHED
    assert not alive(child)


async def test_stop_keeps_component_finished_until_restarted(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path, wait_for: Waiter
) -> None:
    runs = tmp_path / "runs"
    spec = make_spec("a", Run=f"echo run >> {quote(str(runs))}; exec sleep 30")
    supervisor.apply({"a": spec})
    await wait_for(lambda: len(lines(runs)) == 1 and supervisor.state("a") is S.RUNNING, "first run")
    status = status_of(supervisor, "a")
    (pid,) = status.pids

    await supervisor.stop("a")
    assert supervisor.state("a") is S.FINISHED
    supervisor.apply({"a": spec})  # an unchanged deployment leaves it stopped
    assert await supervisor.wait_settled(["a"], timeout=0.3) == {"a": S.FINISHED}

    await supervisor.restart("a")

    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}
    await wait_for(lambda: len(lines(runs)) == 2, "second run")
    status = status_of(supervisor, "a")
    assert status.pids
    assert status.pids != (pid,)


async def test_restart_reruns_run_without_reinstalling(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path, wait_for: Waiter
) -> None:
    log = tmp_path / "log"
    spec = make_spec(
        "a",
        Install=f"echo install >> {quote(str(log))}",
        Run=f"echo run >> {quote(str(log))}; exec sleep 30",
        Shutdown=f"echo shutdown >> {quote(str(log))}",
    )
    supervisor.apply({"a": spec})
    await wait_for(lambda: lines(log) == ["install", "run"], "first run")

    await supervisor.restart("a")

    await wait_for(lambda: lines(log) == ["install", "run", "shutdown", "run"], "second run")
    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}


async def test_restart_of_a_broken_component_reinstalls_it(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path, wait_for: Waiter
) -> None:
    installs = tmp_path / "installs"
    supervisor.apply({"a": make_spec("a", Install=f"echo i >> {quote(str(installs))}", Run="exit 1")})
    await wait_for(lambda: supervisor.state("a") is S.BROKEN, "a BROKEN")

    await supervisor.restart("a")

    assert supervisor.state("a") is not S.BROKEN
    await wait_for(lambda: len(lines(installs)) == 2, "second Install")


async def test_restart_and_stop_refuse_unknown_and_builtin_components(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder
) -> None:
    supervisor.apply({"core": make_spec("core", builtin=True)})

    with pytest.raises(ComponentNotSupervisedError, match="'missing'"):
        await supervisor.restart("missing")
    with pytest.raises(ComponentNotSupervisedError):
        await supervisor.stop("missing")
    with pytest.raises(LifecycleError, match="built-in"):
        await supervisor.stop("core")


async def test_builtin_component_is_running_at_once_and_runs_nothing(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    supervisor.apply({"core": make_spec("core", builtin=True, Run=f"touch {quote(str(marker))}")})

    assert supervisor.state("core") is S.RUNNING
    assert await supervisor.wait_settled(["core"], timeout=1) == {"core": S.RUNNING}
    assert not marker.exists()


async def test_changed_spec_restarts_and_new_version_reinstalls(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path, wait_for: Waiter
) -> None:
    log = tmp_path / "log"
    install = f"echo install >> {quote(str(log))}"

    def spec(version: str, word: str) -> ComponentSpec:
        return make_spec(
            "a", version=version, Install=install, Run=f"echo {word} >> {quote(str(log))}; sleep 30"
        )

    supervisor.apply({"a": spec("1.0.0", "one")})
    await wait_for(lambda: lines(log) == ["install", "one"], "first run")
    supervisor.apply({"a": spec("1.0.0", "two")})
    await wait_for(lambda: lines(log) == ["install", "one", "two"], "restarted without Install")
    supervisor.apply({"a": spec("2.0.0", "two")})
    await wait_for(lambda: lines(log) == ["install", "one", "two", "install", "two"], "reinstalled")

    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}
    assert status_of(supervisor, "a").version == "2.0.0"


async def test_unchanged_spec_is_left_alone(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, tmp_path: Path, wait_for: Waiter
) -> None:
    runs = tmp_path / "runs"
    spec = make_spec("a", Run=f"echo run >> {quote(str(runs))}; exec sleep 30")
    supervisor.apply({"a": spec})
    await wait_for(lambda: len(lines(runs)) == 1 and supervisor.state("a") is S.RUNNING, "first run")
    seen = record_transitions(supervisor, "a")

    supervisor.apply({"a": make_spec("a", Run=f"echo run >> {quote(str(runs))}; exec sleep 30")})

    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}
    assert seen == []
    assert len(lines(runs)) == 1


async def test_removed_component_is_stopped_and_forgotten(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, alive: Callable[[int], bool]
) -> None:
    supervisor.apply({"a": make_spec("a", Run="exec sleep 30"), "b": make_spec("b", Run="exec sleep 30")})
    await supervisor.wait_settled(["a", "b"], timeout=10)
    status = status_of(supervisor, "a")
    (pid,) = status.pids

    supervisor.apply({"b": make_spec("b", Run="exec sleep 30")})
    assert await supervisor.wait_settled(["a", "b"], timeout=10) == {"b": S.RUNNING}

    assert supervisor.state("a") is None
    assert not alive(pid)


async def test_shutdown_stops_every_process(
    settings: LifecycleSettings, make_spec: SpecBuilder, tmp_path: Path, alive: Callable[[int], bool]
) -> None:
    pids = tmp_path / "pids"
    record = f"sleep 30 & echo $! >> {quote(str(pids))}; echo $$ >> {quote(str(pids))}"
    supervisor = LifecycleSupervisor(settings, environment=lambda spec: {})
    supervisor.apply(
        {
            "run": make_spec("run", Run=f"{record}; wait"),
            "daemon": make_spec("daemon", Startup=f"{record}; exit 0"),
            "core": make_spec("core", builtin=True),
        }
    )
    await supervisor.wait_settled(["run", "daemon", "core"], timeout=10)
    recorded = [int(pid) for pid in lines(pids)]
    assert len(recorded) == 4

    await supervisor.shutdown(timeout=10)

    assert supervisor.states() == {}
    assert [pid for pid in recorded if alive(pid)] == []
    with pytest.raises(RuntimeError, match="shut down"):
        supervisor.apply({})


async def test_component_output_and_state_changes_go_to_its_log(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, settings: LifecycleSettings, wait_for: Waiter
) -> None:
    supervisor.apply({"a": make_spec("a", Run="echo to stdout; echo to stderr >&2; exit 2")})
    await wait_for(lambda: supervisor.state("a") is S.BROKEN, "a BROKEN")

    text = (settings.log_dir / "a.log").read_text()
    assert "[INFO] (Run) to stdout\n" in text
    assert "[WARN] (Run) to stderr\n" in text
    assert "[INFO] (lifecycle) state RUNNING -> ERRORED: Run exited with code 2\n" in text
    assert (
        "[INFO] (lifecycle) state RUNNING -> BROKEN: Run exited with code 2; 3 errors within 3600s\n" in text
    )


async def test_step_environment_layers_runtime_then_lifecycle_then_step(
    supervisor: LifecycleSupervisor,
    make_spec: SpecBuilder,
    settings: LifecycleSettings,
    runtime_env: dict[str, str],
    wait_for: Waiter,
) -> None:
    run = LifecycleStep(
        'echo "$AWS_REGION $EDGEWISE_LEVEL $LEVEL_TWO $ONLY_STEP $PWD"; [ -n "$PATH" ]',
        setenv={"LEVEL_TWO": "step", "ONLY_STEP": "yes"},
    )
    spec = make_spec("a", Run=run, setenv={"EDGEWISE_LEVEL": "lifecycle", "LEVEL_TWO": "lifecycle"})
    supervisor.apply({"a": spec})

    await wait_for(lambda: supervisor.state("a") is S.FINISHED, "a FINISHED")
    text = (settings.log_dir / "a.log").read_text()
    assert f"(Run) {runtime_env['AWS_REGION']} lifecycle step yes {settings.work_dir / 'a'}\n" in text


async def test_skipped_install_counts_as_success(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, settings: LifecycleSettings, tmp_path: Path
) -> None:
    marker = tmp_path / "installed"
    install = LifecycleStep(f"touch {quote(str(marker))}", skipif=Skipif("exists", str(tmp_path)))
    supervisor.apply({"a": make_spec("a", Install=install, Run="exec sleep 30")})

    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}
    assert not marker.exists()
    assert "(lifecycle) Install skipped: Skipif " in (settings.log_dir / "a.log").read_text()


async def test_invalid_skipif_fails_the_step(supervisor: LifecycleSupervisor, make_spec: SpecBuilder) -> None:
    supervisor.apply({"a": make_spec("a", Install=LifecycleStep("true", skipif=Skipif("sometimes", "x")))})

    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.BROKEN}
    status = status_of(supervisor, "a")
    assert "Skipif check must be 'onpath' or 'exists', not 'sometimes'" in str(status.last_failure)


def test_apply_rejects_misnamed_specs_and_unknown_reinstalls(make_spec: SpecBuilder) -> None:
    supervisor = LifecycleSupervisor(
        LifecycleSettings(work_dir=Path("/nonexistent/w"), log_dir=Path("/nonexistent/l")),
        environment=lambda spec: {},
    )

    with pytest.raises(ValueError, match=r"specs\['a'\] is the spec of 'b'"):
        supervisor.apply({"a": make_spec("b")})
    with pytest.raises(ValueError, match=r"component name '\.\./x' cannot be used as a directory name"):
        supervisor.apply({"../x": make_spec("../x")})
    with pytest.raises(ValueError, match="reinstall names components that are not in specs: ghost"):
        supervisor.apply({}, reinstall=["ghost"])


async def test_install_timeout_kills_its_process_group_and_retries(
    supervisor: LifecycleSupervisor,
    make_spec: SpecBuilder,
    tmp_path: Path,
    wait_for: Waiter,
    alive: Callable[[int], bool],
) -> None:
    children = tmp_path / "children"
    install = LifecycleStep(f"sleep 30 & echo $! >> {quote(str(children))}; wait", timeout=0.2)
    seen = record_transitions(supervisor, "a")
    supervisor.apply({"a": make_spec("a", Install=install, Run="exec sleep 30")})

    await wait_for(lambda: (S.ERRORED, S.NEW) in seen, "Install timed out and is retried")

    first = int(lines(children)[0])
    assert not alive(first)
    assert status_of(supervisor, "a").last_failure == "Install timed out after 0.2s"


async def test_second_retry_waits_for_the_backoff(
    settings: LifecycleSettings, make_spec: SpecBuilder, tmp_path: Path, wait_for: Waiter
) -> None:
    starts = tmp_path / "starts"
    backoff = LifecycleSettings(
        work_dir=settings.work_dir,
        log_dir=settings.log_dir,
        error_threshold=4,
        restart_backoff_base=0.3,
        restart_backoff_cap=0.3,
    )
    supervisor = LifecycleSupervisor(backoff, environment=lambda spec: {})
    try:
        supervisor.apply({"a": make_spec("a", Run=f"date +%s.%N >> {quote(str(starts))}; exit 1")})
        await wait_for(lambda: supervisor.state("a") is S.BROKEN, "a BROKEN")
    finally:
        await supervisor.shutdown(timeout=10)

    times = [float(line) for line in lines(starts)]
    assert len(times) == 4
    assert times[2] - times[1] >= 0.3
    assert times[3] - times[2] >= 0.3


async def test_shutdown_timeout_kills_what_is_still_stopping(
    settings: LifecycleSettings,
    make_spec: SpecBuilder,
    tmp_path: Path,
    wait_for: Waiter,
    alive: Callable[[int], bool],
) -> None:
    pids = tmp_path / "pids"
    supervisor = LifecycleSupervisor(settings, environment=lambda spec: {})
    hanging = make_spec(
        "a",
        Run=f"echo $$ >> {quote(str(pids))}; exec sleep 30",
        Shutdown=f"echo $$ >> {quote(str(pids))}; exec sleep 30",
    )
    supervisor.apply({"a": hanging})
    await wait_for(lambda: len(lines(pids)) == 1 and supervisor.state("a") is S.RUNNING, "a running")

    async with asyncio.timeout(5):
        await supervisor.shutdown(timeout=0.3)

    assert supervisor.states() == {}
    recorded = [int(pid) for pid in lines(pids)]
    assert len(recorded) == 2
    assert [pid for pid in recorded if alive(pid)] == []

"""Starting steps: Skipif, environment layers, users, and the process group each step runs in."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from shlex import quote

import pytest

from edgewise.recipe import LifecycleStep, Skipif
from edgewise.runtime.lifecycle import ComponentSpec, ComponentState, LifecycleSettings, LifecycleSupervisor
from edgewise.runtime.lifecycle.process import MAX_LINE_BYTES, Identity, StepProcess, group_alive
from edgewise.runtime.lifecycle.step import (
    DEFAULT_PATH,
    inherited_environment,
    resolve_identity,
    skip_reason,
    step_environment,
    step_timeout,
    wanted_user,
)

SpecBuilder = Callable[..., ComponentSpec]
Waiter = Callable[..., Awaitable[None]]
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


@pytest.mark.parametrize(
    ("skipif", "skipped"),
    [
        (Skipif("onpath", "sh"), True),
        (Skipif("onpath", "edgewise-no-such-program"), False),
        (Skipif("onpath", "edgewise-no-such-program", negate=True), True),
        (Skipif("onpath", "sh", negate=True), False),
        (Skipif("exists", "present.txt"), True),
        (Skipif("exists", "absent.txt"), False),
        (Skipif("exists", "absent.txt", negate=True), True),
        (Skipif("exists", "present.txt", negate=True), False),
    ],
)
def test_skipif_checks_path_and_files_relative_to_the_work_dir(
    skipif: Skipif, skipped: bool, tmp_path: Path
) -> None:
    (tmp_path / "present.txt").touch()

    reason = skip_reason(skipif, path=DEFAULT_PATH, cwd=tmp_path)

    assert (reason is not None) is skipped


def test_skipif_with_an_unknown_check_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Skipif check must be 'onpath' or 'exists', not 'maybe'"):
        skip_reason(Skipif("maybe", "x"), path=DEFAULT_PATH, cwd=tmp_path)


def test_steps_inherit_only_a_minimal_environment() -> None:
    base = inherited_environment(
        {"PATH": "/bin", "HOME": "/root", "LANG": "C.UTF-8", "AWS_SECRET_ACCESS_KEY": "x"}
    )

    assert base == {"PATH": "/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    assert inherited_environment({}) == {"PATH": DEFAULT_PATH}


def test_later_environment_layers_win() -> None:
    identity = Identity(user="svc", uid=1000, gid=1000, home="/home/svc")
    step = LifecycleStep("true", setenv={"C": "step", "D": "step"})

    env = step_environment(
        {"PATH": "/bin", "HOME": "/root", "A": "base", "B": "base"},
        identity=identity,
        runtime={"B": "runtime", "C": "runtime", "HOME": "/runtime"},
        lifecycle_setenv={"C": "lifecycle", "D": "lifecycle"},
        step=step,
    )

    assert env == {
        "PATH": "/bin",
        "HOME": "/runtime",
        "USER": "svc",
        "LOGNAME": "svc",
        "A": "base",
        "B": "runtime",
        "C": "step",
        "D": "step",
    }


def test_default_timeouts_apply_when_the_recipe_sets_none() -> None:
    assert step_timeout("Install", LifecycleStep("true")) == 120.0
    assert step_timeout("Startup", LifecycleStep("true")) == 120.0
    assert step_timeout("Shutdown", LifecycleStep("true")) == 15.0
    assert step_timeout("Recover", LifecycleStep("true")) == 60.0
    assert step_timeout("Run", LifecycleStep("true")) is None
    assert step_timeout("Run", LifecycleStep("true", timeout=3.5)) == 3.5


def test_only_a_root_runtime_switches_users_and_never_for_privileged_steps(make_spec: SpecBuilder) -> None:
    plain, privileged = LifecycleStep("true"), LifecycleStep("true", requires_privilege=True)
    own_user = make_spec("a", posix_user="svc:svc")

    assert wanted_user(own_user, plain, default="nobody", euid=0) == "svc:svc"
    assert wanted_user(make_spec("a"), plain, default="nobody", euid=0) == "nobody"
    assert wanted_user(make_spec("a"), plain, default=None, euid=0) is None
    assert wanted_user(own_user, privileged, default="nobody", euid=0) is None
    assert wanted_user(own_user, plain, default="nobody", euid=1000) is None


def test_identity_resolves_names_and_ids_and_names_what_is_missing() -> None:
    root = pwd.getpwuid(0)

    assert resolve_identity(root.pw_name).uid == 0
    assert resolve_identity("0:0").gid == 0
    with pytest.raises(LookupError, match="user 'edgewise-no-such-user' does not exist"):
        resolve_identity("edgewise-no-such-user")
    with pytest.raises(LookupError, match="group 'edgewise-no-such-group' does not exist"):
        resolve_identity(f"{root.pw_name}:edgewise-no-such-group")


class Output:
    def __init__(self) -> None:
        self.lines: list[tuple[bool, str]] = []
        self.exited = asyncio.Event()


@pytest.fixture
async def spawn(tmp_path: Path) -> AsyncIterator[Callable[[str], Awaitable[tuple[StepProcess, Output]]]]:
    started: list[StepProcess] = []

    async def start(script: str) -> tuple[StepProcess, Output]:
        output = Output()
        process = await StepProcess.spawn(
            "Run",
            script,
            cwd=tmp_path,
            env={"PATH": DEFAULT_PATH},
            identity=None,
            on_line=lambda is_stderr, text: output.lines.append((is_stderr, text)),
            on_exit=output.exited.set,
        )
        started.append(process)
        return process, output

    yield start
    for process in started:
        await process.terminate(0.0)


async def test_exit_is_noticed_while_a_background_child_holds_the_output(
    spawn: Callable[[str], Awaitable[tuple[StepProcess, Output]]],
) -> None:
    process, output = await spawn("sleep 30 & echo started; exit 4")

    async with asyncio.timeout(5):
        await output.exited.wait()

    assert process.returncode == 4
    assert not process.finished  # the background sleep still holds the pipes
    assert group_alive(process.pid)
    await process.terminate(0.5)
    assert not group_alive(process.pid)
    assert output.lines == [(False, "started")]


async def test_output_is_split_into_lines_and_long_lines_into_pieces(
    spawn: Callable[[str], Awaitable[tuple[StepProcess, Output]]], wait_for: Waiter
) -> None:
    process, output = await spawn(
        f"printf 'one\\r\\ntwo\\n'; echo err >&2; head -c {MAX_LINE_BYTES + 10} /dev/zero | tr '\\0' x; printf end"
    )

    await wait_for(lambda: process.finished, "process finished")

    assert (False, "one") in output.lines
    assert (False, "two") in output.lines
    assert (True, "err") in output.lines
    stdout = [text for is_stderr, text in output.lines if not is_stderr]
    assert stdout[2:] == ["x" * MAX_LINE_BYTES, "x" * 10 + "end"]


async def test_terminate_kills_every_process_of_the_group(
    spawn: Callable[[str], Awaitable[tuple[StepProcess, Output]]],
    tmp_path: Path,
    wait_for: Waiter,
    alive: Callable[[int], bool],
) -> None:
    pids = tmp_path / "pids"
    process, _ = await spawn(f"(sleep 30 & echo $! >> {pids}; wait) & sleep 30 & echo $! >> {pids}; wait")
    await wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, "children started")
    children = [int(pid) for pid in pids.read_text().split()]

    await process.terminate(0.5)

    assert process.returncode is not None
    assert [pid for pid in children if alive(pid)] == []


@pytest.fixture
def shared_root() -> Iterator[Path]:
    """A root other users can enter (pytest's tmp_path is private to root)."""
    root = Path(tempfile.mkdtemp(prefix="edgewise-lifecycle-"))
    root.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@as_root
async def test_steps_run_as_the_configured_user_unless_privileged(
    make_spec: SpecBuilder, shared_root: Path
) -> None:
    nobody = pwd.getpwnam("nobody")
    settings = LifecycleSettings(work_dir=shared_root / "work", log_dir=shared_root / "logs", run_as="nobody")
    supervisor = LifecycleSupervisor(settings, environment=lambda spec: {})
    spec = make_spec(
        "a",
        Install=LifecycleStep("id -u > privileged", requires_privilege=True),
        Startup='echo "$(id -u) $HOME $USER" > plain',
    )
    try:
        supervisor.apply({"a": spec})
        assert await supervisor.wait_settled(["a"], timeout=10) == {"a": ComponentState.RUNNING}
    finally:
        await supervisor.shutdown(timeout=10)

    work = settings.work_dir / "a"
    assert work.stat().st_uid == nobody.pw_uid
    assert (work / "privileged").read_text() == "0\n"
    assert (work / "plain").read_text() == f"{nobody.pw_uid} {nobody.pw_dir} nobody\n"


@as_root
async def test_unknown_user_fails_the_step_with_the_reason(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder
) -> None:
    supervisor.apply({"a": make_spec("a", posix_user="edgewise-no-such-user", Run="true")})

    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": ComponentState.BROKEN}
    status = supervisor.status("a")
    assert status is not None
    assert status.last_failure is not None
    assert status.last_failure.startswith(
        "Component 'a' cannot run its Run step: cannot run as 'edgewise-no-such-user': "
        "user 'edgewise-no-such-user' does not exist"
    )


async def test_step_that_cannot_be_spawned_fails_with_the_reason(
    supervisor: LifecycleSupervisor, make_spec: SpecBuilder, settings: LifecycleSettings
) -> None:
    settings.work_dir.mkdir(parents=True)
    (settings.work_dir / "a").write_text("a file where the work directory should be")
    supervisor.apply({"a": make_spec("a", Run=f"echo {quote('never')}")})

    assert await supervisor.wait_settled(["a"], timeout=10) == {"a": ComponentState.BROKEN}
    status = supervisor.status("a")
    assert status is not None
    assert "Component 'a' cannot run its Run step" in str(status.last_failure)

"""Fixtures for the lifecycle tests: fast settings under tmp_path, a supervisor that is always shut down,
a spec builder, and bounded waiting on conditions."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Protocol

import pytest
from tests.support.waiting import eventually

from edgewise.recipe import DependencyType, Lifecycle, LifecycleStep
from edgewise.runtime.lifecycle import ComponentSpec, LifecycleSettings, LifecycleSupervisor


class SpecBuilder(Protocol):
    def __call__(
        self,
        name: str,
        *,
        version: str = "1.0.0",
        hard: tuple[str, ...] = (),
        soft: tuple[str, ...] = (),
        setenv: Mapping[str, str] | None = None,
        error_reset_time: float | None = None,
        builtin: bool = False,
        posix_user: str | None = None,
        **steps: str | LifecycleStep,
    ) -> ComponentSpec: ...


Waiter = Callable[..., Awaitable[None]]


@pytest.fixture
def settings(tmp_path: Path) -> LifecycleSettings:
    return LifecycleSettings(
        work_dir=tmp_path / "work",
        log_dir=tmp_path / "logs",
        grace_period=0.5,
        restart_backoff_base=0.0,
        restart_backoff_cap=0.0,
    )


@pytest.fixture
def runtime_env() -> dict[str, str]:
    """What the fake runtime adds to every step's environment."""
    return {"AWS_REGION": "eu-west-1", "EDGEWISE_LEVEL": "runtime"}


@pytest.fixture
async def supervisor(
    settings: LifecycleSettings, runtime_env: dict[str, str]
) -> AsyncIterator[LifecycleSupervisor]:
    supervisor = LifecycleSupervisor(settings, environment=lambda spec: runtime_env)
    yield supervisor
    await supervisor.shutdown(timeout=10)
    assert supervisor.states() == {}


@pytest.fixture
def make_spec() -> SpecBuilder:
    def build(
        name: str,
        *,
        version: str = "1.0.0",
        hard: tuple[str, ...] = (),
        soft: tuple[str, ...] = (),
        setenv: Mapping[str, str] | None = None,
        error_reset_time: float | None = None,
        builtin: bool = False,
        posix_user: str | None = None,
        **steps: str | LifecycleStep,
    ) -> ComponentSpec:
        lifecycle = Lifecycle(
            steps={
                key: LifecycleStep(step) if isinstance(step, str) else step for key, step in steps.items()
            },
            setenv=setenv or {},
            error_reset_time=error_reset_time,
        )
        dependencies = {dep: DependencyType.HARD for dep in hard} | {dep: DependencyType.SOFT for dep in soft}
        return ComponentSpec(
            name, version, lifecycle, dependencies=dependencies, builtin=builtin, posix_user=posix_user
        )

    return build


@pytest.fixture
def wait_for() -> Waiter:
    """``await wait_for(condition, what)``: poll ``condition`` until it holds, failing after a deadline."""

    async def wait(condition: Callable[[], bool], what: str, *, timeout: float = 10.0) -> None:
        await eventually(condition, timeout=timeout, what=what)

    return wait


def process_alive(pid: int) -> bool:
    """True while ``pid`` is a live (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")


@pytest.fixture
def alive() -> Callable[[int], bool]:
    return process_alive

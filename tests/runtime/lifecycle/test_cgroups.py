"""Resource limits through cgroups v2, proven against a directory laid out like a cgroup v2 hierarchy, and the
warning when there is no usable hierarchy."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from edgewise.runtime.lifecycle import ComponentSpec, ComponentState, LifecycleSettings, LifecycleSupervisor
from edgewise.runtime.lifecycle.cgroups import CgroupError, CgroupLimiter, ResourceLimits

S = ComponentState
SpecBuilder = Callable[..., ComponentSpec]
Waiter = Callable[..., Awaitable[None]]


@pytest.fixture
def hierarchy(tmp_path: Path) -> Path:
    """A directory that offers the cpu and memory controllers, as a cgroup v2 directory does."""
    parent = tmp_path / "cgroup"
    parent.mkdir()
    (parent / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (parent / "cgroup.subtree_control").write_text("\n")
    return parent


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ({}, None),
        ({"memory": 1024}, ResourceLimits(memory_kb=1024)),
        ({"cpus": 0.5}, ResourceLimits(cpus=0.5)),
        ({"memory": 2048.0, "cpus": 2}, ResourceLimits(memory_kb=2048, cpus=2.0)),
    ],
)
def test_resource_limits_read_memory_in_kb_and_cpus_in_cores(
    value: object, expected: ResourceLimits | None
) -> None:
    assert ResourceLimits.from_json(value) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"memory": -1}, "memory must be a positive whole number of KB"),
        ({"memory": 1.5}, "memory must be a positive whole number of KB"),
        ({"memory": True}, "memory must be a positive whole number of KB"),
        ({"cpus": 0}, "cpus must be a positive number of cores"),
        ({"cpus": "half"}, "cpus must be a positive number of cores"),
        ([1], "must be an object"),
    ],
)
def test_resource_limits_refuse_values_that_are_not_limits(value: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        ResourceLimits.from_json(value)


def test_limiter_writes_limits_and_enables_the_controllers(hierarchy: Path) -> None:
    limiter = CgroupLimiter(hierarchy / "edgewise")

    cgroup = limiter.apply("com.example.App", ResourceLimits(memory_kb=65536, cpus=0.25))
    limiter.place(cgroup, 4242)

    assert cgroup == hierarchy / "edgewise" / "com.example.App"
    assert (cgroup / "memory.max").read_text() == str(65536 * 1024)
    assert (cgroup / "cpu.max").read_text() == "25000 100000"
    assert (cgroup / "cgroup.procs").read_text() == "4242"
    assert (hierarchy / "cgroup.subtree_control").read_text() == "+cpu +memory"
    assert (hierarchy / "edgewise" / "cgroup.subtree_control").read_text() == "+cpu +memory"


def test_limiter_writes_max_for_a_limit_that_is_not_set(hierarchy: Path) -> None:
    cgroup = CgroupLimiter(hierarchy / "edgewise").apply("a", ResourceLimits(cpus=1.5))

    assert (cgroup / "memory.max").read_text() == "max"
    assert (cgroup / "cpu.max").read_text() == "150000 100000"


def test_limiter_refuses_a_parent_that_is_not_a_cgroup_v2_directory(tmp_path: Path) -> None:
    with pytest.raises(CgroupError, match=r"is not a cgroup v2 hierarchy"):
        CgroupLimiter(tmp_path / "edgewise").apply("a", ResourceLimits(memory_kb=1024))

    assert not (tmp_path / "edgewise").exists()


def test_limiter_refuses_a_hierarchy_without_the_memory_controller(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("hugetlb\n")

    with pytest.raises(CgroupError, match=r"offers no cpu or memory controller"):
        CgroupLimiter(tmp_path / "edgewise").apply("a", ResourceLimits(memory_kb=1024))


def limited(settings: LifecycleSettings, hierarchy: Path) -> LifecycleSettings:
    return dataclasses.replace(settings, cgroup_root=hierarchy / "edgewise")


async def test_every_step_of_a_limited_component_is_moved_into_its_cgroup(
    settings: LifecycleSettings, hierarchy: Path, make_spec: SpecBuilder, tmp_path: Path
) -> None:
    supervisor = LifecycleSupervisor(limited(settings, hierarchy), environment=lambda spec: {})
    spec = dataclasses.replace(
        make_spec("a", Install="true", Run="sleep 30"),
        resource_limits=ResourceLimits(memory_kb=4096, cpus=0.5),
    )
    try:
        supervisor.apply({"a": spec})
        assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}

        status = supervisor.status("a")
        assert status is not None
        cgroup = hierarchy / "edgewise" / "a"
        # The last process written is the Run step's, the one still running.
        assert (cgroup / "cgroup.procs").read_text() == str(status.pids[0])
        assert (cgroup / "memory.max").read_text() == str(4096 * 1024)
        assert (cgroup / "cpu.max").read_text() == "50000 100000"
    finally:
        await supervisor.shutdown(timeout=10)


async def test_a_component_without_limits_gets_no_cgroup(
    settings: LifecycleSettings, hierarchy: Path, make_spec: SpecBuilder
) -> None:
    supervisor = LifecycleSupervisor(limited(settings, hierarchy), environment=lambda spec: {})
    try:
        supervisor.apply({"a": make_spec("a", Run="sleep 30")})
        assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}
    finally:
        await supervisor.shutdown(timeout=10)

    assert not (hierarchy / "edgewise").exists()


async def test_new_limits_are_written_without_restarting_the_component(
    settings: LifecycleSettings, hierarchy: Path, make_spec: SpecBuilder
) -> None:
    supervisor = LifecycleSupervisor(limited(settings, hierarchy), environment=lambda spec: {})
    spec = dataclasses.replace(make_spec("a", Run="sleep 30"), resource_limits=ResourceLimits(memory_kb=1024))
    try:
        supervisor.apply({"a": spec})
        assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}
        before = supervisor.status("a")

        supervisor.apply({"a": dataclasses.replace(spec, resource_limits=ResourceLimits(cpus=2))})
        assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}

        after = supervisor.status("a")
        assert before is not None
        assert after is not None
        assert after.pids == before.pids
        cgroup = hierarchy / "edgewise" / "a"
        assert (cgroup / "memory.max").read_text() == "max"
        assert (cgroup / "cpu.max").read_text() == "200000 100000"
    finally:
        await supervisor.shutdown(timeout=10)


async def test_without_a_cgroup_v2_hierarchy_the_component_runs_and_a_warning_names_it(
    settings: LifecycleSettings, make_spec: SpecBuilder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    supervisor = LifecycleSupervisor(
        dataclasses.replace(settings, cgroup_root=tmp_path / "plain" / "edgewise"),
        environment=lambda spec: {},
    )
    spec = dataclasses.replace(
        make_spec("a", Install="true", Run="sleep 30"), resource_limits=ResourceLimits(memory_kb=2048)
    )
    try:
        with caplog.at_level(logging.WARNING, logger="edgewise.runtime.lifecycle"):
            supervisor.apply({"a": spec})
            assert await supervisor.wait_settled(["a"], timeout=10) == {"a": S.RUNNING}
    finally:
        await supervisor.shutdown(timeout=10)

    warnings = [r.getMessage() for r in caplog.records if "component-limits-not-enforced" in r.getMessage()]
    # Install and Run both started, but the same limits are warned about once.
    assert len(warnings) == 1
    assert "Component 'a'" in warnings[0]
    assert "memory 2048 KB" in warnings[0]
    assert "is not a cgroup v2 hierarchy" in warnings[0]
    assert "resource limits (memory 2048 KB) are not enforced" in (tmp_path / "logs" / "a.log").read_text()

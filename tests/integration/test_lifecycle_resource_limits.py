"""``systemResourceLimits`` against a real runtime.

The machine these tests run on has no writable cgroup v2 hierarchy with the memory and cpu controllers (its
cgroup v2 mount offers only ``hugetlb``), so a real limit cannot be enforced here: one test proves the warning
path, the other points the cgroup root at a directory laid out like a cgroup v2 hierarchy and proves what the
runtime writes there and which process it moves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgewise import GREENGRASS_COMPATIBILITY_VERSION
from edgewise.runtime.ipc.client import IpcCallError
from tests.support.runtime_process import RuntimeProcess, running, write_recipe
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def cgroup_parent(tmp_path: Path) -> Path:
    path = tmp_path / "cgroup"
    path.mkdir()
    return path


@pytest.fixture
def limited_runtime(tmp_path: Path, cgroup_parent: Path) -> Iterator[RuntimeProcess]:
    with running(tmp_path / "root", "--cgroup-root", str(cgroup_parent / "edgewise")) as process:
        yield process


def sleeper(recipes: Path, pid_file: Path) -> None:
    write_recipe(
        recipes,
        "test.Limited",
        "1.0.0",
        f"""\
        Manifests:
          - Lifecycle:
              Run: echo $$ > {pid_file}; exec sleep 60
        """,
    )


def test_without_a_cgroup_v2_hierarchy_the_component_runs_and_the_runtime_warns(
    limited_runtime: RuntimeProcess, recipes: Path, tmp_path: Path
) -> None:
    sleeper(recipes, tmp_path / "pid")

    result = limited_runtime.wait_deployment(
        limited_runtime.deploy(
            recipes,
            rootComponentVersionsToAdd={"test.Limited": "1.0.0"},
            componentToRunWithInfo={"test.Limited": {"systemResourceLimits": {"memory": 10240, "cpus": 0.5}}},
        )
    )

    assert result["status"] == "SUCCEEDED"
    assert limited_runtime.states()["test.Limited"] == "RUNNING"
    warning = next(
        line
        for line in limited_runtime.paths.runtime_log.read_text().splitlines()
        if "component-limits-not-enforced" in line
    )
    assert "WARNING" in warning
    assert "Component 'test.Limited'" in warning
    assert "memory 10240 KB, cpus 0.5" in warning
    assert "is not a cgroup v2 hierarchy" in warning


def test_the_nucleus_default_limits_put_the_component_into_its_cgroup(
    limited_runtime: RuntimeProcess, recipes: Path, tmp_path: Path, cgroup_parent: Path
) -> None:
    (cgroup_parent / "cgroup.controllers").write_text("cpu memory pids\n")
    (cgroup_parent / "cgroup.subtree_control").write_text("\n")
    pid_file = tmp_path / "pid"
    sleeper(recipes, pid_file)

    result = limited_runtime.wait_deployment(
        limited_runtime.deploy(
            recipes,
            rootComponentVersionsToAdd={
                "test.Limited": "1.0.0",
                "aws.greengrass.Nucleus": GREENGRASS_COMPATIBILITY_VERSION,
            },
            componentToConfiguration={
                "aws.greengrass.Nucleus": {
                    "MERGE": {"runWithDefault": {"systemResourceLimits": {"memory": 20480, "cpus": 1.5}}}
                }
            },
        )
    )

    assert result["status"] == "SUCCEEDED"
    pid = wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the Run pid")
    cgroup = cgroup_parent / "edgewise" / "test.Limited"
    assert (cgroup / "cgroup.procs").read_text() == pid
    assert os.path.exists(f"/proc/{pid}")
    assert (cgroup / "memory.max").read_text() == str(20480 * 1024)
    assert (cgroup / "cpu.max").read_text() == "150000 100000"
    assert "component-limits-not-enforced" not in limited_runtime.paths.runtime_log.read_text()


def test_limits_that_are_not_limits_refuse_the_deployment(
    limited_runtime: RuntimeProcess, recipes: Path
) -> None:
    sleeper(recipes, recipes / "pid")

    with pytest.raises(IpcCallError) as refused:
        limited_runtime.deploy(
            recipes,
            rootComponentVersionsToAdd={"test.Limited": "1.0.0"},
            componentToRunWithInfo={"test.Limited": {"systemResourceLimits": {"memory": -5, "cpus": "all"}}},
        )

    message = str(refused.value)
    assert "componentToRunWithInfo.test.Limited.systemResourceLimits.memory" in message
    assert "componentToRunWithInfo.test.Limited.systemResourceLimits.cpus" in message


def test_a_run_with_without_limits_removes_the_component_limits(
    limited_runtime: RuntimeProcess, recipes: Path, tmp_path: Path, cgroup_parent: Path
) -> None:
    (cgroup_parent / "cgroup.controllers").write_text("cpu memory\n")
    (cgroup_parent / "cgroup.subtree_control").write_text("\n")
    sleeper(recipes, tmp_path / "pid")
    limits = {"test.Limited": {"systemResourceLimits": {"memory": 4096}}}
    first = limited_runtime.deploy(
        recipes, rootComponentVersionsToAdd={"test.Limited": "1.0.0"}, componentToRunWithInfo=limits
    )
    assert limited_runtime.wait_deployment(first)["status"] == "SUCCEEDED"
    memory = cgroup_parent / "edgewise" / "test.Limited" / "memory.max"
    assert memory.read_text() == str(4096 * 1024)
    pid = limited_runtime.call("GetComponentDetails", {"componentName": "test.Limited"})

    second = limited_runtime.deploy(
        recipes,
        rootComponentVersionsToAdd={"test.Limited": "1.0.0"},
        componentToRunWithInfo={"test.Limited": {}},
    )

    assert limited_runtime.wait_deployment(second)["status"] == "SUCCEEDED"
    # The limits are lifted in place; the component is not restarted.
    assert memory.read_text() == "max"
    assert limited_runtime.call("GetComponentDetails", {"componentName": "test.Limited"}) == pid

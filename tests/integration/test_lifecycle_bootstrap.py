"""The Bootstrap step against a real runtime: it runs before activation, and its exit code continues the
deployment, fails it, restarts the runtime (which then finishes the deployment) or reboots the device."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from edgewise.runtime.ipc.client import IpcCallError
from tests.support.runtime_process import RuntimeProcess, running, write_recipe
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def bootstrapped(
    recipes: Path, version: str, events: Path, *, code: int | str = 0, bootstrap: str = ""
) -> None:
    """``test.Boot``: its Bootstrap records a line (with the version and the environment) and exits ``code``
    (``code`` may be shell text); Install and Run record theirs."""
    script = bootstrap or f"echo bootstrap {version} $AWS_IOT_THING_NAME $(pwd) >> {events}; exit {code}"
    write_recipe(
        recipes,
        "test.Boot",
        version,
        f"""\
        Manifests:
          - Lifecycle:
              Bootstrap:
                Script: {json.dumps(script)}
              Install: echo install {version} >> {events}
              Run: echo run {version} >> {events}; exec sleep 60
        """,
    )


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def status_of(runtime: RuntimeProcess, deployment_id: str) -> dict[str, Any] | None:
    """The deployment once it ended; None while it runs or while the runtime is not answering (restarting)."""
    try:
        if not runtime.paths.cli_token_file.exists():
            return None
        deployment: dict[str, Any] = runtime.call(
            "GetLocalDeploymentStatus", {"deploymentId": deployment_id}
        )["deployment"]
    except (OSError, IpcCallError):
        # Restarting: the socket is gone, or the old token file is still there for a moment.
        return None
    return deployment if deployment["status"] in ("SUCCEEDED", "FAILED", "CANCELED") else None


def test_bootstrap_runs_before_install_only_when_new_or_its_version_changes(
    runtime: RuntimeProcess, recipes: Path, tmp_path: Path
) -> None:
    events = tmp_path / "events"
    bootstrapped(recipes, "1.0.0", events)
    bootstrapped(recipes, "2.0.0", events)
    work = runtime.paths.root / "work" / "test.Boot"

    first = runtime.wait_deployment(
        runtime.deploy(recipes, rootComponentVersionsToAdd={"test.Boot": "1.0.0"})
    )
    assert first["status"] == "SUCCEEDED"
    runtime.wait_state("test.Boot", "RUNNING")
    assert lines(events) == [f"bootstrap 1.0.0 edgewise-device {work}", "install 1.0.0", "run 1.0.0"]

    again = runtime.wait_deployment(
        runtime.deploy(
            recipes, rootComponentVersionsToAdd={"test.Boot": "1.0.0"}, componentToConfiguration={}
        )
    )
    assert again["status"] == "SUCCEEDED"
    assert [line for line in lines(events) if line.startswith("bootstrap")] == [
        f"bootstrap 1.0.0 edgewise-device {work}"
    ]

    upgrade = runtime.wait_deployment(
        runtime.deploy(recipes, rootComponentVersionsToAdd={"test.Boot": "2.0.0"})
    )
    assert upgrade["status"] == "SUCCEEDED"
    runtime.wait_state("test.Boot", "RUNNING")
    assert lines(events)[3:] == [f"bootstrap 2.0.0 edgewise-device {work}", "install 2.0.0", "run 2.0.0"]


def test_a_failing_bootstrap_fails_the_deployment_and_the_running_version_stays(
    runtime: RuntimeProcess, recipes: Path, tmp_path: Path
) -> None:
    events = tmp_path / "events"
    bootstrapped(recipes, "1.0.0", events)
    bootstrapped(recipes, "2.0.0", events, code=3)
    assert (
        runtime.wait_deployment(runtime.deploy(recipes, rootComponentVersionsToAdd={"test.Boot": "1.0.0"}))[
            "status"
        ]
        == "SUCCEEDED"
    )
    runtime.wait_state("test.Boot", "RUNNING")
    pid_before = runtime.call("GetComponentDetails", {"componentName": "test.Boot"})

    failed = runtime.wait_deployment(
        runtime.deploy(recipes, rootComponentVersionsToAdd={"test.Boot": "2.0.0"})
    )

    assert failed["status"] == "FAILED"
    assert failed["deploymentStatusDetails"]["detailedDeploymentStatus"] == "FAILED_NO_STATE_CHANGE"
    assert (
        "Bootstrap of 'test.Boot' exited with code 3"
        in failed["deploymentStatusDetails"]["deploymentFailureCause"]
    )
    assert runtime.call("GetComponentDetails", {"componentName": "test.Boot"}) == pid_before
    assert "install 2.0.0" not in lines(events)


def test_exit_100_restarts_the_runtime_and_the_deployment_finishes_after_it(
    runtime: RuntimeProcess, recipes: Path, tmp_path: Path
) -> None:
    events = tmp_path / "events"
    bootstrapped(recipes, "1.0.0", events, code=100)
    assert runtime.process is not None
    pid = runtime.process.pid
    started = runtime.paths.pid_file.stat().st_mtime_ns

    deployment_id = runtime.deploy(recipes, rootComponentVersionsToAdd={"test.Boot": "1.0.0"})
    result = wait_until(lambda: status_of(runtime, deployment_id), timeout=60, what="the deployment to end")

    assert result["status"] == "SUCCEEDED"
    # The same process, started afresh: it replaced itself.
    assert runtime.process.poll() is None
    assert runtime.process.pid == pid
    assert runtime.paths.pid_file.stat().st_mtime_ns != started
    assert "interrupted during activation" not in runtime.paths.runtime_log.read_text()
    runtime.wait_state("test.Boot", "RUNNING")
    work = runtime.paths.root / "work" / "test.Boot"
    assert lines(events) == [f"bootstrap 1.0.0 edgewise-device {work}", "install 1.0.0", "run 1.0.0"]


def test_exit_101_reboots_and_the_deployment_finishes_after_the_boot(recipes: Path, tmp_path: Path) -> None:
    events = tmp_path / "events"
    reboots = tmp_path / "reboots"
    reboot = tmp_path / "reboot.py"
    reboot.write_text(
        f"import sys\nwith open({str(reboots)!r}, 'a') as f:\n    f.write(' '.join(sys.argv[1:]) + '\\n')\n"
    )
    reboot.chmod(reboot.stat().st_mode | stat.S_IXUSR)
    bootstrapped(recipes, "1.0.0", events, code=101)
    root = tmp_path / "root"

    with running(root, "--reboot-command", f"{sys.executable} {reboot} -r now") as runtime:
        deployment_id = runtime.deploy(recipes, rootComponentVersionsToAdd={"test.Boot": "1.0.0"})
        assert runtime.process is not None
        assert runtime.process.wait(timeout=60) == 0
    assert lines(reboots) == ["-r now"]
    assert [line.split()[0] for line in lines(events)] == ["bootstrap"]

    # The device is back: a new runtime finishes the deployment without running Bootstrap again.
    with running(root) as runtime:
        result = runtime.wait_deployment(deployment_id)
        assert result["status"] == "SUCCEEDED"
        runtime.wait_state("test.Boot", "RUNNING")
        assert [line.split()[0] for line in lines(events)] == ["bootstrap", "install", "run"]
        assert not (runtime.paths.deployments_dir / "bootstrap.json").exists()
    assert os.path.exists(root)


def test_bootstrap_steps_run_dependencies_first(
    runtime: RuntimeProcess, recipes: Path, tmp_path: Path
) -> None:
    events = tmp_path / "events"
    for name, dependencies in (("test.App", {"test.Lib": {"VersionRequirement": "1.0.0"}}), ("test.Lib", {})):
        recipe = {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": name,
            "ComponentVersion": "1.0.0",
            "ComponentDependencies": dependencies,
            "Manifests": [{"Lifecycle": {"Bootstrap": f"echo {name} >> {events}", "Run": "exec sleep 60"}}],
        }
        (recipes / f"{name}-1.0.0.json").write_text(json.dumps(recipe))

    result = runtime.wait_deployment(
        runtime.deploy(recipes, rootComponentVersionsToAdd={"test.App": "1.0.0"})
    )

    assert result["status"] == "SUCCEEDED"
    assert lines(events) == ["test.Lib", "test.App"]

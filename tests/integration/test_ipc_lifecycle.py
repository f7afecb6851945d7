"""The lifecycle IPC operations, called from component processes with the real awsiotsdk clients."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.runtime_process import RuntimeProcess, script_component, write_recipe
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def read_json(path: Path, what: str) -> Any:
    """The JSON a client script wrote to ``path`` (scripts write to a temporary name, then rename)."""
    wait_until(path.exists, timeout=60, what=what)
    return json.loads(path.read_text())


def process_state(pid: int) -> str:
    """The state letter of ``pid`` in /proc (``T`` when stopped by a signal)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_startup_step_that_keeps_running_reports_running_with_update_state(
    runtime: RuntimeProcess, tmp_path: Path, recipes: Path, artifacts: Path
) -> None:
    marker = tmp_path / "reported"
    script_component(recipes, artifacts, "test.Service", "lifecycle_startup.py", str(marker), step="Startup")

    deployment = runtime.deploy(
        recipes, artifacts=artifacts, rootComponentVersionsToAdd={"test.Service": "1.0.0"}
    )

    # Without the report the Startup step, which never exits, would keep the deployment waiting.
    assert runtime.wait_deployment(deployment, timeout=60)["status"] == "SUCCEEDED"
    wait_until(lambda: marker.exists() and marker.read_text() == "reported", what="the client's marker")
    assert runtime.states()["test.Service"] == "RUNNING"


def test_a_component_defers_an_update_and_hears_when_it_is_done(
    runtime: RuntimeProcess, tmp_path: Path, recipes: Path, artifacts: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    started = tmp_path / "newcomer-started"
    script_component(recipes, artifacts, "test.Careful", "lifecycle_updates.py", f"{out} 1500")
    write_recipe(
        recipes,
        "test.Newcomer",
        "1.0.0",
        f"""\
        Manifests:
          - Lifecycle:
              Run: {sys.executable} -c "import time; open('{started}', 'w').write(repr(time.time()))" && exec sleep 600
        """,
    )
    first = runtime.deploy(recipes, artifacts=artifacts, rootComponentVersionsToAdd={"test.Careful": "1.0.0"})
    assert runtime.wait_deployment(first)["status"] == "SUCCEEDED"
    wait_until(lambda: (out / "ready").exists(), timeout=60, what="the component to subscribe")

    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgewise.cli",
            "runtime",
            "deployment",
            "create",
            "--root",
            str(runtime.paths.root),
            "--recipe-dir",
            str(recipes),
            "--merge",
            "test.Newcomer=1.0.0",
            "--notify-components",
            "--update-timeout",
            "30",
            "--wait",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert created.returncode == 0, created.stderr
    deployment_id = created.stdout.split()[0]
    seen = read_json(out / "updates.json", "the post-update event")
    assert seen[0] == {"unsubscribed_defer": "InvalidArgumentsError"}
    pre_first, pre_second, post = seen[1:]
    assert (pre_first["pre"], pre_second["pre"], post["post"]) == (deployment_id,) * 3
    assert pre_first["restarting"] is False
    assert pre_second["at"] - pre_first["at"] >= 1.4
    # The new component starts only once the component has stopped deferring.
    assert (
        float(wait_until(lambda: started.exists() and started.read_text(), what="the newcomer to start"))
        >= pre_second["at"]
    )


def test_a_component_pauses_and_resumes_another_one(
    runtime: RuntimeProcess, tmp_path: Path, recipes: Path, artifacts: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    pid_file = tmp_path / "sleeper.pid"
    bystander_pid_file = tmp_path / "bystander.pid"
    write_recipe(
        recipes,
        "test.Sleeper",
        "1.0.0",
        f"""\
        Manifests:
          - Lifecycle:
              Run: echo $$ > {pid_file} && exec sleep 600
        """,
    )
    write_recipe(
        recipes,
        "test.Bystander",
        "1.0.0",
        f"""\
        Manifests:
          - Lifecycle:
              Run: echo $$ > {bystander_pid_file} && exec sleep 600
        """,
    )
    policy = {
        "accessControl": {
            "aws.greengrass.ipc.lifecycle": {
                "test.Pauser:lifecycle:1": {
                    "operations": ["aws.greengrass#PauseComponent", "aws.greengrass#ResumeComponent"],
                    "resources": ["test.Sleeper", "no.such.Component"],
                }
            }
        }
    }
    roots = {"test.Sleeper": "1.0.0", "test.Bystander": "1.0.0"}
    assert (
        runtime.wait_deployment(runtime.deploy(recipes, rootComponentVersionsToAdd=roots))["status"]
        == "SUCCEEDED"
    )
    pid = int(
        wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the sleeper's pid")
    )
    bystander = int(
        wait_until(
            lambda: bystander_pid_file.exists() and bystander_pid_file.read_text().strip(), what="a pid"
        )
    )
    script_component(
        recipes,
        artifacts,
        "test.Pauser",
        "lifecycle_pause.py",
        f"{out} test.Sleeper test.Bystander",
        configuration=policy,
    )

    runtime.deploy(recipes, artifacts=artifacts, rootComponentVersionsToAdd={"test.Pauser": "1.0.0"})

    paused = read_json(out / "paused.json", "the pause")
    assert paused["pause"] == {"ok": True}
    wait_until(lambda: process_state(pid) == "T", what="the sleeper to be stopped")
    assert runtime.states()["test.Sleeper"] == "RUNNING"
    assert paused["pause_outside_policy"]["error"] == "UnauthorizedError"
    assert "test.Bystander" in paused["pause_outside_policy"]["message"]
    assert paused["resume_outside_policy"]["error"] == "UnauthorizedError"
    assert paused["pause_missing"]["error"] == "ResourceNotFoundError"
    assert process_state(bystander) != "T"

    (out / "go").write_text("go")

    resumed = read_json(out / "resumed.json", "the resume")
    assert resumed["resume"] == {"ok": True}
    wait_until(lambda: process_state(pid) != "T", what="the sleeper to continue")
    assert runtime.states()["test.Sleeper"] == "RUNNING"

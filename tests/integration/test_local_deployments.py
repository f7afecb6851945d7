"""Local deployments against a real runtime process with real component processes."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.runtime_process import RuntimeProcess, process_alive, running, write_recipe
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def test_deployment_starts_components_in_hard_dependency_order(
    runtime: RuntimeProcess, recipes: Path, tmp_path: Path
) -> None:
    order = tmp_path / "order.txt"
    write_recipe(
        recipes,
        "test.Base",
        "1.0.0",
        f"""\
        Manifests:
          - Lifecycle:
              Startup: sleep 0.5 && echo base >> {order}
        """,
    )
    write_recipe(
        recipes,
        "test.App",
        "1.0.0",
        f"""\
        ComponentDependencies:
          test.Base:
            VersionRequirement: ^1.0.0
        Manifests:
          - Lifecycle:
              Run: echo app >> {order} && exec sleep 600
        """,
    )
    deployment = runtime.wait_deployment(
        runtime.deploy(recipes, rootComponentVersionsToAdd={"test.App": "1.0.0"})
    )
    assert deployment["status"] == "SUCCEEDED", deployment
    assert deployment["deploymentStatusDetails"]["detailedDeploymentStatus"] == "SUCCESSFUL"
    states = runtime.states()
    assert states["test.Base"] == "RUNNING"
    assert states["test.App"] == "RUNNING"
    assert states["aws.greengrass.Nucleus"] == "RUNNING"
    assert order.read_text().split() == ["base", "app"]


def test_crashed_component_is_restarted(runtime: RuntimeProcess, recipes: Path, tmp_path: Path) -> None:
    marker = tmp_path / "crashed-once"
    write_recipe(
        recipes,
        "test.CrashOnce",
        "1.0.0",
        f"""\
        Manifests:
          - Lifecycle:
              Run: if [ ! -e {marker} ]; then touch {marker}; echo crashing; exit 3; fi; echo second life; exec sleep 600
        """,
    )
    deployment_id = runtime.deploy(recipes, rootComponentVersionsToAdd={"test.CrashOnce": "1.0.0"})
    runtime.wait_deployment(deployment_id)
    wait_until(lambda: "second life" in runtime.log("test.CrashOnce"), what="the restarted run")
    runtime.wait_state("test.CrashOnce", "RUNNING")
    log = runtime.log("test.CrashOnce")
    assert "crashing" in log
    assert "ERRORED" in log


def test_failed_deployment_rolls_back_to_the_previous_set_exactly(
    runtime: RuntimeProcess, recipes: Path, tmp_path: Path
) -> None:
    write_recipe(
        recipes,
        "test.Service",
        "1.0.0",
        """\
        ComponentConfiguration:
          DefaultConfiguration:
            greeting: hello
            nested: {a: 1, list: [1, 2]}
        Manifests:
          - Lifecycle:
              Run: echo "{configuration:/greeting} v1" && exec sleep 600
        """,
    )
    write_recipe(
        recipes,
        "test.Service",
        "2.0.0",
        """\
        ComponentConfiguration:
          DefaultConfiguration:
            greeting: hi
        Manifests:
          - Lifecycle:
              Install: echo "cannot install" >&2; exit 1
              Run: exec sleep 600
        """,
    )
    write_recipe(
        recipes,
        "test.Extra",
        "1.0.0",
        """\
        Manifests:
          - Lifecycle:
              Run: exec sleep 600
        """,
    )
    first = runtime.deploy(
        recipes,
        rootComponentVersionsToAdd={"test.Service": "1.0.0"},
        componentToConfiguration={"test.Service": {"MERGE": {"greeting": "bonjour"}}},
    )
    assert runtime.wait_deployment(first)["status"] == "SUCCEEDED"
    effective = runtime.paths.effective_config.read_bytes()
    recipe_store = sorted(p.name for p in runtime.paths.recipes_dir.iterdir())

    second = runtime.deploy(
        recipes,
        rootComponentVersionsToAdd={"test.Service": "2.0.0", "test.Extra": "1.0.0"},
        componentToConfiguration={"test.Service": {"RESET": [""], "MERGE": {"other": True}}},
    )
    result = runtime.wait_deployment(second, timeout=90)
    assert result["status"] == "FAILED"
    details = result["deploymentStatusDetails"]
    assert details["detailedDeploymentStatus"] == "FAILED_ROLLBACK_COMPLETE"
    assert "test.Service is BROKEN" in details["deploymentFailureCause"]
    runtime.wait_state("test.Service", "RUNNING")
    assert "test.Extra" not in runtime.states()
    assert (
        runtime.call("GetComponentDetails", {"componentName": "test.Service"})["componentDetails"]["version"]
        == "1.0.0"
    )
    assert runtime.paths.effective_config.read_bytes() == effective
    assert "test.Service-2.0.0" not in recipe_store
    assert "bonjour v1" in runtime.log("test.Service")


def test_configuration_change_restarts_the_component_that_uses_it(
    runtime: RuntimeProcess, recipes: Path, tmp_path: Path
) -> None:
    out = tmp_path / "values.txt"
    write_recipe(
        recipes,
        "test.Configured",
        "1.0.0",
        f"""\
        ComponentConfiguration:
          DefaultConfiguration:
            value: first
        Manifests:
          - Lifecycle:
              Run: echo {{configuration:/value}} >> {out} && exec sleep 600
        """,
    )
    write_recipe(
        recipes,
        "test.Unrelated",
        "1.0.0",
        f"""\
        Manifests:
          - Lifecycle:
              Run: echo started >> {tmp_path / "unrelated.txt"} && exec sleep 600
        """,
    )
    roots = {"test.Configured": "1.0.0", "test.Unrelated": "1.0.0"}
    assert (
        runtime.wait_deployment(runtime.deploy(recipes, rootComponentVersionsToAdd=roots))["status"]
        == "SUCCEEDED"
    )
    wait_until(lambda: out.exists() and out.read_text().split() == ["first"], what="first value")
    update = {"test.Configured": {"MERGE": {"value": "second"}}}
    deployment = runtime.deploy(recipes, rootComponentVersionsToAdd=roots, componentToConfiguration=update)
    assert runtime.wait_deployment(deployment)["status"] == "SUCCEEDED"
    wait_until(lambda: out.read_text().split() == ["first", "second"], what="restart with the new value")
    assert (tmp_path / "unrelated.txt").read_text().split() == ["started"]


def test_artifacts_are_copied_checked_and_unarchived(
    runtime: RuntimeProcess, recipes: Path, artifacts: Path, tmp_path: Path
) -> None:
    source = artifacts / "test.Bundle" / "1.0.0"
    source.mkdir(parents=True)
    (source / "tool.sh").write_text("echo tool ran\n")
    with zipfile.ZipFile(source / "app.zip", "w") as bundle:
        bundle.writestr("app/main.sh", "echo main ran\n")
    digest = base64.b64encode(hashlib.sha256((source / "tool.sh").read_bytes()).digest()).decode()
    write_recipe(
        recipes,
        "test.Bundle",
        "1.0.0",
        f"""\
        Manifests:
          - Artifacts:
              - Uri: s3://bucket/any/path/tool.sh
                Digest: {digest}
                Algorithm: SHA-256
                Permission: {{Read: ALL, Execute: OWNER}}
              - Uri: greengrass:app.zip
                Unarchive: ZIP
            Lifecycle:
              Run: sh {{artifacts:path}}/tool.sh && sh {{artifacts:decompressedPath}}/app/app/main.sh
        """,
    )
    deployment = runtime.deploy(
        recipes, artifacts=artifacts, rootComponentVersionsToAdd={"test.Bundle": "1.0.0"}
    )
    assert runtime.wait_deployment(deployment)["status"] == "SUCCEEDED"
    wait_until(lambda: "main ran" in runtime.log("test.Bundle"), what="the unarchived script")
    assert "tool ran" in runtime.log("test.Bundle")
    installed = runtime.paths.component_artifacts("test.Bundle", "1.0.0") / "tool.sh"
    assert installed.stat().st_mode & 0o777 == 0o744


def test_artifact_with_wrong_digest_fails_without_changing_anything(
    runtime: RuntimeProcess, recipes: Path, artifacts: Path
) -> None:
    source = artifacts / "test.Tampered" / "1.0.0"
    source.mkdir(parents=True)
    (source / "run.sh").write_text("echo tampered\n")
    wrong = base64.b64encode(hashlib.sha256(b"something else").digest()).decode()
    write_recipe(
        recipes,
        "test.Tampered",
        "1.0.0",
        f"""\
        Manifests:
          - Artifacts:
              - Uri: s3://bucket/run.sh
                Digest: {wrong}
            Lifecycle:
              Run: sh {{artifacts:path}}/run.sh
        """,
    )
    before = runtime.paths.effective_config.read_bytes()
    deployment = runtime.deploy(
        recipes, artifacts=artifacts, rootComponentVersionsToAdd={"test.Tampered": "1.0.0"}
    )
    result = runtime.wait_deployment(deployment)
    assert result["status"] == "FAILED"
    assert result["deploymentStatusDetails"]["detailedDeploymentStatus"] == "FAILED_NO_STATE_CHANGE"
    assert "digest" in result["deploymentStatusDetails"]["deploymentFailureCause"]
    assert "test.Tampered" not in runtime.states()
    assert runtime.paths.effective_config.read_bytes() == before


def test_invalid_recipe_fails_the_deployment_naming_the_field(runtime: RuntimeProcess, recipes: Path) -> None:
    write_recipe(
        recipes,
        "test.Bad",
        "1.0.0",
        """\
        Manifests:
          - Lifecycle:
              Run:
                Script: echo hi
                Timeout: soon
        """,
    )
    result = runtime.wait_deployment(
        runtime.deploy(recipes, rootComponentVersionsToAdd={"test.Bad": "1.0.0"})
    )
    assert result["status"] == "FAILED"
    assert "Manifests[0].Lifecycle.Run.Timeout" in result["deploymentStatusDetails"]["deploymentFailureCause"]


def test_removing_a_component_stops_its_processes(
    runtime: RuntimeProcess, recipes: Path, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    write_recipe(
        recipes,
        "test.Removable",
        "1.0.0",
        f"""\
        Manifests:
          - Lifecycle:
              Run: echo $$ > {pid_file} && exec sleep 600
        """,
    )
    runtime.wait_deployment(runtime.deploy(recipes, rootComponentVersionsToAdd={"test.Removable": "1.0.0"}))
    pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), what="pid"))
    assert process_alive(pid)
    result = runtime.wait_deployment(runtime.deploy(recipes, rootComponentsToRemove=["test.Removable"]))
    assert result["status"] == "SUCCEEDED"
    assert "test.Removable" not in runtime.states()
    wait_until(lambda: not process_alive(pid), what="the removed component's process to end")


def test_sigterm_stops_every_component_cleanly(tmp_path: Path, recipes: Path) -> None:
    pid_file = tmp_path / "pid"
    shutdown_marker = tmp_path / "shutdown-ran"
    write_recipe(
        recipes,
        "test.LongRunning",
        "1.0.0",
        f"""\
        Manifests:
          - Lifecycle:
              Run: echo $$ > {pid_file} && exec sleep 600
              Shutdown: touch {shutdown_marker}
        """,
    )
    with running(tmp_path / "root") as runtime:
        runtime.wait_deployment(
            runtime.deploy(recipes, rootComponentVersionsToAdd={"test.LongRunning": "1.0.0"})
        )
        pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), what="pid"))
        assert runtime.stop() == 0
    assert shutdown_marker.exists()
    assert not process_alive(pid)
    assert not runtime.paths.ipc_socket.exists()


def test_runtime_restart_runs_the_last_good_set(tmp_path: Path, recipes: Path) -> None:
    write_recipe(
        recipes,
        "test.Persistent",
        "1.0.0",
        """\
        Manifests:
          - Lifecycle:
              Run: exec sleep 600
        """,
    )
    root = tmp_path / "root"
    with running(root) as runtime:
        runtime.wait_deployment(
            runtime.deploy(recipes, rootComponentVersionsToAdd={"test.Persistent": "1.0.0"})
        )
    with running(root) as runtime:
        runtime.wait_state("test.Persistent", "RUNNING")
        deployments = runtime.call("ListLocalDeployments")["localDeployments"]
        assert [d["status"] for d in deployments] == ["SUCCEEDED"]


def test_kill_9_mid_deployment_finishes_it_after_restart(tmp_path: Path, recipes: Path) -> None:
    installing = tmp_path / "installing"
    pids = tmp_path / "pids"
    write_recipe(
        recipes,
        "test.Slow",
        "1.0.0",
        f"""\
        Manifests:
          - Lifecycle:
              Run: echo $$ >> {pids} && exec sleep 600
        """,
    )
    write_recipe(
        recipes,
        "test.Slow",
        "2.0.0",
        f"""\
        Manifests:
          - Lifecycle:
              Install: touch {installing} && sleep 2
              Run: echo $$ >> {pids} && exec sleep 600
        """,
    )
    root = tmp_path / "root"
    runtime = RuntimeProcess(root).start()
    try:
        runtime.wait_deployment(runtime.deploy(recipes, rootComponentVersionsToAdd={"test.Slow": "1.0.0"}))
        second = runtime.deploy(recipes, rootComponentVersionsToAdd={"test.Slow": "2.0.0"})
        wait_until(installing.exists, what="the install step to begin")
        runtime.kill9()
    finally:
        if runtime.process is not None and runtime.process.poll() is None:
            runtime.kill9()
    with running(root) as restarted:
        result = restarted.wait_deployment(second, timeout=90)
        assert result["status"] == "SUCCEEDED", result
        restarted.wait_state("test.Slow", "RUNNING")
        version = restarted.call("GetComponentDetails", {"componentName": "test.Slow"})["componentDetails"][
            "version"
        ]
        assert version == "2.0.0"
        # Only the process started after the restart is still alive: nothing left over from the killed runtime.
        alive = [int(pid) for pid in pids.read_text().split() if process_alive(int(pid))]
        assert len(alive) == 1


def test_second_runtime_on_the_same_root_is_refused(runtime: RuntimeProcess) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edgewise.runtime", "--root", str(runtime.paths.root)],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert b"Another runtime is already running" in result.stderr
    assert runtime.call("ListComponents") == {"components": []}


def test_cli_token_is_readable_only_by_its_owner(runtime: RuntimeProcess) -> None:
    assert runtime.paths.cli_token_file.stat().st_mode & 0o777 == 0o600
    assert runtime.paths.cli_ipc_info_dir.stat().st_mode & 0o777 == 0o700


def test_unknown_signal_free_shutdown_leaves_no_socket(tmp_path: Path) -> None:
    with running(tmp_path / "root") as runtime:
        assert runtime.process is not None
        runtime.process.send_signal(signal.SIGINT)
        assert runtime.process.wait(timeout=30) == 0
    assert not runtime.paths.ipc_socket.exists()
    assert os.path.exists(runtime.paths.runtime_log)


def test_malformed_ipc_frames_close_only_that_connection(runtime: RuntimeProcess) -> None:
    import socket

    for garbage in (b"\x00" * 16, b"\xff" * 64, b"GET / HTTP/1.1\r\n\r\n"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as hostile:
            hostile.settimeout(10)
            hostile.connect(str(runtime.paths.ipc_socket))
            hostile.sendall(garbage)
            # Reading to the end proves the runtime closed this connection (a hang would time out).
            while hostile.recv(4096):
                pass
        assert runtime.call("ListComponents") == {"components": []}


def test_runtime_rejects_a_bad_thing_name(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edgewise.runtime", "--root", str(tmp_path), "--thing-name", "bad/name"],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert b"--thing-name: 'bad/name' is not a thing name" in result.stderr

"""``ROOT/bin/greengrass-cli``, the script the runtime writes, run with the Greengrass guide's command lines
against a real runtime: outputs in the shapes scripts parse, and exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.runtime_process import RuntimeProcess, write_recipe
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

HELLO = "com.example.HelloWorld"
SECOND = "com.example.Second"


def environment(**extra: str) -> dict[str, str]:
    """The caller's environment without a root variable; wide, so that error messages are not wrapped."""
    env = {key: value for key, value in os.environ.items() if key not in ("GGC_ROOT_PATH", "EDGEWISE_ROOT")}
    return {**env, "COLUMNS": "1000", **extra}


def run(command: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(command), *args], capture_output=True, text=True, timeout=120, env=env or environment()
    )


def ok(command: Path, *args: str) -> str:
    result = run(command, *args)
    if result.returncode != 0:
        raise AssertionError(f"greengrass-cli {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result.stdout


def blocks(listing: str) -> dict[str, list[str]]:
    """``Component Name: ...`` blocks by component name, each the block's four lines."""
    lines = listing.splitlines()
    return {
        line.removeprefix("Component Name: "): lines[index : index + 4]
        for index, line in enumerate(lines)
        if line.startswith("Component Name: ")
    }


def deployed(cli: Path, deployment_id: str) -> str:
    """Wait for a deployment to end, through ``deployment status -i``; its final status line."""

    def final() -> str | None:
        line = ok(cli, "deployment", "status", "-i", deployment_id).strip()
        return line if line.split(": ")[1] in ("SUCCEEDED", "FAILED", "CANCELED") else None

    return wait_until(final, timeout=90, interval=0.2, what=f"deployment {deployment_id}")


def submitted(output: str) -> str:
    match = re.fullmatch(r"Local deployment submitted! Deployment Id: (\S+)\n", output)
    assert match, output
    return match[1]


@pytest.fixture
def cli(runtime: RuntimeProcess) -> Path:
    path = runtime.paths.root / "bin" / "greengrass-cli"
    assert path.is_file()
    assert os.access(path, os.X_OK)
    return path


def test_guide_command_lines_drive_a_runtime(
    runtime: RuntimeProcess, cli: Path, recipes: Path, artifacts: Path, tmp_path: Path
) -> None:
    write_recipe(
        recipes,
        HELLO,
        "1.0.0",
        """\
        ComponentConfiguration:
          DefaultConfiguration:
            Message: world
        Manifests:
          - Artifacts:
              - Uri: s3://bucket/hello/greeting.txt
            Lifecycle:
              Run: >-
                cat {artifacts:path}/greeting.txt && echo "Message={configuration:/Message}" &&
                echo "careful" >&2 && exec sleep 600
        """,
    )
    write_recipe(
        recipes, SECOND, "1.0.0", "Manifests:\n  - Lifecycle:\n      Run: echo second && exec sleep 600\n"
    )
    (artifacts / HELLO / "1.0.0").mkdir(parents=True)
    (artifacts / HELLO / "1.0.0" / "greeting.txt").write_text("hello from the artifact\n")

    created = ok(
        cli,
        "deployment",
        "create",
        "--recipeDir",
        str(recipes),
        "--artifactDir",
        str(artifacts),
        "--merge",
        f"{HELLO}=1.0.0",
        "--merge",
        f"{SECOND}=1.0.0",
        "--update-config",
        json.dumps({HELLO: {"MERGE": {"Message": "friend"}}}),
    )
    first = submitted(created)
    assert deployed(cli, first) == f"{first}: SUCCEEDED"
    assert f"{first}: SUCCEEDED" in ok(cli, "deployment", "list").splitlines()

    listing = ok(cli, "component", "list")
    assert listing.splitlines()[0] == "Components currently running in Greengrass:"
    components = blocks(listing)
    assert components[HELLO] == [
        f"Component Name: {HELLO}",
        "Version: 1.0.0",
        "State: RUNNING",
        'Configuration: {"Message":"friend"}',
    ]
    assert components[SECOND][2] == "State: RUNNING"
    assert "aws.greengrass.Nucleus" in components
    assert ok(cli, "component", "details", "--name", HELLO).splitlines() == components[HELLO]

    wait_until(lambda: "Message=friend" in runtime.log(HELLO), what="the component's output")
    assert "(Run) hello from the artifact" in runtime.log(HELLO)
    wait_until(lambda: "second" in runtime.log(SECOND), what="the second component's output")
    assert ok(cli, "component", "restart", "--names", f"{HELLO},{SECOND}") == ""
    wait_until(lambda: runtime.log(HELLO).count("Message=friend") == 2, what=f"{HELLO} to restart")
    wait_until(lambda: runtime.log(SECOND).count("second") == 2, what=f"{SECOND} to restart")

    log_file = str(runtime.paths.component_log(HELLO))
    friendly = ok(cli, "logs", "get", "--log-file", log_file, "--filter", "friend", "--filter", "step=Run")
    assert friendly.splitlines() == [line for line in runtime.log(HELLO).splitlines() if "friend" in line]
    assert len(friendly.splitlines()) == 2
    warnings = ok(cli, "logs", "get", "--log-file", log_file, "--filter", "level=WARN").splitlines()
    assert len(warnings) == 2
    assert all("[WARN] (Run) careful" in line for line in warnings)
    recent = ok(
        cli,
        "logs",
        "get",
        "--log-dir",
        str(runtime.paths.logs_dir),
        "-t",
        "-10min,",
        "-f",
        r"\(Run\) second$",
    )
    assert len(recent.splitlines()) == 2

    assert ok(cli, "component", "stop", "--names", SECOND) == ""
    wait_until(
        lambda: "State: FINISHED" in ok(cli, "component", "details", "-n", SECOND), what=f"{SECOND} to stop"
    )

    removal = submitted(ok(cli, "deployment", "create", "--remove", HELLO))
    assert deployed(cli, removal) == f"{removal}: SUCCEEDED"
    assert HELLO not in blocks(ok(cli, "component", "list"))
    listed = ok(cli, "deployment", "list").splitlines()
    assert listed == [f"{first}: SUCCEEDED", f"{removal}: SUCCEEDED"]


def test_failures_exit_non_zero_and_say_why(runtime: RuntimeProcess, cli: Path, recipes: Path) -> None:
    password = run(cli, "get-debug-password")
    assert password.returncode == 1
    assert password.stdout == ""
    assert "Edgewise has no local debug console" in password.stderr

    missing = run(cli, "component", "restart", "--names", "com.example.Missing")
    assert missing.returncode == 1
    assert "Component com.example.Missing not found" in missing.stderr

    unknown = run(cli, "component", "list", "--all")
    assert unknown.returncode == 2
    assert "unrecognized arguments: --all" in unknown.stderr

    windows = run(cli, "deployment", "create", "-r", str(recipes), "--runWith", "A:windowsUser=me")
    assert windows.returncode == 1
    assert "--runWith: expected NAME:posixUser=USER[:GROUP], got 'A:windowsUser=me'" in windows.stderr

    # A failing Startup step, not Run: a Run step counts as RUNNING as soon as it starts.
    write_recipe(
        recipes, "com.example.Broken", "1.0.0", "Manifests:\n  - Lifecycle:\n      Startup: exit 3\n"
    )
    broken = submitted(
        ok(
            cli,
            "deployment",
            "create",
            "-r",
            str(recipes),
            "-m",
            "com.example.Broken=1.0.0",
            "-fp",
            "DO_NOTHING",
        )
    )
    assert deployed(cli, broken) == f"{broken}: FAILED"
    status = run(cli, "deployment", "status", "--deploymentId", broken)
    assert status.stdout == f"{broken}: FAILED\n"
    assert "reason:" in status.stderr


def test_the_path_entry_point_finds_the_root_in_ggc_root_path(runtime: RuntimeProcess) -> None:
    command = Path(sys.executable).parent / "greengrass-cli"
    without = run(command, "component", "list")
    assert without.returncode == 1
    assert "pass --ggcRootPath ROOT, or set GGC_ROOT_PATH" in without.stderr
    listing = run(command, "component", "list", env=environment(GGC_ROOT_PATH=str(runtime.paths.root)))
    assert listing.returncode == 0
    assert listing.stdout == "Components currently running in Greengrass:\n"
    given = run(command, "--ggcRootPath", str(runtime.paths.root), "deployment", "list")
    assert given.returncode == 0
    assert given.stdout == ""

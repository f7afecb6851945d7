"""The ``edgewise runtime`` CLI against a real runtime, run as a user would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.runtime_process import RuntimeProcess, write_recipe
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def edgewise(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "edgewise.cli", *args], capture_output=True, text=True, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"edgewise {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def test_cli_deploys_lists_inspects_restarts_and_stops(
    runtime: RuntimeProcess, recipes: Path, tmp_path: Path
) -> None:
    root = str(runtime.paths.root)
    write_recipe(
        recipes,
        "test.Cli",
        "1.0.0",
        """\
        ComponentConfiguration:
          DefaultConfiguration:
            mode: normal
        Manifests:
          - Lifecycle:
              Run: echo "mode={configuration:/mode}" && exec sleep 600
        """,
    )
    config = tmp_path / "update.json"
    config.write_text(json.dumps({"test.Cli": {"MERGE": {"mode": "fast"}}}))
    created = edgewise(
        "runtime",
        "deployment",
        "create",
        "--root",
        root,
        "--recipe-dir",
        str(recipes),
        "--merge",
        "test.Cli=1.0.0",
        "--update-config",
        f"@{config}",
        "--wait",
    )
    assert "SUCCEEDED" in created.stdout
    deployment_id = created.stdout.split()[0]

    listed = json.loads(edgewise("runtime", "component", "list", "--root", root, "--json").stdout)
    assert {
        "componentName": "test.Cli",
        "version": "1.0.0",
        "state": "RUNNING",
        "configuration": {"mode": "fast"},
    } in listed
    details = json.loads(edgewise("runtime", "component", "details", "test.Cli", "--root", root).stdout)
    assert details["configuration"] == {"mode": "fast"}
    assert deployment_id in edgewise("runtime", "deployment", "list", "--root", root).stdout
    assert "SUCCEEDED" in edgewise("runtime", "deployment", "status", deployment_id, "--root", root).stdout

    wait_until(lambda: "mode=fast" in runtime.log("test.Cli"), what="the component output")
    edgewise("runtime", "component", "restart", "test.Cli", "--root", root)
    wait_until(lambda: runtime.log("test.Cli").count("mode=fast") == 2, what="the restart")
    assert "mode=fast" in edgewise("runtime", "logs", "test.Cli", "--root", root).stdout
    edgewise("runtime", "component", "stop", "test.Cli", "--root", root)
    runtime.wait_state("test.Cli", "FINISHED")


def test_cli_wait_exits_non_zero_when_the_deployment_fails(runtime: RuntimeProcess, recipes: Path) -> None:
    write_recipe(
        recipes,
        "test.Failing",
        "1.0.0",
        """\
        Manifests:
          - Lifecycle:
              Install: exit 7
        """,
    )
    result = edgewise(
        "runtime",
        "deployment",
        "create",
        "--root",
        str(runtime.paths.root),
        "--recipe-dir",
        str(recipes),
        "--merge",
        "test.Failing=1.0.0",
        "--wait",
        check=False,
    )
    assert result.returncode == 1
    assert "FAILED" in result.stdout
    assert "test.Failing is BROKEN" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--merge", "no-version"], "--merge: expected NAME=VERSION"),
        (["--merge", "a.B=1.0"], "rootComponentVersionsToAdd.a.B"),
        (["--merge", "a.B=1.0.0", "--update-config", "{not json"], "--update-config: not valid JSON"),
        (["--merge", "a.B=1.0.0", "--failure-policy", "SOMETIMES"], "failureHandlingPolicy"),
        (["--merge", "a.B=1.0.0", "--run-with", "a.B:user=x"], "--run-with: expected NAME:posixUser="),
    ],
)
def test_cli_rejects_bad_arguments_naming_them(
    runtime: RuntimeProcess, args: list[str], message: str
) -> None:
    result = edgewise(
        "runtime", "deployment", "create", "--root", str(runtime.paths.root), *args, check=False
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert runtime.call("ListLocalDeployments")["localDeployments"] == []


def test_cli_without_a_runtime_says_so(tmp_path: Path) -> None:
    result = edgewise("runtime", "component", "list", "--root", str(tmp_path), check=False)
    assert result.returncode == 1
    assert "No runtime has run at" in result.stderr

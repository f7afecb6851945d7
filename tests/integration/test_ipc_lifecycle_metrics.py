"""Component metrics and token validation, called from a component process with the real awsiotsdk client,
and the metrics read back with ``edgewise runtime metrics``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.runtime_process import RuntimeProcess, write_recipe
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
CLIENTS = Path(__file__).parent / "clients"


def edgewise_metrics(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgewise.cli", "runtime", "metrics", "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_metrics_reported_by_a_component_are_read_back_with_the_cli(
    runtime: RuntimeProcess, tmp_path: Path, recipes: Path, artifacts: Path
) -> None:
    out = tmp_path / "results.json"
    source = artifacts / "test.Meter" / "1.0.0"
    source.mkdir(parents=True)
    shutil.copy(CLIENTS / "metric_put.py", source / "metric_put.py")
    write_recipe(
        recipes,
        "test.Meter",
        "1.0.0",
        f"""\
        ComponentConfiguration:
          DefaultConfiguration:
            accessControl:
              aws.greengrass.ipc.componentmetric:
                test.Meter:metrics:1:
                  operations: ["aws.greengrass#PutComponentMetric"]
                  resources: ["requests", "latency"]
        Manifests:
          - Artifacts:
              - Uri: file:metric_put.py
            Lifecycle:
              Run: {sys.executable} {{artifacts:path}}/metric_put.py {out}
        """,
    )
    root = runtime.paths.root
    assert json.loads(edgewise_metrics(root, "--json").stdout) == []

    runtime.deploy(recipes, artifacts=artifacts, rootComponentVersionsToAdd={"test.Meter": "1.0.0"})

    wait_until(out.exists, timeout=60, what="the component's results")
    results: dict[str, Any] = json.loads(out.read_text())
    assert all(results[f"requests_{value}"] == {"ok": True} for value in (5, 1, 9))
    assert results["latency"] == {"ok": True}
    assert results["denied"]["error"] == "UnauthorizedError"
    assert "secret" in results["denied"]["message"]
    assert results["negative"]["error"] == "InvalidArgumentsError"
    assert results["validate_token"]["error"] == "UnauthorizedError"
    assert "test.Meter" in results["validate_token"]["message"]

    def metrics() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(edgewise_metrics(root, "--json").stdout)
        return found if len(found) == 2 else []

    latency, requests = wait_until(metrics, timeout=30, what="the metrics file")
    assert (latency["component"], latency["name"], latency["unit"], latency["latest"]) == (
        "test.Meter",
        "latency",
        "SECONDS",
        0.5,
    )
    assert {key: requests[key] for key in ("latest", "count", "sum", "min", "max")} == {
        "latest": 9,
        "count": 3,
        "sum": 15,
        "min": 1,
        "max": 9,
    }
    table = edgewise_metrics(root).stdout
    assert "test.Meter" in table
    assert "requests" in table
    assert "COUNT" in table

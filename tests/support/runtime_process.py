"""A real runtime process for tests, and helpers to drive it: recipes, script components, process checks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from edgewise.runtime.ipc.client import IpcClient
from edgewise.runtime.paths import RootPaths
from tests.support.waiting import wait_until

T = TypeVar("T")
# The client scripts stay beside the integration tests that run them as components.
CLIENTS = Path(__file__).parents[1] / "integration" / "clients"


class RuntimeProcess:
    """``python -m edgewise.runtime`` on a temporary root."""

    def __init__(self, root: Path, *extra: str) -> None:
        self.root = root
        self.paths = RootPaths.at(root)
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RuntimeProcess:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self.paths.cli_token_file.unlink(missing_ok=True)
        stderr = (self.paths.root / "stderr.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edgewise.runtime", "--root", str(self.paths.root), *self.extra],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        stderr.close()
        wait_until(self._ready, what="the runtime to listen")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"runtime exited with {self.process.returncode}: {self.stderr()}")
        if not self.paths.cli_token_file.exists():
            return False
        try:
            self.call("ListComponents")
        except OSError:
            return False
        return True

    def stderr(self) -> str:
        return (self.paths.root / "stderr.log").read_text(errors="replace")[-4000:]

    def stop(self, timeout: float = 60) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def call(self, operation: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
        token = json.loads(self.paths.cli_token_file.read_text())["cli_auth_token"]
        with IpcClient(self.paths.ipc_socket, token, timeout=30) as client:
            return client.call(f"aws.greengrass#{operation}", request or {})

    def states(self) -> dict[str, str]:
        return {c["componentName"]: c["state"] for c in self.call("ListComponents")["components"]}

    def deploy(self, recipes: Path, *, artifacts: Path | None = None, **request: Any) -> str:
        body: dict[str, Any] = {"recipeDirectoryPath": str(recipes), **request}
        if artifacts is not None:
            body["artifactsDirectoryPath"] = str(artifacts)
        return str(self.call("CreateLocalDeployment", body)["deploymentId"])

    def wait_deployment(self, deployment_id: str, timeout: float = 60) -> dict[str, Any]:
        def final() -> dict[str, Any] | None:
            deployment = self.call("GetLocalDeploymentStatus", {"deploymentId": deployment_id})["deployment"]
            return deployment if deployment["status"] in ("SUCCEEDED", "FAILED", "CANCELED") else None

        return wait_until(final, timeout=timeout, what=f"deployment {deployment_id}")

    def wait_state(self, name: str, state: str, timeout: float = 30) -> None:
        wait_until(lambda: self.states().get(name) == state, timeout=timeout, what=f"{name} {state}")

    def log(self, name: str) -> str:
        path = self.paths.component_log(name)
        return path.read_text(errors="replace") if path.exists() else ""


@contextmanager
def running(root: Path, *extra: str) -> Iterator[RuntimeProcess]:
    runtime = RuntimeProcess(root, *extra).start()
    try:
        yield runtime
    finally:
        if runtime.process is not None and runtime.process.poll() is None:
            runtime.stop()


def write_recipe(directory: Path, name: str, version: str, body: str) -> Path:
    """Write a YAML recipe; ``body`` holds everything after the three header lines."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}.yaml"
    header = f'RecipeFormatVersion: "2020-01-25"\nComponentName: {name}\nComponentVersion: "{version}"\n'
    path.write_text(header + textwrap.dedent(body))
    return path


def script_component(
    recipes: Path,
    artifacts: Path,
    name: str,
    script: str,
    args: str = "",
    *,
    configuration: Mapping[str, Any] | None = None,
    step: str = "Run",
    version: str = "1.0.0",
) -> None:
    """A component whose lifecycle ``step`` runs ``clients/<script>`` with this Python.

    The script is copied to ``artifacts/<name>/<version>/`` and the recipe is written as JSON, with
    ``configuration`` as the component's default configuration.
    """
    source = artifacts / name / version
    source.mkdir(parents=True)
    shutil.copy(CLIENTS / script, source / script)
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentConfiguration": {"DefaultConfiguration": dict(configuration or {})},
        "Manifests": [
            {
                "Artifacts": [{"Uri": f"file:{script}"}],
                "Lifecycle": {step: f"{sys.executable} {{artifacts:path}}/{script} {args}".rstrip()},
            }
        ],
    }
    recipes.mkdir(parents=True, exist_ok=True)
    with (recipes / f"{name}-{version}.json").open("w") as handle:
        json.dump(recipe, handle, indent=2)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

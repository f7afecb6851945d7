"""What the runtime benchmarks share: a runtime process to start, drive and always clean up, recipes,
polling with a deadline, process memory from ``/proc``, the machine's description and plain-text tables.

The benchmark scripts import this as ``_harness`` (Python puts the script's folder on ``sys.path``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from edgewise.runtime.ipc.client import IpcCallError, IpcClient
from edgewise.runtime.orphans import kill_orphans
from edgewise.runtime.paths import RootPaths

T = TypeVar("T")

#: How long a runtime may take to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 30.0


def wait_for(condition: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.002) -> T:
    """Poll ``condition`` until it returns something truthy and return it; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"Timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


#: Benchmark ports lie below the kernel's ephemeral range (32768 and up on Linux), where no outgoing connection
#: takes one between the probe and the server's bind, and below the tests' own range (tests/support/ports.py,
#: 20000 and up): each pytest-xdist worker running quick runs gets its own slice.
_PORTS_FIRST = 10_000
_PORTS_SLICE = 600


def free_port() -> int:
    """A loopback TCP port nothing listens on, from this process's slice below the ephemeral range."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    start = _PORTS_FIRST + (int(worker) % 16 if worker.isdigit() else 0) * _PORTS_SLICE
    # A random start: the benchmarks one worker runs one after another do not all try the same ports first.
    offset = random.randrange(_PORTS_SLICE)
    for step in range(_PORTS_SLICE):
        port = start + (offset + step) % _PORTS_SLICE
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port in {start}-{start + _PORTS_SLICE - 1}")


_handed_out: set[int] = set()


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so that ``finally`` blocks stop every process we started."""

    def handle(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handle)


def python_env(pycache: Path | None) -> dict[str, str]:
    """The environment for every interpreter a benchmark starts, on both sides of a comparison.

    With ``pycache``, bytecode is cached there (``PYTHONPYCACHEPREFIX``) as on a device where the package is
    installed, even when the calling environment sets ``PYTHONDONTWRITEBYTECODE``; call :func:`warm_bytecode`
    before timing. With None the calling environment is passed on as it is.
    """
    env = dict(os.environ)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def warm_bytecode(env: dict[str, str]) -> None:
    """Import what the runtime and the baselines import once, so that their bytecode is cached.

    That includes what the runtime imports only on first use (for a deployment, or ``effective.yaml`` after a
    change), as an installed package has it all compiled: compiling it in the measured runtime would count
    both the compile time and the memory compiling leaves behind.
    """
    code = (
        "import subprocess, edgewise.runtime.__main__, edgewise.recipe._parse, nodesemver,"
        " edgewise.runtime.deployment.preparing, edgewise.runtime.deployment.resolving"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, stdin=subprocess.DEVNULL)


def add_bytecode_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bytecode",
        choices=["cached", "inherit"],
        default="cached",
        help="cached (default): interpreters cache bytecode in a temporary folder, as an installed package "
        "does; inherit: use this environment's settings (PYTHONDONTWRITEBYTECODE=1 recompiles every start)",
    )


def parse_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, *, quick: dict[str, Any]
) -> argparse.Namespace:
    """Add ``--quick`` to ``parser`` and parse ``argv``.

    With ``--quick``, ``quick`` (option destination -> value) replaces the defaults: sizes so small that the
    benchmark runs in seconds, so that a test can show it still works (tests/test_benchmarks.py). Its numbers
    mean nothing. Options given explicitly still win.
    """
    shown = " ".join(
        f"--{dest.replace('_', '-')} {' '.join(map(str, value)) if isinstance(value, list) else value}"
        for dest, value in quick.items()
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"tiny sizes ({shown}): checks in seconds that the benchmark still runs; the numbers mean nothing",
    )
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(**quick)
        args = parser.parse_args(argv)
    return args


def run_main(main: Callable[[], None]) -> None:
    """Run a benchmark's ``main``; a Ctrl-C ends it quietly once its ``finally`` blocks have cleaned up."""
    try:
        main()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)


def write_recipe(directory: Path, name: str, run_script: str, *, version: str = "1.0.0") -> Path:
    """Write a YAML recipe for ``name`` whose only step is ``Run: run_script``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}.yaml"
    path.write_text(
        'RecipeFormatVersion: "2020-01-25"\n'
        f"ComponentName: {name}\n"
        f'ComponentVersion: "{version}"\n'
        "Manifests:\n"
        "  - Lifecycle:\n"
        f"      Run: {json.dumps(run_script)}\n"
    )
    return path


def write_client_component(
    recipes: Path, artifacts: Path, name: str, client: Path, arguments: list[str]
) -> None:
    """A component running the benchmark client script ``client`` with ``arguments``, allowed to publish and
    subscribe anywhere."""
    source = artifacts / name / "1.0.0"
    source.mkdir(parents=True)
    shutil.copy(client, source / client.name)
    policy = {"operations": ["*"], "resources": ["*"]}
    recipe = {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": "1.0.0",
        "ComponentConfiguration": {
            "DefaultConfiguration": {"accessControl": {"aws.greengrass.ipc.pubsub": {f"{name}:all": policy}}}
        },
        "Manifests": [
            {
                "Artifacts": [{"Uri": f"file:{client.name}"}],
                "Lifecycle": {
                    "Run": " ".join([sys.executable, f"{{artifacts:path}}/{client.name}", *arguments])
                },
            }
        ],
    }
    recipes.mkdir(parents=True, exist_ok=True)
    (recipes / f"{name}-1.0.0.json").write_text(json.dumps(recipe))


class BenchRuntime:
    """``python -m edgewise.runtime`` on one root, with a persistent CLI connection once it is ready."""

    def __init__(self, root: Path, *options: str, env: dict[str, str] | None = None) -> None:
        self.paths = RootPaths.at(root)
        self.options = options
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self._client: IpcClient | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "the runtime has not been launched"
        return self.process.pid

    def launch(self) -> None:
        """Start the process and return at once (the timed part of a start-up measurement)."""
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self.paths.cli_token_file.unlink(missing_ok=True)
        self.paths.pid_file.unlink(missing_ok=True)
        with (self.paths.root / "stderr.log").open("ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "edgewise.runtime", "--root", str(self.paths.root), *self.options],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=self.env,
                # Its own session: a Ctrl-C at the terminal reaches only us, and we stop it in order.
                start_new_session=True,
            )

    def start(self, *, timeout: float = 30.0) -> BenchRuntime:
        """Launch and wait until the runtime has started and its IPC server answers."""
        self.launch()
        wait_for(self._connect, timeout=timeout, what=f"the runtime at {self.paths.root} to answer IPC")
        return self

    def _connect(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = (self.paths.root / "stderr.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"The runtime exited with code {self.process.returncode}: {tail}")
        # The CLI token is written last, atomically, as the runtime's readiness signal: the IPC socket
        # answers earlier, before the runtime has recovered its deployment queue, and a deployment sent in
        # that gap can fail. Until the token is there, this returns False and wait_for polls again.
        if not self.paths.cli_token_file.exists():
            return False
        token = json.loads(self.paths.cli_token_file.read_text())["cli_auth_token"]
        client = IpcClient(self.paths.ipc_socket, token, timeout=30)
        try:
            client.connect()
        except OSError:
            client.close()
            return False
        self._client = client
        return True

    def call(self, operation: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self._client is not None, "the runtime has not been started"
        try:
            return self._client.call(f"aws.greengrass#{operation}", request or {})
        except IpcCallError as exc:
            # The temporary root is gone by the time anyone reads the error: carry the evidence along.
            tail = "".join(self.paths.runtime_log.read_text(errors="replace").splitlines(keepends=True)[-30:])
            raise RuntimeError(f"{operation} failed: {exc}; the runtime log ends with:\n{tail}") from exc

    def states(self) -> dict[str, str]:
        return {c["componentName"]: c["state"] for c in self.call("ListComponents")["components"]}

    def deploy(self, recipes: Path, versions: dict[str, str]) -> str:
        body = {"recipeDirectoryPath": str(recipes), "rootComponentVersionsToAdd": versions}
        return str(self.call("CreateLocalDeployment", body)["deploymentId"])

    def wait_deployment(self, deployment_id: str, *, timeout: float = 120.0, interval: float = 0.002) -> str:
        """Wait for the deployment to end; return its final status (SUCCEEDED, FAILED or CANCELED)."""

        def final() -> str | None:
            status = str(
                self.call("GetLocalDeploymentStatus", {"deploymentId": deployment_id})["deployment"]["status"]
            )
            return status if status in ("SUCCEEDED", "FAILED", "CANCELED") else None

        return wait_for(final, timeout=timeout, what=f"deployment {deployment_id}", interval=interval)

    def stop(self) -> None:
        """SIGTERM and wait; if it does not stop in time, kill it and whatever components it left."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print(f"runtime pid {self.process.pid} did not stop in {STOP_TIMEOUT:g} s; killing it")
                self.process.kill()
                self.process.wait()
        kill_orphans(self.paths.ipc_socket)
        self.process = None


@contextmanager
def running_runtime(root: Path, *options: str, env: dict[str, str] | None = None) -> Iterator[BenchRuntime]:
    """A started runtime that is stopped on the way out, whatever happens."""
    runtime = BenchRuntime(root, *options, env=env)
    try:
        yield runtime.start()
    finally:
        runtime.stop()


@contextmanager
def process_group(argv: Sequence[str], **popen: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A process in its own session; its whole group is killed on the way out."""
    process = subprocess.Popen(list(argv), start_new_session=True, **popen)
    try:
        yield process
    finally:
        kill_group(process)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group led by ``process`` and reap the leader."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def memory_kib(pid: int) -> tuple[int, int | None]:
    """(RSS, PSS) of one process in KiB; PSS is None where ``smaps_rollup`` is missing (kernel < 4.14)."""
    rss = _proc_field(Path(f"/proc/{pid}/status"), "VmRSS:")
    try:
        pss: int | None = _proc_field(Path(f"/proc/{pid}/smaps_rollup"), "Pss:")
    except (FileNotFoundError, PermissionError):
        pss = None
    return rss, pss


def _proc_field(path: Path, key: str) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    raise ValueError(f"{path} has no {key!r} line")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def machine_description() -> list[tuple[str, str]]:
    """The facts a reader needs to compare our numbers with theirs."""
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    total_kib = _proc_field(Path("/proc/meminfo"), "MemTotal:")
    return [
        ("date", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("cpu", f"{model}, {os.cpu_count()} cores"),
        ("memory", f"{total_kib / 1024 / 1024:.1f} GiB"),
        ("kernel", platform.release()),
        ("python", f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})"),
    ]


def print_machine() -> None:
    for key, value in machine_description():
        print(f"{key:>8}: {value}")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A Markdown table, so that output can be pasted into docs/benchmarks.md as it is."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(headers[i]), *(len(row[i]) for row in cells)) for i in range(len(headers))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")

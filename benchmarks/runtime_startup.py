"""Benchmark: time from launching ``python -m edgewise.runtime`` to 20 trivial components running, beside
a fresh ``python -c`` that spawns the same 20 ``sh -c`` processes itself with ``subprocess``.

Each component's Run script is ``touch <markers>/<name> && exec sleep 600``, so "running" means its marker
file exists: both sides are timed the same way, from just before ``Popen`` of the interpreter until all
markers exist, so interpreter start-up counts on both sides. The components are deployed once beforehand
(that deployment is timed separately: create → SUCCEEDED); the runtime then starts them again from its
stored configuration on every launch, as it does when a device boots. Runtime and baseline launches
alternate so that drift on the machine hits both alike.

A second floor, a fresh interpreter that imports asyncio and starts the same shells as the runtime does, shows
how much of the gap any asyncio runtime pays before doing anything of its own.

Target (the issue): the runtime within 1.5x of the direct spawn.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

from _harness import (
    BenchRuntime,
    add_bytecode_option,
    exit_on_sigterm,
    median,
    parse_args,
    print_machine,
    print_table,
    process_group,
    python_env,
    run_main,
    running_runtime,
    wait_for,
    warm_bytecode,
    write_recipe,
)

TARGET_RATIO = 1.5

#: The baseline: a fresh interpreter that starts the same shells the runtime would, then waits.
BASELINE = """\
import subprocess, sys
scripts = sys.argv[1:]
children = [
    subprocess.Popen(["/bin/sh", "-c", s], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for s in scripts
]
children[0].wait()
"""

#: The floor of any asyncio runtime: a fresh interpreter that imports asyncio and starts the same shells the
#: way the runtime does (``loop.subprocess_exec``, output piped, children reaped through pidfds), and nothing
#: else. The shells stay in its process group (the runtime gives each its own session) so that killing the
#: group ends them.
ASYNCIO_FLOOR = """\
import asyncio, subprocess, sys
async def main(scripts):
    loop = asyncio.get_running_loop()
    if sys.version_info < (3, 12):
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(loop)
        asyncio.set_child_watcher(watcher)
    for script in scripts:
        await loop.subprocess_exec(
            asyncio.SubprocessProtocol, "/bin/sh", "-c", script, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
    await asyncio.sleep(3600)
asyncio.run(main(sys.argv[1:]))
"""


def run_script(markers: Path, name: str) -> str:
    return f"touch {shlex.quote(str(markers / name))} && exec sleep 600"


def clear(markers: Path) -> None:
    for marker in markers.iterdir():
        marker.unlink()


def wait_markers(markers: Path, count: int, *, timeout: float = 60.0) -> None:
    # One listdir per poll: cheap enough to poll every 2 ms without starving the measured processes.
    wait_for(lambda: len(os.listdir(markers)) >= count, timeout=timeout, what=f"{count} marker files")


def time_deployment(
    root: Path, recipes: Path, markers: Path, names: list[str], *, env: dict[str, str]
) -> tuple[float, float]:
    """Deploy the components on a fresh runtime at ``root``; (seconds to SUCCEEDED, seconds to all markers)."""
    clear(markers)
    with running_runtime(root, env=env) as runtime:
        start = time.perf_counter()
        deployment = runtime.deploy(recipes, dict.fromkeys(names, "1.0.0"))
        status = runtime.wait_deployment(deployment)
        succeeded = time.perf_counter() - start
        if status != "SUCCEEDED":
            raise RuntimeError(f"The deployment of {len(names)} components ended {status}")
        wait_markers(markers, len(names))
        return succeeded, time.perf_counter() - start


def time_runtime_start(root: Path, markers: Path, count: int, *, env: dict[str, str]) -> float:
    """Seconds from launching the runtime on ``root`` until its ``count`` components have written markers."""
    clear(markers)
    runtime = BenchRuntime(root, env=env)
    try:
        start = time.perf_counter()
        runtime.launch()
        wait_markers(markers, count)
        return time.perf_counter() - start
    finally:
        runtime.stop()


def time_direct_spawn(
    markers: Path, names: list[str], *, env: dict[str, str], program: str = BASELINE
) -> float:
    """Seconds from launching the baseline interpreter (``program``: :data:`BASELINE` or
    :data:`ASYNCIO_FLOOR`) until its shells have written every marker."""
    clear(markers)
    scripts = [run_script(markers, name) for name in names]
    start = time.perf_counter()
    with process_group([sys.executable, "-c", program, *scripts], env=env):
        wait_markers(markers, len(names))
        return time.perf_counter() - start


def time_imports(*, env: dict[str, str]) -> float:
    """Seconds for a fresh interpreter to import the runtime's modules and exit: the floor of any start-up."""
    start = time.perf_counter()
    with process_group([sys.executable, "-c", "import edgewise.runtime.__main__"], env=env) as process:
        process.wait()
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--components", type=int, default=20, help="trivial components (20)")
    parser.add_argument("--repetitions", type=int, default=5, help="start-ups timed on each side (5)")
    parser.add_argument(
        "--deployments", type=int, default=3, help="deployments timed, each on a fresh root (3)"
    )
    add_bytecode_option(parser)
    args = parse_args(parser, argv, quick={"components": 1, "repetitions": 1, "deployments": 1})
    if args.components < 1 or args.repetitions < 1 or args.deployments < 1:
        parser.error("--components, --repetitions and --deployments must be at least 1")
    exit_on_sigterm()

    print("== runtime start-up ==")
    print_machine()
    print(f"bytecode: {args.bytecode}")
    names = [f"bench.Start{index:02d}" for index in range(args.components)]
    with tempfile.TemporaryDirectory(prefix="edgewise-bench-") as tmp:
        env = python_env(Path(tmp) / "pycache" if args.bytecode == "cached" else None)
        if args.bytecode == "cached":
            warm_bytecode(env)
        recipes, markers = Path(tmp) / "recipes", Path(tmp) / "markers"
        markers.mkdir()
        for name in names:
            write_recipe(recipes, name, run_script(markers, name))
        deployments = [
            time_deployment(Path(tmp) / f"root{index}", recipes, markers, names, env=env)
            for index in range(args.deployments)
        ]
        root = Path(tmp) / f"root{args.deployments - 1}"
        runtime_starts: list[float] = []
        direct_spawns: list[float] = []
        asyncio_floors: list[float] = []
        imports: list[float] = []
        # One untimed round first: the first start after a deployment also replays its configuration log.
        time_runtime_start(root, markers, len(names), env=env)
        time_direct_spawn(markers, names, env=env)
        for _ in range(args.repetitions):
            runtime_starts.append(time_runtime_start(root, markers, len(names), env=env))
            direct_spawns.append(time_direct_spawn(markers, names, env=env))
            asyncio_floors.append(time_direct_spawn(markers, names, env=env, program=ASYNCIO_FLOOR))
            imports.append(time_imports(env=env))

    n = args.components
    rows = [
        [f"runtime launch → {n} components running", *_summary(runtime_starts)],
        [f"baseline: python -c spawning {n} `sh -c` → all running", *_summary(direct_spawns)],
        [f"floor: python -c asyncio spawning {n} `sh -c` → all running", *_summary(asyncio_floors)],
        ["floor: python -c 'import edgewise.runtime.__main__' → exit", *_summary(imports)],
        [f"deployment of {n} components: create → SUCCEEDED", *_summary([d[0] for d in deployments])],
        [f"deployment of {n} components: create → all running", *_summary([d[1] for d in deployments])],
    ]
    print()
    print_table(["measure", "median ms", "min ms", "max ms", "runs"], rows)
    ratio = median(runtime_starts) / median(direct_spawns)
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print()
    print(
        f"start-up ratio runtime / direct spawn (medians): {ratio:.2f}x; {verdict} the {TARGET_RATIO:g}x target "
        f"(+{(median(runtime_starts) - median(direct_spawns)) * 1000:.0f} ms)"
    )
    print(
        f"asyncio floor / direct spawn (medians): {median(asyncio_floors) / median(direct_spawns):.2f}x; "
        f"runtime / asyncio floor: {median(runtime_starts) / median(asyncio_floors):.2f}x"
    )


def _summary(seconds: list[float]) -> list[str]:
    return [
        f"{median(seconds) * 1000:.0f}",
        f"{min(seconds) * 1000:.0f}",
        f"{max(seconds) * 1000:.0f}",
        str(len(seconds)),
    ]


if __name__ == "__main__":
    run_main(main)

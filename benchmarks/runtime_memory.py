"""Benchmark: the runtime process's resident memory, idle with no components and with 20 (just deployed, and
after a restart that starts them from the stored configuration, as when a device boots), beside a bare
``python -c`` interpreter (and one that has only imported the runtime's modules) in the same run.

Only the runtime process itself is measured, not its components. RSS comes from ``/proc/PID/status``; PSS
(which shares the interpreter's pages fairly between processes) from ``/proc/PID/smaps_rollup``.

Target (issue 14): the runtime's own RSS at most 25 MiB idle (first set at 35 MiB); the Greengrass Java nucleus
needs at least 96 MB.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from _harness import (
    BenchRuntime,
    add_bytecode_option,
    exit_on_sigterm,
    median,
    memory_kib,
    parse_args,
    print_machine,
    print_table,
    process_group,
    python_env,
    run_main,
    wait_for,
    warm_bytecode,
    write_recipe,
)

TARGET_MIB = 25.0
JAVA_NUCLEUS_MIB = 96.0


@dataclass(frozen=True)
class Samples:
    """Memory samples of one process in one situation, in KiB."""

    label: str
    rss: list[int]
    pss: list[int]

    def row(self) -> list[str]:
        pss = [_mib(median(self.pss)), _mib(max(self.pss))] if self.pss else ["n/a", "n/a"]
        return [self.label, _mib(median(self.rss)), _mib(max(self.rss)), *pss]


def _mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def sample(pids: dict[str, int], *, count: int, interval: float) -> dict[str, tuple[list[int], list[int]]]:
    """``count`` samples of each process, ``interval`` seconds apart, all processes in the same round."""
    taken: dict[str, tuple[list[int], list[int]]] = {label: ([], []) for label in pids}
    for index in range(count):
        if index:
            time.sleep(interval)
        for label, pid in pids.items():
            rss, pss = memory_kib(pid)
            taken[label][0].append(rss)
            if pss is not None:
                taken[label][1].append(pss)
    return taken


def sleeper_names(count: int) -> list[str]:
    return [f"bench.Sleep{index:02d}" for index in range(count)]


def deploy_sleepers(runtime: BenchRuntime, recipes: Path, count: int) -> None:
    """Deploy ``count`` components that only sleep, and wait until all are RUNNING."""
    names = sleeper_names(count)
    for name in names:
        write_recipe(recipes, name, "exec sleep 3600")
    status = runtime.wait_deployment(runtime.deploy(recipes, dict.fromkeys(names, "1.0.0")))
    if status != "SUCCEEDED":
        raise RuntimeError(f"The deployment of {count} sleeping components ended {status}")
    wait_running(runtime, names)


def wait_running(runtime: BenchRuntime, names: list[str]) -> None:
    wait_for(
        lambda: all(runtime.states().get(name) == "RUNNING" for name in names),
        timeout=60,
        what=f"{len(names)} components RUNNING",
        interval=0.05,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--components", type=int, default=20, help="components in the loaded case (20)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to let each case settle (2)")
    parser.add_argument("--samples", type=int, default=5, help="samples per case (5)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples (0.5)")
    add_bytecode_option(parser)
    args = parse_args(parser, argv, quick={"components": 1, "settle": 0.0, "samples": 1, "interval": 0.0})
    if args.components < 1 or args.samples < 1 or args.settle < 0 or args.interval < 0:
        parser.error("--components and --samples must be at least 1; --settle and --interval not negative")
    exit_on_sigterm()

    print("== runtime memory ==")
    print_machine()
    print(f"bytecode: {args.bytecode}")
    with tempfile.TemporaryDirectory(prefix="edgewise-bench-") as tmp, ExitStack() as stack:
        env = python_env(Path(tmp) / "pycache" if args.bytecode == "cached" else None)
        if args.bytecode == "cached":
            warm_bytecode(env)
        bare = stack.enter_context(
            process_group([sys.executable, "-c", "import time; time.sleep(3600)"], env=env)
        )
        imported = stack.enter_context(
            process_group(
                [sys.executable, "-c", "import time, edgewise.runtime.__main__; time.sleep(3600)"], env=env
            )
        )
        runtime = BenchRuntime(Path(tmp) / "root", env=env)
        stack.callback(runtime.stop)
        runtime.start()
        time.sleep(args.settle)
        pids = {"bare": bare.pid, "imported": imported.pid, "runtime": runtime.pid}
        idle = sample(pids, count=args.samples, interval=args.interval)
        deploy_sleepers(runtime, Path(tmp) / "recipes", args.components)
        time.sleep(args.settle)
        loaded = sample(pids, count=args.samples, interval=args.interval)
        # The boot case: a new runtime process starts the same components from its stored configuration.
        runtime.stop()
        runtime.start()
        wait_running(runtime, sleeper_names(args.components))
        time.sleep(args.settle)
        restarted = sample({"runtime": runtime.pid}, count=args.samples, interval=args.interval)

    results = [
        Samples("bare `python -c 'import time; time.sleep(...)'`", *idle["bare"]),
        Samples("python after importing the runtime's modules (no work)", *idle["imported"]),
        Samples("runtime, idle, 0 components", *idle["runtime"]),
        Samples(f"runtime, idle, {args.components} `exec sleep` components", *loaded["runtime"]),
        Samples(f"runtime restarted, idle, the same {args.components} components", *restarted["runtime"]),
    ]
    print()
    print_table(
        ["process", "RSS median MiB", "RSS max MiB", "PSS median MiB", "PSS max MiB"],
        [s.row() for s in results],
    )
    bare_rss = median(results[0].rss) / 1024
    print()
    for samples in results[2:]:
        rss = median(samples.rss) / 1024
        verdict = "meets" if max(samples.rss) / 1024 < TARGET_MIB else "misses"
        print(
            f"{samples.label}: {rss:.1f} MiB = {rss / bare_rss:.2f}x the bare interpreter "
            f"(+{rss - bare_rss:.1f} MiB); {verdict} the {TARGET_MIB:g} MiB target "
            f"({JAVA_NUCLEUS_MIB / rss:.1f}x below the Java nucleus's {JAVA_NUCLEUS_MIB:g} MB)"
        )


if __name__ == "__main__":
    run_main(main)

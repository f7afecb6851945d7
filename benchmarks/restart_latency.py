"""Benchmark: crash-to-restarted latency of a component, the first restart and the backed-off ones, beside a
plain shell loop that restarts the same script.

The component's Run script writes ``start <time>``, sleeps briefly, writes ``exit <time>`` and exits 1
(times from ``date +%s.%N``). A latency is the gap from one ``exit`` line to the next ``start`` line: it
covers noticing the exit, the ERRORED → STOPPING → INSTALLED → STARTING → RUNNING round and starting the
new shell. Three measurements:

* first restart, fresh runs: a new runtime per run, the component crashing ``--crashes`` times; the first
  restart is immediate and later ones follow the runtime's back-off policy (the error threshold is raised
  so the component never goes BROKEN);
* first restart, steady: one runtime with ``--error-window 0.001``, so that every crash is counted as the
  first one (the previous error is always outside the window) and every restart is immediate;
* baseline: ``while true; do sh -c SCRIPT; done``.
"""

from __future__ import annotations

import argparse
import shlex
import tempfile
from pathlib import Path

from _harness import (
    exit_on_sigterm,
    median,
    parse_args,
    print_machine,
    print_table,
    process_group,
    run_main,
    running_runtime,
    wait_for,
    write_recipe,
)
from edgewise.runtime.lifecycle.restart import RestartBackoff
from edgewise.runtime.lifecycle.settings import LifecycleSettings

COMPONENT = "bench.Crasher"

#: The runtime's default back-off policy, without jitter: the delay the policy adds before each retry.
POLICY = RestartBackoff(
    LifecycleSettings.restart_backoff_base, LifecycleSettings.restart_backoff_cap, jitter=0.0
)
JITTER = RestartBackoff.jitter


def crash_script(stamps: Path, delay: float) -> str:
    target = shlex.quote(str(stamps))
    return f'echo "start $(date +%s.%N)" >> {target}; sleep {delay:g}; echo "exit $(date +%s.%N)" >> {target}; exit 1'


def read_stamps(stamps: Path) -> tuple[list[float], list[float]]:
    """(start times, exit times) written so far; a half-written last line is ignored."""
    starts: list[float] = []
    exits: list[float] = []
    if not stamps.exists():
        return starts, exits
    for line in stamps.read_text().splitlines():
        kind, _, value = line.partition(" ")
        try:
            when = float(value)
        except ValueError:
            continue
        (starts if kind == "start" else exits).append(when)
    return starts, exits


def latencies(stamps: Path, count: int) -> list[float]:
    """Seconds from each of the first ``count`` exits to the start that follows it."""
    starts, exits = read_stamps(stamps)
    return [starts[index + 1] - exits[index] for index in range(count)]


def wait_starts(stamps: Path, count: int, *, timeout: float) -> None:
    wait_for(
        lambda: len(read_stamps(stamps)[0]) >= count,
        timeout=timeout,
        what=f"{count} starts recorded in {stamps}",
        interval=0.02,
    )


def measure_runtime(work: Path, *options: str, restarts: int, delay: float, timeout: float) -> list[float]:
    """Deploy the crashing component on a fresh runtime and return its first ``restarts`` latencies."""
    stamps = work / "stamps"
    write_recipe(work / "recipes", COMPONENT, crash_script(stamps, delay))
    with running_runtime(work / "root", *options) as runtime:
        runtime.deploy(work / "recipes", {COMPONENT: "1.0.0"})
        wait_starts(stamps, restarts + 1, timeout=timeout)
    return latencies(stamps, restarts)


def measure_shell_loop(work: Path, *, restarts: int, delay: float) -> list[float]:
    stamps = work / "stamps"
    work.mkdir(parents=True)
    loop = 'while true; do /bin/sh -c "$1"; done'
    with process_group(["/bin/sh", "-c", loop, "loop", crash_script(stamps, delay)]):
        wait_starts(stamps, restarts + 1, timeout=60 + restarts * delay * 2)
    return latencies(stamps, restarts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="fresh runtimes for the back-off series (5)")
    parser.add_argument(
        "--crashes", type=int, default=4, help="crashes per fresh runtime (4: waits 0+1+2+4 s)"
    )
    parser.add_argument(
        "--samples", type=int, default=20, help="restarts in the steady and baseline series (20)"
    )
    parser.add_argument(
        "--delay", type=float, default=0.2, help="seconds each run lives before exiting 1 (0.2)"
    )
    args = parse_args(parser, argv, quick={"runs": 1, "crashes": 1, "samples": 1, "delay": 0.0})
    if args.runs < 1 or args.crashes < 1 or args.samples < 1 or args.delay < 0:
        parser.error("--runs, --crashes and --samples must be at least 1; --delay not negative")
    exit_on_sigterm()

    print("== restart latency ==")
    print_machine()
    series: list[list[float]] = []
    with tempfile.TemporaryDirectory(prefix="edgewise-bench-") as tmp:
        backoff_total = sum(POLICY.delay(errors) for errors in range(1, args.crashes + 1)) * (1 + JITTER)
        timeout = 60 + backoff_total + args.crashes * args.delay * 2
        threshold = str(args.crashes + 2)
        for run in range(args.runs):
            work = Path(tmp) / f"fresh{run}"
            series.append(
                measure_runtime(
                    work,
                    "--error-threshold",
                    threshold,
                    restarts=args.crashes,
                    delay=args.delay,
                    timeout=timeout,
                )
            )
        steady = measure_runtime(
            Path(tmp) / "steady",
            "--error-window",
            "0.001",
            restarts=args.samples,
            delay=args.delay,
            timeout=60 + args.samples * args.delay * 2,
        )
        baseline = measure_shell_loop(Path(tmp) / "shell", restarts=args.samples, delay=args.delay)

    rows = []
    for index in range(args.crashes):
        measured = [run[index] for run in series]
        policy = POLICY.delay(index + 1)
        spread = f"{policy:g} s" if policy == 0 else f"{policy:g}-{policy * (1 + JITTER):g} s"
        rows.append(
            [
                f"restart {index + 1} (fresh runs)",
                spread,
                f"{median(measured) * 1000:.1f}",
                f"{min(measured) * 1000:.1f}",
                f"{max(measured) * 1000:.1f}",
                f"{(median(measured) - policy) * 1000:.1f}",
                str(len(measured)),
            ]
        )
    for label, values in (
        ("first restart, steady (--error-window 0.001)", steady),
        ("baseline: shell loop", baseline),
    ):
        rows.append(
            [
                label,
                "0 s",
                f"{median(values) * 1000:.1f}",
                f"{min(values) * 1000:.1f}",
                f"{max(values) * 1000:.1f}",
                f"{median(values) * 1000:.1f}",
                str(len(values)),
            ]
        )
    print()
    print_table(["restart", "policy wait", "median ms", "min ms", "max ms", "median - policy ms", "n"], rows)
    first = median([run[0] for run in series])
    print()
    print(
        f"first restart: {first * 1000:.1f} ms (fresh runs), {median(steady) * 1000:.1f} ms (steady) vs "
        f"{median(baseline) * 1000:.1f} ms for the shell loop: "
        f"{first / median(baseline):.1f}x / {median(steady) / median(baseline):.1f}x"
    )


if __name__ == "__main__":
    run_main(main)

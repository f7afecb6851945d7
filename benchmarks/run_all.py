"""Run every runtime benchmark with its default parameters and print the results (``make bench``).

Each benchmark compares the runtime with a baseline measured in the same run; see each script's
``--help`` for what it measures and docs/benchmarks.md for the recorded results.
"""

from __future__ import annotations

import argparse

import restart_latency
import runtime_memory
import runtime_startup
from _harness import run_main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.parse_args(argv)
    for benchmark in (runtime_memory, runtime_startup, restart_latency):
        benchmark.main([])
        print()


if __name__ == "__main__":
    run_main(main)

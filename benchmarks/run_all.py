"""Run every runtime, MQTT gateway and artifact download benchmark with its default parameters and print
the results (``make bench``, about 10 minutes; ``--quick`` shortens the pub/sub memory run).

Each benchmark compares the runtime with a baseline measured in the same run; see each script's
``--help`` for what it measures and docs/benchmarks.md for the recorded results.
"""

from __future__ import annotations

import argparse

import artifact_download
import gateway_connect
import gateway_publish
import pubsub_fanout
import pubsub_memory
import pubsub_throughput
import restart_latency
import runtime_memory
import runtime_startup
from _harness import run_main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="run the 1-million-message memory benchmark with 100,000 messages",
    )
    args = parser.parse_args(argv)
    for benchmark in (runtime_memory, runtime_startup, restart_latency, pubsub_throughput, pubsub_fanout):
        benchmark.main([])
        print()
    pubsub_memory.main(["--count", "100000"] if args.quick else [])
    for benchmark in (gateway_connect, gateway_publish, artifact_download):
        print()
        benchmark.main([])


if __name__ == "__main__":
    run_main(main)

"""Run every runtime, MQTT gateway, artifact download and fleet fan-out benchmark with its default parameters
and print the results (``make bench``, about 15 minutes; ``--quick`` shortens the pub/sub memory run and
deploys to 10 and 100 devices only).

Each benchmark compares the runtime with a baseline measured in the same run; see each script's
``--help`` for what it measures and docs/benchmarks.md for the recorded results.
"""

from __future__ import annotations

import argparse

import artifact_download
import fleet_fanout
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
        help="run the 1-million-message memory benchmark with 100,000 messages, and the fleet fan-out "
        "with 10 and 100 devices",
    )
    args = parser.parse_args(argv)
    for benchmark in (runtime_memory, runtime_startup, restart_latency, pubsub_throughput, pubsub_fanout):
        benchmark.main([])
        print()
    pubsub_memory.main(["--count", "100000"] if args.quick else [])
    for benchmark in (gateway_connect, gateway_publish, artifact_download):
        print()
        benchmark.main([])
    print()
    fleet_fanout.main(["--devices", "10", "100", "--extra-rates"] if args.quick else [])


if __name__ == "__main__":
    run_main(main)

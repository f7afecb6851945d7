"""Run every runtime, MQTT gateway, artifact download, fleet fan-out, shadow, stream, telemetry and machine learning
benchmark with its default parameters and print the results (``make bench``, about 35 minutes; ``--short``
shortens the pub/sub memory run, deploys to 10 and 100 devices only and cuts the export outage to 20 s;
``--quick`` runs each benchmark's ``--quick`` mode, tiny sizes whose numbers mean nothing, in about a minute).

Each benchmark compares the runtime with a baseline measured in the same run; see each script's
``--help`` for what it measures and docs/benchmarks.md for the recorded results.
"""

from __future__ import annotations

import argparse
from types import ModuleType

import artifact_download
import automl_quality
import client_devices_bridge
import export_backlog
import fleet_fanout
import gateway_connect
import gateway_publish
import inference_overhead
import model_endpoint
import pubsub_fanout
import pubsub_memory
import pubsub_throughput
import restart_latency
import runtime_memory
import runtime_startup
import shadow_round_trip
import stream_append
import telemetry_ingest
from _harness import run_main

#: Every benchmark, in the order they run; tests/test_benchmarks.py checks that none is missing.
BENCHMARKS: tuple[ModuleType, ...] = (
    runtime_memory,
    runtime_startup,
    restart_latency,
    pubsub_throughput,
    pubsub_fanout,
    pubsub_memory,
    gateway_connect,
    gateway_publish,
    artifact_download,
    fleet_fanout,
    stream_append,
    telemetry_ingest,
    export_backlog,
    shadow_round_trip,
    client_devices_bridge,
    inference_overhead,
    model_endpoint,
    automl_quality,
)

#: The arguments of ``--short`` where they differ from the defaults.
SHORT: dict[ModuleType, list[str]] = {
    pubsub_memory: ["--count", "100000"],
    fleet_fanout: ["--devices", "10", "100", "--extra-rates"],
    export_backlog: ["--outage-s", "20"],
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument(
        "--short",
        action="store_true",
        help="run the 1-million-message memory benchmark with 100,000 messages, the fleet fan-out "
        "with 10 and 100 devices, and the export backlog after a 20 s outage",
    )
    sizes.add_argument(
        "--quick", action="store_true", help="run every benchmark with --quick: tiny sizes, about a minute"
    )
    args = parser.parse_args(argv)
    for index, benchmark in enumerate(BENCHMARKS):
        if index:
            print()
        if args.quick:
            benchmark.main(["--quick"])
        else:
            benchmark.main(SHORT.get(benchmark, []) if args.short else [])


if __name__ == "__main__":
    run_main(main)

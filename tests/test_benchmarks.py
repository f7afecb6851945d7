"""Every benchmark still runs: each script's ``--quick`` mode (tiny sizes) exits 0 and prints its comparison.

Timings are never asserted: on a shared machine they mean nothing, and the benchmarks report them for people.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

#: What each benchmark prints once it has compared itself with its baseline: the line with the ratio, or
#: the heading of the ratio table followed by a row with a number in it.
_TABLE_ROW = r"\n\|.*\n\|[-|]+\n\|[^\n]*\d+\.\d\d"
RATIO_LINES = {
    "artifact_download": r"data plane / http\.server over HTTPS: \d+\.\d\d\n",
    "automl_quality": r"simulator: AutoML F1 / best baseline F1: \d+\.\d\dx",
    "client_devices_bridge": r"bridge / direct \(median msg/s\): \d+\.\d\dx",
    "export_backlog": r"drain rate / append rate: \d+\.\d\dx",
    "fleet_fanout": r"Growth \(least squares over every run\): deployment -?\d+\.\d\d s \+ -?\d+\.\d ms x N",
    "gateway_connect": r"Gateway relative to Mosquitto without authorization.*" + _TABLE_ROW,
    "gateway_publish": r"Gateway relative to Mosquitto without authorization.*" + _TABLE_ROW,
    "inference_overhead": r"inference path / bare ONNX Runtime \(p50 latency\): \d+\.\d\dx",
    "model_endpoint": r"endpoint / in-process ONNX Runtime, 100 row\(s\) a request: rows/s \d+\.\d{4}x",
    "pubsub_fanout": r"Edgewise IPC relative to each baseline.*" + _TABLE_ROW,
    "pubsub_memory": r"RSS ratio after the run: \d+\.\dx",
    "pubsub_throughput": r"Edgewise IPC relative to each baseline.*" + _TABLE_ROW,
    "restart_latency": r"first restart: .* for the shell loop: \d+\.\dx / \d+\.\dx",
    "runtime_memory": r"runtime, idle, 1 `exec sleep` components: .* = \d+\.\d\dx the bare interpreter",
    "runtime_startup": r"start-up ratio runtime / direct spawn \(medians\): \d+\.\d\dx",
    "shadow_round_trip": r"shadow update / plain publish \(p50\): \d+\.\d\dx",
    "stream_append": r"stream manager SDK / raw file append, flush_on_write=true: \d+\.\d\dx",
    "telemetry_ingest": r"Cloud store ingest relative to raw Mosquitto.*" + _TABLE_ROW,
}


def benchmark_scripts() -> list[str]:
    """The scripts with a ``main(argv)`` that run_all.py runs (helpers such as pubsub_client.py have none)."""
    return sorted(
        path.stem
        for path in BENCHMARKS.glob("*.py")
        if path.stem != "run_all" and "\ndef main(argv" in path.read_text()
    )


def test_every_benchmark_has_a_quick_check() -> None:
    assert benchmark_scripts() == sorted(RATIO_LINES)


def test_run_all_runs_every_benchmark() -> None:
    listed = subprocess.run(
        [sys.executable, "-c", "import run_all; print(*(b.__name__ for b in run_all.BENCHMARKS))"],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(listed) == benchmark_scripts()


@pytest.mark.parametrize("name", sorted(RATIO_LINES))
def test_quick_run(name: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--quick"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"{name} --quick exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert re.search(RATIO_LINES[name], done.stdout), f"{name} --quick printed no ratio:\n{done.stdout}"

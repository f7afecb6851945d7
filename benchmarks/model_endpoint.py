"""Benchmark: the cloud's model endpoint, ``POST /api/v1/models/{name}/invoke``, with 1-row and 100-row requests,
beside ONNX Runtime called in this process on the same rows, in the same run.

The cloud is a real ``edgewise cloud up`` (uvicorn, SQLite, its MLflow registry in the data directory). The
model is the inference overhead benchmark's: a ``StandardScaler`` + ``IsolationForest`` (``--trees``, 100) over
temperature, humidity and vibration, exported with ``edgewise.ml.export.to_onnx`` and registered as version 1
of model ``bench`` with ``ModelRegistry.register_training`` on the cloud's own registry (what the training
worker does with a finished job's directory). One untimed request loads it into the endpoint's session cache.

Each request is sent with one keep-alive ``httpx`` client, one at a time, and timed from the call to the parsed
answer; the answer's ``latencyMs`` (what the endpoint measured from resolving the version in the registry to the
predictions) shows how much of that is HTTP, authentication, routing and validation, and ``GET /api/v1/health``
(no token, one database query) is the floor of any request. The baseline is ``session.run`` on ``edgewise.ml.export.onnx_session`` (one
thread, as the device and the endpoint run it) on the same rows, 1 and 100 at a time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from _harness import exit_on_sigterm, parse_args, print_machine, print_table, run_main
from fleet_fanout import cloud_up
from inference_overhead import FIELDS, build_model, percentile, sensor_rows

MODEL = "bench"
INVOKE = f"/models/{MODEL}/invoke"


def register(data_dir: Path, onnx: bytes, outputs: Any, example: np.ndarray) -> None:
    """Register ``onnx`` as version 1 of ``bench`` in the registry ``edgewise cloud up --data data_dir`` opens."""
    import mlflow

    from edgewise.cloud.models.registry import artifact_location, tracking_uri
    from edgewise.cloud.settings import CloudSettings
    from edgewise.ml.registry import ModelRegistry

    # MLflow logs its database set-up at INFO (configured when it is imported); the numbers are what this prints.
    logging.getLogger(mlflow.__name__).setLevel(logging.WARNING)
    settings = CloudSettings(data_dir=data_dir)
    job = data_dir.parent / "job"
    job.mkdir()
    (job / "model.onnx").write_bytes(onnx)
    result = {
        "task": "anomaly",
        "learner": "isolation_forest",
        "metric": "roc_auc",
        "score": 1.0,
        "features": list(FIELDS),
        "outputs": outputs.to_json(),
        "sizeBytes": len(onnx),
        "leaderboard": [],
        "inputExample": example[:5].tolist(),
        "reference": {},
    }
    (job / "result.json").write_text(json.dumps(result))
    registry = ModelRegistry(tracking_uri(settings), artifact_location(settings))
    registry.register_training(MODEL, job, dataset="bench", dataset_sha256="0" * 64, job_id="bench")


def over_http(
    api: httpx.Client, batches: list[list[list[float]]], count: int
) -> tuple[list[float], list[float]]:
    """Seconds per request from the client, and the endpoint's own ``latencyMs`` in seconds."""
    client_s, server_s = [], []
    for index in range(count):
        body = {"version": "1", "rows": batches[index % len(batches)]}
        started = time.perf_counter()
        answer = api.post(INVOKE, json=body)
        if answer.status_code != 200:
            raise RuntimeError(f"POST {INVOKE} answered {answer.status_code}: {answer.text}")
        reply = answer.json()
        client_s.append(time.perf_counter() - started)
        if len(reply["predictions"]) != len(body["rows"]):
            raise RuntimeError(
                f"POST {INVOKE} gave {len(reply['predictions'])} predictions for {len(body['rows'])}"
            )
        server_s.append(float(reply["latencyMs"]) / 1000)
    return client_s, server_s


def health(api: httpx.Client, count: int) -> list[float]:
    """Seconds per ``GET /api/v1/health`` (no token, one database query): the API's floor."""
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        answer = api.get("/health")
        answer.json()
        seconds.append(time.perf_counter() - started)
        if answer.status_code != 200:
            raise RuntimeError(f"GET /health answered {answer.status_code}: {answer.text}")
    return seconds


def in_process(onnx: bytes, batches: list[np.ndarray], count: int) -> list[float]:
    from edgewise.ml.export import onnx_session

    session = onnx_session(onnx)
    name = session.get_inputs()[0].name
    run: Callable[[int], object] = lambda i: session.run(None, {name: batches[i % len(batches)]})  # noqa: E731
    for index in range(min(count, 50)):
        run(index)
    seconds = []
    for index in range(count):
        started = time.perf_counter()
        run(index)
        seconds.append(time.perf_counter() - started)
    return seconds


def prepare(data_dir: Path, trees: int) -> bytes:
    """Build the model and register it in the cloud's registry; its ONNX bytes."""
    onnx, outputs, X = build_model(trees)
    register(data_dir, onnx, outputs, X)
    return onnx


Measured = dict[int, tuple[list[float], list[float], list[float]]]


def measure(
    api: httpx.Client, onnx: bytes, rows: np.ndarray, args: argparse.Namespace
) -> tuple[Measured, list[float]]:
    """Per request size: client seconds, endpoint seconds and in-process seconds; and the health floor."""
    singles = [rows[index : index + 1] for index in range(len(rows))]
    hundreds = [rows[index : index + 100] for index in range(0, len(rows), 100)]
    over_http(api, [singles[0].tolist()], 1)  # loads the model into the endpoint's cache
    measured: Measured = {}
    for size, batches, count in ((1, singles, args.requests), (100, hundreds, args.batch_requests)):
        client_s, server_s = over_http(api, [batch.tolist() for batch in batches], count)
        local = in_process(onnx, [batch.astype(np.float32) for batch in batches], count)
        measured[size] = (client_s, server_s, local)
    return measured, health(api, min(args.requests, 500))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="1-row requests timed (2000)")
    parser.add_argument("--batch-requests", type=int, default=500, help="100-row requests timed (500)")
    parser.add_argument("--trees", type=int, default=100, help="the IsolationForest's trees (100)")
    args = parse_args(parser, argv, quick={"requests": 10, "batch_requests": 5, "trees": 5})
    if min(args.requests, args.batch_requests, args.trees) < 1:
        parser.error("--requests, --batch-requests and --trees must be at least 1")
    exit_on_sigterm()

    print(f"== model endpoint: {args.requests} 1-row and {args.batch_requests} 100-row requests ==")
    print_machine()
    print(f"load average: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    rows = sensor_rows(1000)
    with tempfile.TemporaryDirectory(prefix="edgewise-bench-endpoint-") as tmp:
        data_dir = Path(tmp) / "cloud"
        data_dir.mkdir()
        # The model is built and registered while the cloud starts: the cloud opens its registry only on the
        # first request that needs it, which comes after.
        with ThreadPoolExecutor(max_workers=1) as pool:
            registered = pool.submit(prepare, data_dir, args.trees)
            with cloud_up(data_dir) as cloud, cloud.api() as api:
                onnx = registered.result()
                measured, floor = measure(api, onnx, rows, args)

    print()
    table = []
    for size, (client_s, server_s, local) in measured.items():
        for label, values in (
            (f"POST invoke, {size} row(s): client round trip", client_s),
            (f"POST invoke, {size} row(s): endpoint's latencyMs", server_s),
            (f"in process: session.run, {size} row(s)", local),
        ):
            table.append(
                [
                    label,
                    f"{percentile(values, 0.5) * 1000:.3f}",
                    f"{percentile(values, 0.99) * 1000:.3f}",
                    f"{size / statistics.fmean(values):,.0f}",
                    str(len(values)),
                ]
            )
    table.append(
        [
            "floor: GET /api/v1/health (no token, SELECT 1)",
            f"{percentile(floor, 0.5) * 1000:.3f}",
            f"{percentile(floor, 0.99) * 1000:.3f}",
            "",
            str(len(floor)),
        ]
    )
    print_table(["way", "p50 ms", "p99 ms", "rows/s", "requests"], table)
    print()
    for size, (client_s, server_s, local) in measured.items():
        http_rate, local_rate = size / statistics.fmean(client_s), size / statistics.fmean(local)
        added = (percentile(client_s, 0.5) - percentile(local, 0.5)) * 1000
        outside = (percentile(client_s, 0.5) - percentile(server_s, 0.5)) * 1000
        print(
            f"endpoint / in-process ONNX Runtime, {size} row(s) a request: rows/s {http_rate / local_rate:.4f}x "
            f"(1/{local_rate / http_rate:,.0f}: {http_rate:,.0f} vs {local_rate:,.0f}); p50 +{added:.3f} ms, of "
            f"which {outside:.3f} ms outside the endpoint's latencyMs"
        )


if __name__ == "__main__":
    run_main(main)

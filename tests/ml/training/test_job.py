"""``python -m edgewise.ml.training.job`` as a real process: JSON lines, files, exit codes, SIGTERM."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from edgewise.ml.export import native_outputs, onnx_session, run_model
from edgewise.protocol.model_package import OutputSpec
from tests.ml.training.tables import gaussian_blob, linear_regression

TIMEOUT_S = 120


@dataclass
class Job:
    process: subprocess.Popen[str]
    out: Path

    def lines(self) -> Iterator[dict[str, object]]:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            yield json.loads(line)


def _start(tmp: Path, name: str, request: dict[str, object], table: pa.Table) -> Job:
    dataset, request_file, out = tmp / f"{name}.parquet", tmp / f"{name}.json", tmp / name
    pq.write_table(table, dataset)
    request_file.write_text(json.dumps(request))
    command = [sys.executable, "-m", "edgewise.ml.training.job", "--dataset", str(dataset)]
    command += ["--request", str(request_file), "--out", str(out)]
    # stderr goes to a file: a pipe nobody reads could fill up with library warnings and stall the job.
    with (tmp / f"{name}.stderr").open("w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True)
    return Job(process, out)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Job]]:
    """Three jobs started together (a success, a failure and one to terminate), so their start-ups overlap."""
    tmp = tmp_path_factory.mktemp("jobs")
    table = linear_regression(rows=300)
    started = {
        # An anomaly job does not import FLAML, the slowest import, so the three start-ups cost less together.
        "good": _start(tmp, "good", {"task": "anomaly", "timeBudgetS": 1}, gaussian_blob()),
        "bad": _start(tmp, "bad", {"task": "regression", "label": "pressure", "timeBudgetS": 1}, table),
        "long": _start(tmp, "long", {"task": "regression", "label": "target", "timeBudgetS": 600}, table),
    }
    yield started
    for job in started.values():
        if job.process.poll() is None:
            job.process.kill()
        job.process.communicate(timeout=TIMEOUT_S)


def test_a_job_streams_json_lines_writes_its_files_and_exits_0(jobs: dict[str, Job]) -> None:
    job = jobs["good"]
    events = list(job.lines())
    assert job.process.wait(timeout=TIMEOUT_S) == 0
    kinds = [event["event"] for event in events]
    assert kinds[0] == "phase"
    assert kinds[-1] == "done"
    assert "candidate" in kinds
    assert set(kinds) == {"phase", "candidate", "done"}
    result = json.loads((job.out / "result.json").read_text())
    assert events[-1] == {"event": "done", "score": result["score"]}
    assert result["request"] == {**result["request"], "task": "anomaly", "timeBudgetS": 1.0}
    assert result["task"] == "anomaly"
    assert result["features"] == ["x", "y", "z"]
    assert result["fidelity"]["passed"] is True
    onnx = (job.out / "model.onnx").read_bytes()
    assert result["sizeBytes"] == len(onnx)
    outputs = OutputSpec.from_json(result["outputs"])
    assert outputs.threshold is not None
    example = np.array(result["inputExample"])
    exported = run_model(onnx_session(onnx), outputs, example)
    native = native_outputs(pickle.loads((job.out / "model.pkl").read_bytes()), outputs, example)
    assert exported.raw_scores is not None
    assert native.raw_scores is not None
    assert np.allclose(native.raw_scores, exported.raw_scores, atol=1e-4)


def test_a_request_naming_a_missing_column_fails_with_exit_1(jobs: dict[str, Job]) -> None:
    job = jobs["bad"]
    events = list(job.lines())
    assert job.process.wait(timeout=TIMEOUT_S) == 1
    assert events[-1]["event"] == "failed"
    assert str(events[-1]["reason"]).startswith("label: column 'pressure' is not in the dataset")
    assert not job.out.exists()


def test_sigterm_ends_a_long_search_at_once(jobs: dict[str, Job]) -> None:
    job = jobs["long"]
    lines = job.lines()
    for event in lines:
        if event["event"] == "phase" and str(event["message"]).startswith("searching"):
            break
    os.kill(job.process.pid, signal.SIGTERM)
    rest = list(lines)
    assert job.process.wait(timeout=TIMEOUT_S) == 128 + signal.SIGTERM
    assert rest[-1] == {"event": "failed", "reason": "terminated by signal SIGTERM"}
    assert not (job.out / "result.json").exists()

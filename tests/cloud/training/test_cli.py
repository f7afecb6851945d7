"""``edgewise dataset ...`` and ``edgewise model train | jobs | job | cancel`` through typer's CliRunner against the
API served by uvicorn, with the training worker running real job subprocesses: a job trained end to end and
registered in a real MLflow SQLite store, a job that fails for a missing label column, a running job cancelled."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner, Result

from edgewise.cli.main import app as cli
from edgewise.cloud.app import create_app, initialize
from edgewise.cloud.models.registry import open_registry
from edgewise.cloud.services import CloudServices
from edgewise.cloud.telemetry import TelemetryRecord, store_records
from edgewise.cloud.training.worker import TrainingWorker
from tests.support.ports import free_port
from tests.support.waiting import wait_until

MINUTE = 60_000
#: Ten minutes ago, so that relative times such as --since 1h cover the stored messages.
T0 = (int(datetime.datetime.now(datetime.UTC).timestamp()) // 60 - 10) * MINUTE


@dataclass
class Cloud:
    """The API served on a socket and a training worker on its own event loop, sharing one set of services."""

    url: str
    token: str
    app: FastAPI
    worker: TrainingWorker
    files: Path

    @property
    def services(self) -> CloudServices:
        services: CloudServices = self.app.state.services
        return services

    def status_after(self, job_id: str, status: str) -> str:
        """The job's status once it is no longer ``status``, else ""."""
        current: str = self.job(job_id)["status"]
        return "" if current == status else current

    def job(self, job_id: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.url}/api/v1/training-jobs/{job_id}", headers={"Authorization": f"Bearer {self.token}"}
        )
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found


def _serve(app: FastAPI) -> tuple[str, uvicorn.Server, threading.Thread]:
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, what="uvicorn to start")
    return f"http://127.0.0.1:{port}", server, thread


def _csv(path: Path, columns: dict[str, Any]) -> Path:
    pa_csv.write_csv(pa.table(columns), str(path))
    return path


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    root = tmp_path_factory.mktemp("training-cloud")
    start = initialize(root / "cloud", training_concurrency=3)
    assert start.admin_token is not None
    app = create_app(start.settings)
    url, server, serving = _serve(app)
    loop = asyncio.new_event_loop()
    running = threading.Thread(target=loop.run_forever, daemon=True)
    running.start()
    worker = TrainingWorker(app.state.services, poll_interval=0.05)
    asyncio.run_coroutine_threadsafe(worker.start(), loop).result(10)
    files = root / "files"
    files.mkdir()
    rng = np.random.default_rng(7)
    features = rng.normal(size=(240, 3))
    times = T0 + np.arange(240) * 1000
    _csv(
        files / "train.csv",
        {
            "timestamp": times,
            "a": features[:, 0],
            "b": features[:, 1],
            "c": features[:, 2],
            "label": (features[:, 0] + 0.5 * features[:, 1] > 0).astype(int),
        },
    )
    _csv(files / "unlabelled.csv", {"timestamp": times, "a": features[:, 0], "b": features[:, 1]})
    try:
        yield Cloud(url, start.admin_token, app, worker, files)
    finally:
        asyncio.run_coroutine_threadsafe(worker.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        running.join(10)
        loop.close()
        server.should_exit = True
        serving.join(10)
        app.state.services.engine.dispose()


def run(cloud: Cloud, *args: str) -> Result:
    env = {"COLUMNS": "200", "EDGEWISE_API_TOKEN": cloud.token, "EDGEWISE_API_URL": None}
    return CliRunner().invoke(cli, [*args, "--api", cloud.url], env=env)


def ok(cloud: Cloud, *args: str) -> str:
    result = run(cloud, *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_dataset_commands_create_import_list_describe_and_delete(cloud: Cloud) -> None:
    with cloud.services.sessions() as session:
        store_records(
            session,
            [
                TelemetryRecord(
                    thing,
                    f"dt/{thing}/reading",
                    T0 + index * 500,
                    json.dumps({"s": {"t": index}}).encode(),
                    topic=f"dt/{thing}/reading",
                )
                for thing in ("pump-1", "pump-2")
                for index in range(40)
            ],
        )
        session.commit()
    created = json.loads(
        ok(
            cloud,
            "dataset",
            "create",
            "pumps",
            "--topic",
            "dt/+/reading",
            "--since",
            "1h",
            "--field",
            "temp=s.t",
            "--resample",
            "1s",
            "--window-size",
            "5",
            "--window-step",
            "5",
            "--features",
            "mean,max",
            "--anomaly",
            f"{T0 + 10_000}/{T0 + 15_000}",
            "--json",
        )
    )
    # 20 one-second buckets per pump, windows of 5 every 5: 4 per pump; one of them covers [10 s, 15 s).
    assert (created["rows"], created["columns"]) == (8, 5)
    assert created["spec"]["window"]["features"] == ["mean", "max"]

    imported = run(cloud, "dataset", "import", "training", str(cloud.files / "train.csv"))
    assert imported.exit_code == 0, imported.output
    assert "Imported train.csv as dataset training: 240 rows, 5 columns" in imported.stdout
    assert "train.csv" in imported.stderr  # the upload's progress bar

    listed = json.loads(ok(cloud, "dataset", "list", "--json"))
    assert [item["name"] for item in listed] == ["pumps", "training"]
    described = ok(cloud, "dataset", "describe", "pumps")
    assert "temp__mean" in described
    assert "pump-1, pump-2" in described
    assert "Deleted dataset pumps" in ok(cloud, "dataset", "delete", "pumps")
    missing = run(cloud, "dataset", "describe", "pumps")
    assert missing.exit_code == 1
    assert "Dataset 'pumps' does not exist" in missing.stderr
    refused = run(cloud, "dataset", "create", "bad", "--field", "t=s.t", "--window-size", "5")
    assert refused.exit_code == 1
    assert "resample" in refused.stderr


def test_train_runs_a_job_to_a_registered_model_version(cloud: Cloud) -> None:
    ok(cloud, "dataset", "import", "classes", str(cloud.files / "train.csv"))
    queued = json.loads(
        ok(
            cloud,
            "model",
            "train",
            "--name",
            "pump-state",
            "--dataset",
            "classes",
            "--task",
            "classification",
            "--label",
            "label",
            "--time-budget",
            "2",
            "--max-size-kb",
            "512",
            "--no-follow",
            "--json",
        )
    )
    assert queued["status"] == "QUEUED"
    seen = {
        queued["status"],
        wait_until(lambda: cloud.status_after(queued["id"], "QUEUED"), what="the job to start"),
    }
    followed = run(cloud, "model", "job", queued["id"], "--follow")
    assert followed.exit_code == 0, followed.output
    assert f"\nModel pump-state version 1 (training job {queued['id']})" in followed.stdout
    assert "Leaderboard" in followed.stdout

    job = cloud.job(queued["id"])
    seen.add(job["status"])
    assert seen == {"QUEUED", "RUNNING", "SUCCEEDED"}
    assert (job["modelVersion"], job["error"]) == ("1", None)
    assert job["leaderboard"]
    best = job["leaderboard"][0]
    assert best["metric"] == "roc_auc"
    assert best["sizeBytes"] <= 512 * 1024
    assert [candidate["score"] for candidate in job["leaderboard"]] == sorted(
        (candidate["score"] for candidate in job["leaderboard"]), reverse=True
    )
    version = open_registry(cloud.services.settings).get_version("pump-state", version="1")
    assert version.tags["edgewise.job"] == queued["id"]
    assert version.tags["edgewise.dataset"] == "classes"
    assert not (cloud.services.settings.data_dir / "training" / queued["id"]).exists()
    listed = json.loads(ok(cloud, "model", "jobs", "--model", "pump-state", "--json"))
    assert [(item["id"], item["status"]) for item in listed] == [(queued["id"], "SUCCEEDED")]


def test_a_job_on_a_dataset_without_the_label_column_fails_with_the_reason(cloud: Cloud) -> None:
    ok(cloud, "dataset", "import", "unlabelled", str(cloud.files / "unlabelled.csv"))
    result = run(
        cloud,
        "model",
        "train",
        "--name",
        "no-label",
        "--dataset",
        "unlabelled",
        "--task",
        "classification",
        "--label",
        "label",
        "--time-budget",
        "2",
    )
    assert result.exit_code == 1
    assert "failed:" in result.stderr
    assert "label" in result.stderr
    failed = json.loads(ok(cloud, "model", "jobs", "--model", "no-label", "--json"))[0]
    assert failed["status"] == "FAILED"
    assert "label" in failed["error"]


def test_cancel_stops_a_running_job_and_its_process(cloud: Cloud) -> None:
    ok(cloud, "dataset", "import", "long", str(cloud.files / "train.csv"))
    queued = json.loads(
        ok(
            cloud,
            "model",
            "train",
            "--name",
            "long",
            "--dataset",
            "long",
            "--task",
            "classification",
            "--label",
            "label",
            "--time-budget",
            "600",
            "--lags",
            "6",
            "--no-follow",
            "--json",
        )
    )
    assert queued["request"]["lags"] == 6
    pid = wait_until(lambda: cloud.worker.processes().get(queued["id"]), what="the job's process")
    assert pid is not None
    assert "Cancelled training job" in ok(cloud, "model", "cancel", queued["id"])
    wait_until(lambda: queued["id"] not in cloud.worker.processes(), what="the process to stop")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    job = cloud.job(queued["id"])
    assert (job["status"], job["error"], job["modelVersion"]) == ("CANCELLED", None, None)
    again = run(cloud, "model", "cancel", queued["id"])
    assert again.exit_code == 1
    assert "only a queued or running job can be cancelled" in again.stderr

"""A real ``edgewise cloud up`` runs the training worker: it fails the jobs a stopped cloud left running, takes
its concurrency from the environment, and serves the datasets and training routes."""

from __future__ import annotations

from pathlib import Path

from edgewise.cloud.app import initialize
from edgewise.cloud.db import create_database_engine, create_session_factory
from edgewise.cloud.training.models import TrainingJob, TrainingStatus
from edgewise.cloud.training.service import INTERRUPTED
from tests.support.cloud_process import CloudProcess

LEFT_RUNNING = "22222222-2222-2222-2222-222222222222"


def test_cloud_up_fails_jobs_left_running_and_serves_training(tmp_path: Path) -> None:
    data = tmp_path / "data"
    start = initialize(data)
    engine = create_database_engine(start.settings.database_url)
    try:
        with create_session_factory(engine)() as session:
            session.add(
                TrainingJob(
                    id=LEFT_RUNNING,
                    model_name="m",
                    dataset_name="d",
                    dataset_sha256="0" * 64,
                    request={"task": "anomaly", "timeBudgetS": 60},
                    status=TrainingStatus.RUNNING,
                    created_by="admin",
                )
            )
            session.commit()
    finally:
        engine.dispose()
    with CloudProcess(data, env={"EDGEWISE_CLOUD_TRAINING_CONCURRENCY": "2"}) as cloud:
        cloud.wait_ready()
        with cloud.api(cloud.admin_token) as api:
            job = api.get(f"/training-jobs/{LEFT_RUNNING}").json()
            unknown = api.post("/training-jobs", json={"modelName": "m", "dataset": "d", "task": "anomaly"})
            datasets = api.get("/datasets").json()
    assert (job["status"], job["error"]) == ("FAILED", INTERRUPTED)
    assert unknown.status_code == 422
    assert "there is no dataset 'd'" in unknown.json()["message"]
    assert datasets == {"data": [], "count": 0}
    assert "training-worker-started concurrency=2" in cloud.stderr

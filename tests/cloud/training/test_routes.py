"""The training-jobs API on the in-process app, and the worker's paths that need no training process: requests
refused naming the field, cancelling, jobs a stopped cloud left running, a job whose dataset file is gone."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from edgewise.cloud.training import service
from edgewise.cloud.training.models import TrainingJob, TrainingStatus
from edgewise.cloud.training.worker import TrainingWorker
from tests.support.waiting import eventually

CSV = b"timestamp,x,label\n" + b"".join(f"{1_764_100_000_000 + i},{i},{i % 2}\n".encode() for i in range(10))


async def upload(api: httpx.AsyncClient, name: str) -> dict[str, Any]:
    response = await api.put(f"/api/v1/datasets/{name}/file", params={"fileName": "d.csv"}, content=CSV)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def submit(api: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await api.post(
        "/api/v1/training-jobs",
        json={"modelName": "m", "dataset": "d", "task": "classification", "label": "label", **body},
    )


async def test_a_job_is_queued_listed_and_cancelled_and_bad_requests_name_the_field(
    app: FastAPI, admin_api: httpx.AsyncClient
) -> None:
    await upload(admin_api, "d")
    queued = await submit(admin_api, timeBudgetSeconds=5, maxSizeBytes=4096, seed=3)
    assert queued.status_code == 202, queued.text
    job = queued.json()
    assert (job["status"], job["modelName"], job["dataset"], job["task"]) == (
        "QUEUED",
        "m",
        "d",
        "classification",
    )
    assert job["request"]["timeBudgetS"] == 5
    assert job["request"]["budget"] == {"maxLatencyMs": None, "maxSizeBytes": 4096}
    assert job["timeBudgetSeconds"] == 5

    for body, field in (
        ({"modelName": "bad name"}, "modelName"),
        ({"dataset": "nowhere"}, "dataset"),
        ({"label": None}, "label"),
        ({"timeBudgetSeconds": 0}, "timeBudgetSeconds"),
        ({"task": "clustering"}, "task"),
    ):
        refused = await submit(admin_api, **body)
        assert refused.status_code == 422, body
        assert field in refused.json()["message"]

    listed = (await admin_api.get("/api/v1/training-jobs", params={"model": "m", "status": "QUEUED"})).json()
    assert [item["id"] for item in listed["data"]] == [job["id"]]
    assert (await admin_api.get("/api/v1/training-jobs", params={"status": "RUNNING"})).json()["count"] == 0

    refused_delete = await admin_api.delete("/api/v1/datasets/d")
    assert refused_delete.status_code == 409

    cancelled = await admin_api.post(f"/api/v1/training-jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["finishedAt"] is not None) == ("CANCELLED", True)
    again = await admin_api.post(f"/api/v1/training-jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert "CANCELLED" in again.json()["message"]
    assert (await admin_api.get("/api/v1/training-jobs/0000")).status_code == 404


async def test_the_worker_fails_jobs_left_running_and_a_job_whose_dataset_file_is_gone(
    app: FastAPI, admin_api: httpx.AsyncClient
) -> None:
    dataset = await upload(admin_api, "d")
    services = app.state.services
    with services.sessions() as session:
        session.add(
            TrainingJob(
                id="11111111-1111-1111-1111-111111111111",
                model_name="m",
                dataset_name="d",
                dataset_sha256=dataset["sha256"],
                request={"task": "classification", "label": "label", "timeBudgetS": 1},
                status=TrainingStatus.RUNNING,
                created_by="admin",
            )
        )
        session.commit()
    queued = (await submit(admin_api)).json()
    services.artifact_store.delete(dataset["sha256"])
    worker = TrainingWorker(services, poll_interval=0.02)
    await worker.start()
    try:

        def job_failed() -> bool:
            with services.sessions() as session:
                return service.get_job(session, queued["id"]).status is TrainingStatus.FAILED

        await eventually(job_failed, timeout=10, what="the queued job to fail")
    finally:
        await worker.close()
    interrupted = (await admin_api.get("/api/v1/training-jobs/11111111-1111-1111-1111-111111111111")).json()
    assert (interrupted["status"], interrupted["error"]) == ("FAILED", service.INTERRUPTED)
    failed = (await admin_api.get(f"/api/v1/training-jobs/{queued['id']}")).json()
    assert failed["error"].startswith("the job could not be prepared")
    assert dataset["sha256"] in failed["error"]
    assert failed["startedAt"] is not None
    assert not (services.settings.data_dir / "training" / queued["id"] / "dataset.parquet").exists()

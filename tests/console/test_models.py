"""The Models pages over HTTP (and one in the browser): the registry, a model's versions, aliases and drift
checks, moving an alias (CSRF, a read-only token refused), deploying refused by the API, and a training job's live
leaderboard.

The registry is seeded the way the training worker leaves it (a job directory registered with MLflow) and the
training job and drift check as rows, so no training runs.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from edgewise.cloud.db import utcnow
from edgewise.cloud.drift.models import DriftEvent
from edgewise.cloud.models.registry import open_registry
from edgewise.cloud.training.models import TrainingJob, TrainingStatus
from tests.console.conftest import ConsoleCloud, form_csrf_token, log_in

if TYPE_CHECKING:
    from playwright.sync_api import Page

MODEL = "pump"
FEATURES = ["temp__mean", "vibration__mean"]
LEADERBOARD = [
    {
        "learner": "iforest",
        "metric": "roc_auc",
        "score": 0.91,
        "sizeBytes": 20480,
        "latencyMs": 0.12,
        "fitsBudget": True,
    },
    {
        "learner": "lof",
        "metric": "roc_auc",
        "score": 0.87,
        "sizeBytes": 409600,
        "latencyMs": 3.5,
        "fitsBudget": False,
    },
]


def _job_dir(directory: Path, *, learner: str, size: int) -> Path:
    """What a training job leaves for registration (the ONNX bytes are never read by these pages)."""
    directory.mkdir(parents=True)
    (directory / "model.onnx").write_bytes(b"onnx")
    result = {
        "task": "anomaly",
        "learner": learner,
        "metric": "roc_auc",
        "score": 0.9,
        "features": FEATURES,
        "sizeBytes": size,
        "latency": {"p50Ms": 0.25, "p99Ms": 0.5, "rows": 200},
        "leaderboard": LEADERBOARD,
    }
    (directory / "result.json").write_text(json.dumps(result), encoding="utf-8")
    (directory / "request.json").write_text(json.dumps({"task": "anomaly"}), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def running_job(console_cloud: ConsoleCloud, tmp_path_factory: pytest.TempPathFactory) -> str:
    """pump versions 1 (champion) and 2, a running training job with two candidates, a finished one, and a
    drift check of version 1 with one drifted feature; the running job's id."""
    services = console_cloud.app.state.services
    root = tmp_path_factory.mktemp("models")
    registry = open_registry(services.settings)
    for version, learner, size in ((1, "iforest", 20480), (2, "ecod", 10240)):
        registry.register_training(
            MODEL,
            _job_dir(root / f"v{version}", learner=learner, size=size),
            dataset="vibrations",
            dataset_sha256="d" * 64,
            job_id="",
        )
    registry.set_alias(MODEL, "champion", "1")
    running, finished = str(uuid.uuid4()), str(uuid.uuid4())
    features = [
        {
            "feature": "temp__mean",
            "psi": 0.9,
            "ksStatistic": 0.41,
            "pValue": 1e-9,
            "drifted": True,
            "referenceCount": 500,
            "currentCount": 200,
        },
        {
            "feature": "vibration__mean",
            "psi": 0.03,
            "ksStatistic": 0.05,
            "pValue": 0.6,
            "drifted": False,
            "referenceCount": 500,
            "currentCount": 200,
        },
    ]
    report = {
        "drifted": True,
        "driftedFeatures": ["temp__mean"],
        "psiThreshold": 0.2,
        "pValue": 0.01,
        "features": features,
        "missing": [],
    }
    with services.sessions() as session:
        for job_id, status in ((running, TrainingStatus.RUNNING), (finished, TrainingStatus.SUCCEEDED)):
            session.add(
                TrainingJob(
                    id=job_id,
                    model_name=MODEL,
                    dataset_name="vibrations",
                    dataset_sha256="d" * 64,
                    request={"task": "anomaly", "timeBudgetS": 120},
                    status=status,
                    phase="searching" if status == TrainingStatus.RUNNING else "succeeded",
                    leaderboard=LEADERBOARD,
                    model_version=None if status == TrainingStatus.RUNNING else "2",
                    started_at=utcnow(),
                    finished_at=None if status == TrainingStatus.RUNNING else utcnow(),
                    created_by="admin",
                )
            )
        session.add(
            DriftEvent(
                model_name=MODEL,
                version="1",
                alias="champion",
                rows=200,
                drifted=True,
                confirmed=False,
                report=report,
            )
        )
        session.commit()
    return running


def _leaderboard_rows(html: str) -> list[str]:
    table = re.search(r'<table class="leaderboard".*?</table>', html, re.S)
    assert table is not None, "no leaderboard"
    return re.findall(r'<th scope="row">([^<]+)</th>', table.group(0))


async def test_the_registry_lists_models_and_training_jobs(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient, running_job: str
) -> None:
    await log_in(console_client, console_cloud.read_only_token)
    page = await console_client.get("/console/models")
    assert page.status_code == 200
    row = re.search(rf'<a href="/console/models/{MODEL}">{MODEL}</a></th>.*?</tr>', page.text, re.S)
    assert row is not None
    assert "<td>2</td>" in row.group(0)
    assert "champion → 1" in row.group(0)
    assert f'href="/console/models/jobs/{running_job}"' in page.text
    assert "RUNNING" in page.text


async def test_a_model_page_shows_versions_aliases_drift_and_forms(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient, running_job: str
) -> None:
    await log_in(console_client, console_cloud.read_only_token)
    page = await console_client.get(f"/console/models/{MODEL}")
    assert page.status_code == 200
    versions = re.search(r'<section id="versions".*?</section>', page.text, re.S)
    assert versions is not None
    assert "ecod" in versions.group(0)
    assert "20.0 KiB" in versions.group(0)
    assert "0.25 ms" in versions.group(0)
    drift = re.search(r'<section id="drift".*?</section>', page.text, re.S)
    assert drift is not None
    meters = re.findall(
        r'<meter min="([^"]+)" max="([^"]+)" high="([^"]+)" optimum="0" value="([^"]+)"', drift.group(0)
    )
    # Most drifted first; the scale reaches the largest PSI, the threshold is the report's.
    assert meters == [("0", "0.9", "0.2", "0.9"), ("0", "0.9", "0.2", "0.03")]
    assert "temp__mean" in drift.group(0)
    assert 'action="/console/models/pump/aliases"' in page.text
    assert 'action="/console/models/pump/deploy"' in page.text
    assert form_csrf_token(page.text)


async def test_moving_an_alias_needs_the_csrf_token_and_goes_through_the_api(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient, running_job: str
) -> None:
    csrf = await log_in(console_client, console_cloud.admin_token)
    form = {"alias": "staging", "version": "2"}
    refused = await console_client.post(f"/console/models/{MODEL}/aliases", data=form)
    assert refused.status_code == 403
    moved = await console_client.post(f"/console/models/{MODEL}/aliases", data={**form, "csrf_token": csrf})
    assert moved.status_code == 303, moved.text
    assert moved.headers["location"] == f"/console/models/{MODEL}#aliases"
    page = await console_client.get(f"/console/models/{MODEL}")
    assert "<strong>staging</strong> → version 2" in page.text
    wrong = await console_client.post(
        f"/console/models/{MODEL}/aliases", data={"alias": "staging", "version": "9", "csrf_token": csrf}
    )
    assert wrong.status_code == 404
    assert re.search(r'<p class="error" role="alert">[^<]*9', wrong.text)
    again = await console_client.get(f"/console/models/{MODEL}")
    assert "<strong>staging</strong> → version 2" in again.text


async def test_a_read_only_token_cannot_move_an_alias_and_sees_the_api_message(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient, running_job: str
) -> None:
    csrf = await log_in(console_client, console_cloud.read_only_token)
    answer = await console_client.post(
        f"/console/models/{MODEL}/aliases", data={"alias": "champion", "version": "2", "csrf_token": csrf}
    )
    assert answer.status_code == 403
    error = re.search(r'<p class="error" role="alert">([^<]*)</p>', answer.text)
    assert error is not None
    assert "which does not allow PUT /api/v1/models/pump/aliases/champion" in error.group(1)
    assert "<strong>champion</strong> → version 1" in answer.text


async def test_deploying_to_a_missing_group_shows_the_api_refusal(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient, running_job: str
) -> None:
    csrf = await log_in(console_client, console_cloud.admin_token)
    form = {
        "target_kind": "group",
        "target": "nowhere",
        "choice": "alias:champion",
        "input_topic": "sensors/+/reading",
        "output_topic": "inference/pump",
        "csrf_token": csrf,
    }
    api = {"Authorization": f"Bearer {console_cloud.admin_token}"}
    before = (await console_client.get("/api/v1/deployments", headers=api)).json()["count"]
    answer = await console_client.post(f"/console/models/{MODEL}/deploy", data=form)
    assert answer.status_code == 404
    error = re.search(r'<p class="error" role="alert">([^<]*)</p>', answer.text)
    assert error is not None
    assert "nowhere" in error.group(1)
    bad = await console_client.post(f"/console/models/{MODEL}/deploy", data={**form, "choice": "latest"})
    assert bad.status_code == 422
    assert "Field &#39;choice&#39;" in bad.text
    assert (await console_client.get("/api/v1/deployments", headers=api)).json()["count"] == before


async def test_a_training_job_page_polls_its_leaderboard(
    console_cloud: ConsoleCloud, console_client: httpx.AsyncClient, running_job: str
) -> None:
    await log_in(console_client, console_cloud.read_only_token)
    page = await console_client.get(f"/console/models/jobs/{running_job}")
    assert page.status_code == 200
    assert f'hx-get="/console/models/jobs/{running_job}/partial"' in page.text
    assert _leaderboard_rows(page.text) == ["iforest", "lof"]
    assert "searching" in page.text
    live = await console_client.get(
        f"/console/models/jobs/{running_job}/partial", headers={"HX-Request": "true"}
    )
    assert live.status_code == 200
    assert "<html" not in live.text
    assert _leaderboard_rows(live.text) == ["iforest", "lof"]
    assert "20.0 KiB" in live.text
    assert "no</td>" in live.text
    with console_cloud.app.state.services.sessions() as session:
        job = session.get(TrainingJob, running_job)
        assert job is not None
        job.status, job.phase, job.model_version = TrainingStatus.SUCCEEDED, "succeeded", "2"
        session.commit()
    ended = await console_client.get(
        f"/console/models/jobs/{running_job}/partial", headers={"HX-Request": "true"}
    )
    # 286 is htmx's "stop polling"; the final state is still swapped in.
    assert ended.status_code == 286
    assert "SUCCEEDED" in ended.text
    missing = await console_client.get(f"/console/models/jobs/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert "does not exist" in missing.text


@pytest.mark.browser
def test_a_model_leaderboard_in_the_browser(
    console_cloud: ConsoleCloud, served_console: str, browser_page: Page, tmp_path: Path, running_job: str
) -> None:
    with console_cloud.app.state.services.sessions() as session:
        finished = session.query(TrainingJob).filter(TrainingJob.status == TrainingStatus.SUCCEEDED).first()
        assert finished is not None
        job_id = finished.id
    from playwright.sync_api import expect

    page = browser_page
    page.goto(f"{served_console}/console/login")
    page.get_by_label("API token").fill(console_cloud.read_only_token)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{served_console}/console/models/{MODEL}")
    page.get_by_role("link", name=job_id[:8]).first.click()
    rows = page.locator("table.leaderboard tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("iforest")
    expect(page.get_by_role("heading", name="Leaderboard")).to_be_visible()
    page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)

"""The dataset and training-job services on both engines: topic filters with wildcards and LIKE characters in
SQL, and the job state changes whose conditions let a cancel win over the worker."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.orm import Session

from edgewise.cloud.components.store import LocalArtifactStore
from edgewise.cloud.datasets import service as datasets
from edgewise.cloud.datasets.schemas import DatasetCreate
from edgewise.cloud.db import utcnow
from edgewise.cloud.telemetry import TelemetryRecord, store_records
from edgewise.cloud.training import service as training
from edgewise.cloud.training.models import TrainingStatus
from edgewise.cloud.training.schemas import TrainingJobCreate

T0 = 1_764_100_000_000


def test_topic_filters_select_exactly_the_matching_messages(session: Session, tmp_path: Path) -> None:
    topics = ["dt/pump_1/reading", "dt/pump%1/reading", "dt/pump-1/other", "dtx/pump-1/reading"]
    store_records(
        session,
        [
            TelemetryRecord("pump-1", topic, T0 + index, json.dumps({"v": index}).encode(), topic=topic)
            for index, topic in enumerate(topics)
        ],
    )
    session.commit()
    store = LocalArtifactStore(tmp_path / "store")
    request = DatasetCreate.model_validate(
        {"name": "wild", "selection": {"topics": ["dt/+/reading", "dt/pump-1/other"]}, "fields": ["v"]}
    )
    row = datasets.create_from_telemetry(session, store, request, created_by="test", max_rows=100)
    assert row.rows == 3
    assert row.summary["columns"][2]["min"] == 0.0
    assert row.summary["columns"][2]["max"] == 2.0
    prefix = DatasetCreate.model_validate(
        {"name": "prefix", "selection": {"topics": ["dt/pump_1/#"]}, "fields": ["v"]}
    )
    assert datasets.create_from_telemetry(session, store, prefix, created_by="test", max_rows=100).rows == 1


def test_a_cancel_wins_over_the_workers_later_updates(session: Session, tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    datasets.create_from_file(
        session, store, "d", file_name="d.csv", data=b"x,label\n1,0\n2,1\n", created_by="test", max_bytes=1024
    )
    request = TrainingJobCreate.model_validate({"modelName": "m", "dataset": "d", "task": "anomaly"})
    first = training.create_job(session, request, created_by="test", default_ray_address="ray://head:10001")
    second = training.create_job(session, request, created_by="test", default_ray_address=None)
    assert first.request["rayAddress"] == "ray://head:10001"
    claimed = training.claim_next(session, now=utcnow())
    assert claimed is not None
    assert (claimed.id, claimed.status) == (first.id, TrainingStatus.RUNNING)
    assert training.record_progress(session, first.id, phase="searching", leaderboard=[{"score": 1.0}])
    training.cancel_job(session, first.id)
    assert not training.record_progress(session, first.id, phase="late", leaderboard=[])
    assert not training.finish(session, first.id, TrainingStatus.SUCCEEDED, now=utcnow(), leaderboard=[])
    session.expire_all()
    cancelled = training.get_job(session, first.id)
    assert (cancelled.status, cancelled.phase, cancelled.leaderboard) == (
        TrainingStatus.CANCELLED,
        "cancelled",
        [{"score": 1.0}],
    )
    claimed_second = training.claim_next(session, now=utcnow())
    assert claimed_second is not None
    assert claimed_second.id == second.id
    assert training.claim_next(session, now=utcnow()) is None
    assert training.fail_interrupted(session, now=utcnow()) == 1
    assert training.statuses(session, [first.id, second.id]) == {
        first.id: TrainingStatus.CANCELLED,
        second.id: TrainingStatus.FAILED,
    }

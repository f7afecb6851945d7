"""Retraining on confirmed drift, and what happens when it has produced a version.

A confirmed drift of a monitor with ``retrain`` builds a new dataset with the spec of the monitored version's
training dataset over the telemetry of the monitor's retrain window (its things, streams and topics, ending now),
named ``<dataset>-retrain-<UTC time>``, and queues a training job with the request of the job that trained the
version. The job carries ``propose_alias = "challenger"``: when it succeeds, the training worker calls
:func:`propose` with the version it registered, which points ``challenger`` at it and, on a monitor with
``autoPromote``, moves the monitored alias (``champion``) to it too when its validation score is at least the
champion's. Both moves are recorded in ``model_alias_events`` by ``drift-monitor``.

One monitored version is retrained once: a confirmed drift starts no retraining while an earlier one for the same
version is queued, running or has succeeded (the challenger is there to be promoted); after a failed or
cancelled one it starts another.
"""

from __future__ import annotations

import datetime
import logging
import re
import uuid
from typing import TYPE_CHECKING, Final

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.orm import Session

from edgewise.cloud.components.store import ArtifactStore
from edgewise.cloud.datasets import service as datasets
from edgewise.cloud.datasets.models import Dataset
from edgewise.cloud.datasets.schemas import DatasetCreate
from edgewise.cloud.db import utcnow
from edgewise.cloud.drift.models import DriftEvent, DriftMonitor
from edgewise.cloud.drift.schemas import CHALLENGER
from edgewise.cloud.drift.service import DRIFT_ACTOR, SCORE_METRIC, should_promote
from edgewise.cloud.errors import CloudError, InvalidRequestError
from edgewise.cloud.models import service as models
from edgewise.cloud.settings import CloudSettings
from edgewise.cloud.training.models import TrainingJob, TrainingStatus

if TYPE_CHECKING:
    from edgewise.ml.registry import ModelRegistry, ModelVersionInfo

logger = logging.getLogger(__name__)

JOB_TAG: Final = "edgewise.job"
#: A reservation whose job never appeared (the cloud stopped while building the dataset) lapses after this.
RESERVATION_LAPSES: Final = datetime.timedelta(hours=1)
_RETRAIN_SUFFIX: Final = re.compile(r"-retrain-[0-9]{14}$")
_NAME_MAX: Final = 64


def reserve(session: Session, model: str, version: str) -> tuple[str | None, str | None]:
    """A new retraining job id for ``version`` of ``model``, or None and why not (an earlier retraining of the
    version is pending, queued, running or succeeded)."""
    earlier = session.execute(
        sa.select(DriftEvent.retraining_job_id, DriftEvent.checked_at, TrainingJob.status)
        .outerjoin(TrainingJob, TrainingJob.id == DriftEvent.retraining_job_id)
        .where(
            DriftEvent.model_name == model,
            DriftEvent.version == version,
            DriftEvent.retraining_job_id.is_not(None),
        )
    ).all()
    lapse = utcnow() - RESERVATION_LAPSES
    for job_id, checked_at, status in earlier:
        if status is None and checked_at < lapse:
            continue
        if status is None or status in (
            TrainingStatus.QUEUED,
            TrainingStatus.RUNNING,
            TrainingStatus.SUCCEEDED,
        ):
            shown = "being created" if status is None else status.value
            return (
                None,
                f"drift confirmed; version {version} was retrained already (training job {job_id}, {shown})",
            )
    return str(uuid.uuid4()), None


def dataset_name(base: str, now: datetime.datetime) -> str:
    """``<base>-retrain-<UTC time>``, a previous retrain suffix of ``base`` replaced, within 64 characters."""
    suffix = f"-retrain-{now:%Y%m%d%H%M%S}"
    return _RETRAIN_SUFFIX.sub("", base)[: _NAME_MAX - len(suffix)] + suffix


def dataset_request(name: str, dataset: Dataset, *, since_ms: int) -> DatasetCreate:
    """Build ``name`` as ``dataset`` was built (its spec, things, streams and topics), from ``since_ms`` on.

    Raises:
        InvalidRequestError: ``dataset`` was not built from telemetry.
    """
    spec = dataset.spec
    if spec is None or dataset.source.get("kind") != "telemetry":
        raise InvalidRequestError(
            "dataset",
            f"the training dataset {dataset.name!r} was uploaded as a file: only a dataset built from telemetry"
            " can be built again over recent telemetry",
        )
    selection = dataset.source.get("selection") or {}
    body: dict[str, object] = {
        "name": name,
        "selection": {
            "things": selection.get("things") or [],
            "streams": selection.get("streams") or [],
            "topics": selection.get("topics") or [],
            "since": since_ms,
        },
        "fields": [_field_text(field) for field in spec.get("fields") or []],
    }
    if spec.get("resampleMs") is not None:
        body["resample"] = f"{spec['resampleMs']}ms"
    window = spec.get("window")
    if isinstance(window, dict):
        body["window"] = {
            "size": window.get("size"),
            "step": window.get("step"),
            "features": window.get("features"),
            "fftBands": window.get("fftBands", 4),
        }
    label = spec.get("label")
    if isinstance(label, dict):
        body["label"] = {
            "field": None if label.get("field") is None else _field_text(label["field"]),
            "anomalousRanges": label.get("anomalousRanges") or [],
        }
    return DatasetCreate.model_validate(body)


def _field_text(field: object) -> str:
    if isinstance(field, dict):
        return f"{field.get('name')}={field.get('path')}"
    return str(field)


def start(
    session: Session,
    store: ArtifactStore,
    settings: CloudSettings,
    monitor: DriftMonitor,
    info: ModelVersionInfo,
    event: DriftEvent,
    *,
    now_ms: int,
) -> None:
    """Build the retraining dataset and queue the job reserved in ``event``; on failure the event's note says
    why and its job id is cleared. Commits."""
    job_id = event.retraining_job_id
    assert job_id is not None
    try:
        _queue(session, store, settings, monitor, info, job_id, now_ms=now_ms)
    except (CloudError, ValidationError) as exc:
        reason = str(exc)
        logger.warning("drift-retraining-not-started model=%s version=%s: %s", info.name, info.version, exc)
    except Exception as exc:
        # The check itself succeeded: its event stays, saying why nothing was retrained.
        reason = f"{type(exc).__name__}: {exc}"
        logger.exception("drift-retraining-error model=%s version=%s", info.name, info.version)
    else:
        return
    session.rollback()
    event.retraining_job_id = None
    event.note = f"drift confirmed; retraining not started: {reason}"
    session.commit()


def _queue(
    session: Session,
    store: ArtifactStore,
    settings: CloudSettings,
    monitor: DriftMonitor,
    info: ModelVersionInfo,
    job_id: str,
    *,
    now_ms: int,
) -> None:
    trained_by = info.tags.get(JOB_TAG)
    original = None if not trained_by else session.get(TrainingJob, trained_by)
    if original is None:
        raise InvalidRequestError(
            "version",
            f"model {info.name!r} version {info.version} was not trained by a training job of this cloud, so"
            " there is no request to train it again",
        )
    dataset = session.scalar(sa.select(Dataset).where(Dataset.name == original.dataset_name))
    if dataset is None:
        raise InvalidRequestError(
            "dataset", f"the training dataset {original.dataset_name!r} of version {info.version} is deleted"
        )
    window_ms = monitor.retrain_window_ms or monitor.window_ms
    request = dataset_request(dataset_name(dataset.name, utcnow()), dataset, since_ms=now_ms - window_ms)
    created = datasets.create_from_telemetry(
        session, store, request, created_by=DRIFT_ACTOR, max_rows=settings.dataset_max_rows
    )
    session.add(
        TrainingJob(
            id=job_id,
            model_name=info.name,
            dataset_name=created.name,
            dataset_sha256=created.sha256,
            request=dict(original.request),
            status=TrainingStatus.QUEUED,
            phase="queued",
            leaderboard=[],
            created_by=DRIFT_ACTOR,
            propose_alias=CHALLENGER,
        )
    )
    session.commit()
    logger.info(
        "drift-retraining-queued model=%s version=%s dataset=%s rows=%d job=%s",
        info.name,
        info.version,
        created.name,
        created.rows,
        job_id,
    )


def propose(session: Session, registry: ModelRegistry, job: TrainingJob, version: str) -> bool:
    """Point the job's ``propose_alias`` at the ``version`` it registered, note it on the drift event that
    queued the job, and apply the monitor's auto-promote rule; whether the version was promoted. Commits.

    Raises:
        NotFoundError, InvalidRequestError: the registry refuses the alias.
    """
    alias = job.propose_alias
    assert alias is not None
    name = job.model_name
    models.set_alias(session, registry, name, alias, version, actor=job.created_by)
    monitor = session.scalar(sa.select(DriftMonitor).where(DriftMonitor.model_name == name))
    promoted = False
    if monitor is not None and monitor.auto_promote and monitor.alias != alias:
        challenger = models.get_version(registry, name, version=version).metrics.get(SCORE_METRIC)
        champion_version = registry.get_model(name).aliases.get(monitor.alias)
        champion = (
            None
            if champion_version is None
            else models.get_version(registry, name, version=champion_version).metrics.get(SCORE_METRIC)
        )
        if champion_version != version and should_promote(challenger, champion):
            models.set_alias(session, registry, name, monitor.alias, version, actor=DRIFT_ACTOR)
            promoted = True
        logger.info(
            "drift-auto-promote model=%s challenger=%s score=%s champion=%s score=%s promoted=%s",
            name,
            version,
            challenger,
            champion_version,
            champion,
            promoted,
        )
    event = session.scalar(sa.select(DriftEvent).where(DriftEvent.retraining_job_id == job.id))
    if event is not None:
        event.challenger_version = version
        event.promoted = promoted
        session.commit()
    return promoted

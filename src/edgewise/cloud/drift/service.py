"""Drift monitors and events in the store, and promotion between aliases.

A monitor is set (created or replaced) for a registered model, read, and deleted (its events stay). Events are
listed newest first. Promotion points one alias (``champion``) at the version another (``challenger``) points at,
through :func:`edgewise.cloud.models.service.set_alias`, so the move lands in ``model_alias_events`` like any
other. Functions block; the API runs them in its thread pool, the worker in ``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edgewise.cloud.db import utcnow
from edgewise.cloud.drift.models import DriftEvent, DriftMonitor
from edgewise.cloud.drift.schemas import DriftEventPublic, DriftMonitorPublic, DriftMonitorSet
from edgewise.cloud.errors import CloudConflictError, NotFoundError
from edgewise.cloud.models import service as models
from edgewise.cloud.telemetry.query import parse_duration

if TYPE_CHECKING:
    from edgewise.ml.registry import ModelRegistry

logger = logging.getLogger(__name__)

KIND: Final = "Drift monitor"
#: Who moves an alias when a rule does it rather than a person.
DRIFT_ACTOR: Final = "drift-monitor"
#: The registry metric holding a version's validation score (higher is better).
SCORE_METRIC: Final = "score"
_UNITS: Final = (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000))


def format_duration(milliseconds: int) -> str:
    """``milliseconds`` in the largest unit that holds it exactly (``3600000`` -> ``1h``)."""
    for unit, size in _UNITS:
        if milliseconds % size == 0:
            return f"{milliseconds // size}{unit}"
    return f"{milliseconds}ms"


def get_monitor(session: Session, name: str) -> DriftMonitor:
    """The drift monitor of model ``name``.

    Raises:
        NotFoundError: the model has none.
    """
    row = session.scalar(sa.select(DriftMonitor).where(DriftMonitor.model_name == name))
    if row is None:
        raise NotFoundError(KIND, name)
    return row


def set_monitor(
    session: Session, registry: ModelRegistry, name: str, request: DriftMonitorSet, *, actor: str
) -> DriftMonitor:
    """Create or replace the drift monitor of the registered model ``name``. Commits.

    A different alias starts the count of consecutive drifted checks again.

    Raises:
        NotFoundError: there is no such model.
        InvalidRequestError: a duration is out of range (naming the field).
    """
    models.get_model(registry, name)
    window_ms = parse_duration("window", request.window)
    interval_ms = parse_duration("interval", request.interval)
    retrain_window_ms = (
        None if request.retrain_window is None else parse_duration("retrainWindow", request.retrain_window)
    )
    row = session.scalar(sa.select(DriftMonitor).where(DriftMonitor.model_name == name))
    if row is None:
        row = DriftMonitor(model_name=name, drifted_checks=0)
        session.add(row)
    elif row.alias != request.alias:
        row.drifted_checks = 0
        row.streak_version = None
    row.alias = request.alias
    row.stream = request.stream
    row.window_ms = window_ms
    row.min_rows = request.min_rows
    row.psi_threshold = request.psi_threshold
    row.p_value = request.p_value
    # A check reads the database and the registry; more often than once a second helps nobody.
    row.interval_seconds = max(1, math.ceil(interval_ms / 1000))
    row.confirm_checks = request.confirm_checks
    row.retrain = request.retrain
    row.retrain_window_ms = retrain_window_ms
    row.auto_promote = request.auto_promote
    row.enabled = request.enabled
    row.updated_at = utcnow()
    row.updated_by = actor
    session.commit()
    logger.info(
        "drift-monitor-set model=%s alias=%s retrain=%s auto_promote=%s enabled=%s by=%s",
        name,
        row.alias,
        row.retrain,
        row.auto_promote,
        row.enabled,
        actor,
    )
    return row


def delete_monitor(session: Session, name: str) -> None:
    """Delete the drift monitor of model ``name``; its events stay. Commits.

    Raises:
        NotFoundError: the model has none.
    """
    session.delete(get_monitor(session, name))
    session.commit()


def due_monitors(session: Session, now: datetime.datetime) -> tuple[list[str], datetime.datetime | None]:
    """The models whose enabled monitor is due a check at ``now``, and when the next one falls due after that."""
    due: list[str] = []
    upcoming: datetime.datetime | None = None
    for row in session.scalars(sa.select(DriftMonitor).where(DriftMonitor.enabled.is_(True))):
        next_at = next_check_at(row)
        if next_at is None or next_at <= now:
            due.append(row.model_name)
            next_at = now + datetime.timedelta(seconds=row.interval_seconds)
        if upcoming is None or next_at < upcoming:
            upcoming = next_at
    return sorted(due), upcoming


def next_check_at(row: DriftMonitor) -> datetime.datetime | None:
    """When the monitor is next due (None: now, it was never checked)."""
    if row.last_checked_at is None:
        return None
    return row.last_checked_at + datetime.timedelta(seconds=row.interval_seconds)


def list_events(
    session: Session, *, model: str | None, confirmed: bool | None, limit: int, offset: int
) -> tuple[list[DriftEvent], int]:
    """A page of drift events, newest first, of ``model`` and confirmed or not when asked, and how many match."""
    conditions: list[sa.ColumnElement[bool]] = []
    if model is not None:
        conditions.append(DriftEvent.model_name == model)
    if confirmed is not None:
        conditions.append(DriftEvent.confirmed.is_(confirmed))
    count = session.scalar(sa.select(sa.func.count()).select_from(DriftEvent).where(*conditions)) or 0
    rows = session.scalars(
        sa.select(DriftEvent).where(*conditions).order_by(DriftEvent.id.desc()).limit(limit).offset(offset)
    ).all()
    return list(rows), count


@dataclass(frozen=True)
class Promotion:
    """``to_alias`` now points at ``version``, the version ``from_alias`` points at."""

    model_name: str
    from_alias: str
    to_alias: str
    version: str
    previous_version: str | None
    actor: str
    created_at: datetime.datetime


def promote(
    session: Session, registry: ModelRegistry, name: str, *, from_alias: str, to_alias: str, actor: str
) -> Promotion:
    """Point ``to_alias`` of model ``name`` at the version ``from_alias`` points at; the move is recorded.
    Commits.

    Raises:
        NotFoundError: the model or ``from_alias`` does not exist.
        CloudConflictError: the two aliases are the same, or ``to_alias`` points at that version already.
    """
    if from_alias == to_alias:
        raise CloudConflictError(f"Model {name!r}: cannot promote alias {from_alias!r} to itself")
    version = models.get_version(registry, name, alias=from_alias).version
    current = registry.get_model(name).aliases.get(to_alias)
    if current == version:
        raise CloudConflictError(f"Model {name!r}: {to_alias} points at version {version} already")
    event = models.set_alias(session, registry, name, to_alias, version, actor=actor)
    logger.info("model-promoted model=%s %s->%s version=%s by=%s", name, from_alias, to_alias, version, actor)
    return Promotion(
        model_name=name,
        from_alias=from_alias,
        to_alias=to_alias,
        version=version,
        previous_version=event.previous_version,
        actor=actor,
        created_at=event.created_at,
    )


def should_promote(challenger_score: float | None, champion_score: float | None) -> bool:
    """The auto-promote rule: the challenger's validation score is at least the champion's (no champion, or a
    champion without a score, is beaten by any scored challenger)."""
    if challenger_score is None or not math.isfinite(challenger_score):
        return False
    return champion_score is None or not math.isfinite(champion_score) or challenger_score >= champion_score


def monitor_public(row: DriftMonitor) -> DriftMonitorPublic:
    """The API shape of ``row``."""
    return DriftMonitorPublic(
        model_name=row.model_name,
        alias=row.alias,
        stream=row.stream,
        window=format_duration(row.window_ms),
        min_rows=row.min_rows,
        psi_threshold=row.psi_threshold,
        p_value=row.p_value,
        interval=format_duration(row.interval_seconds * 1000),
        confirm_checks=row.confirm_checks,
        retrain=row.retrain,
        retrain_window=None if row.retrain_window_ms is None else format_duration(row.retrain_window_ms),
        auto_promote=row.auto_promote,
        enabled=row.enabled,
        drifted_checks=row.drifted_checks,
        last_checked_at=row.last_checked_at,
        next_check_at=(next_check_at(row) or row.updated_at) if row.enabled else None,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def event_public(row: DriftEvent) -> DriftEventPublic:
    """The API shape of ``row``."""
    drifted = row.report.get("driftedFeatures")
    return DriftEventPublic(
        id=row.id,
        model_name=row.model_name,
        version=row.version,
        alias=row.alias,
        checked_at=row.checked_at,
        rows=row.rows,
        drifted=row.drifted,
        confirmed=row.confirmed,
        drifted_features=[str(item) for item in drifted] if isinstance(drifted, list) else [],
        report=row.report,
        note=row.note,
        retraining_job_id=row.retraining_job_id,
        challenger_version=row.challenger_version,
        promoted=row.promoted,
    )

"""One drift check: the capture records of the monitored version against its training reference.

The version is the one the monitor's alias points at now. Its reference is ``reference`` in the version's
``result.json`` (feature name -> held-out values, and ``__score__``), read from the registry once per version
(versions never change). The current values are the newest capture records (``edgewise.capture/1``, stream
``monitor.stream``) of that model and version within the monitor's window, at most
:data:`~edgewise.cloud.drift.schemas.MAX_CHECK_ROWS`: each record's ``features`` by name, and its output's
``score`` (a regressor's ``prediction``) as ``__score__``. :func:`edgewise.ml.drift.compare` decides drift.

Fewer records than ``min_rows`` compare nothing: the event says so and the count of consecutive drifted checks
stays as it was. Otherwise a drifted check adds one to that count and any other check sets it to 0; drift is
confirmed while the count is at least ``confirm_checks``. Confirmed drift on a monitor with ``retrain`` starts a
retraining (:mod:`edgewise.cloud.drift.retraining`).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from sqlalchemy.orm import Session

from edgewise.cloud.components.store import ArtifactStore
from edgewise.cloud.datasets.service import ml_libraries
from edgewise.cloud.db import utcnow
from edgewise.cloud.drift import retraining
from edgewise.cloud.drift.models import DriftEvent, DriftMonitor
from edgewise.cloud.drift.schemas import MAX_CHECK_ROWS
from edgewise.cloud.drift.service import get_monitor
from edgewise.cloud.errors import InvalidRequestError
from edgewise.cloud.models import service as models
from edgewise.cloud.settings import CloudSettings
from edgewise.cloud.telemetry.models import TelemetryMessage
from edgewise.protocol.capture import read_capture

if TYPE_CHECKING:
    from edgewise.ml.registry import ModelRegistry, ModelVersionInfo

logger = logging.getLogger(__name__)

#: The reference key of the model's own output (edgewise.ml.training.run.SCORE_REFERENCE).
SCORE_KEY: Final = "__score__"
#: Versions whose reference is kept in memory.
REFERENCE_CACHE_SIZE: Final = 32

_references: OrderedDict[tuple[str, str, str], dict[str, list[float]]] = OrderedDict()
_references_lock = threading.Lock()


def reference_for(registry: ModelRegistry, info: ModelVersionInfo) -> dict[str, list[float]]:
    """The drift reference of a model version (cached per version).

    Raises:
        InvalidRequestError: the version has no ``result.json`` with a reference.
    """
    key = (registry.tracking_uri, info.name, info.version)
    with _references_lock:
        cached = _references.get(key)
        if cached is not None:
            _references.move_to_end(key)
            return cached
    result = models.training_result(registry, info) or {}
    raw = result.get("reference")
    reference = {
        str(name): [float(value) for value in values if _is_number(value)]
        for name, values in (raw.items() if isinstance(raw, dict) else ())
        if isinstance(values, list)
    }
    reference = {name: values for name, values in reference.items() if values}
    if not reference:
        raise InvalidRequestError(
            "version",
            f"model {info.name!r} version {info.version} has no drift reference (the reference of its "
            "result.json is missing or empty): only versions trained by Edgewise can be monitored",
        )
    with _references_lock:
        _references[key] = reference
        while len(_references) > REFERENCE_CACHE_SIZE:
            _references.popitem(last=False)
    return reference


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def capture_values(
    session: Session, monitor: DriftMonitor, version: str, reference: dict[str, list[float]], *, now_ms: int
) -> tuple[int, dict[str, list[float]]]:
    """How many capture records of ``version`` the window holds (at most MAX_CHECK_ROWS, the newest), and their
    values of each reference feature (missing ones left out)."""
    payload = TelemetryMessage.payload_json
    # The device reports model version N as its component version N.0.0.
    versions = [f"{version}.0.0", version]
    documents = session.scalars(
        sa.select(payload)
        .where(
            TelemetryMessage.stream == monitor.stream,
            TelemetryMessage.timestamp_ms >= now_ms - monitor.window_ms,
            payload["model"].as_string() == monitor.model_name,
            payload["version"].as_string().in_(versions),
        )
        .order_by(TelemetryMessage.timestamp_ms.desc(), TelemetryMessage.id.desc())
        .limit(MAX_CHECK_ROWS)
    ).all()
    current: dict[str, list[float]] = {name: [] for name in reference}
    rows = 0
    for document in documents:
        captured = read_capture(document)
        if captured is None:
            continue
        rows += 1
        for name, value in captured.features.items():
            if name in current:
                current[name].append(value)
        if SCORE_KEY in current and captured.score is not None:
            current[SCORE_KEY].append(captured.score)
    return rows, current


def run_check(
    session: Session,
    registry: ModelRegistry,
    store: ArtifactStore,
    settings: CloudSettings,
    name: str,
    *,
    now_ms: int | None = None,
) -> DriftEvent:
    """Check model ``name`` for drift now and record the event (see the module docstring). Commits.

    Raises:
        NotFoundError: the model has no monitor, or its alias points at no version.
        InvalidRequestError: the version has no drift reference.
        MlUnavailableError: the ML libraries are not installed.
    """
    monitor = get_monitor(session, name)
    checked_at = utcnow()
    now_ms = int(checked_at.timestamp() * 1000) if now_ms is None else now_ms
    info = models.get_version(registry, name, alias=monitor.alias)
    reference = reference_for(registry, info)
    rows, current = capture_values(session, monitor, info.version, reference, now_ms=now_ms)
    report: dict[str, Any] = {}
    note: str | None = None
    drifted: bool | None = None
    if rows < monitor.min_rows:
        note = (
            f"{rows} capture records of version {info.version} in the last "
            f"{monitor.window_ms // 1000} s, fewer than minRows ({monitor.min_rows}): nothing compared"
        )
    else:
        with ml_libraries():
            from edgewise.ml.drift import compare
            from edgewise.ml.errors import MlError

            try:
                found = compare(
                    reference, current, psi_threshold=monitor.psi_threshold, p_value=monitor.p_value
                )
            except MlError as exc:
                note = f"the capture records cannot be compared: {exc}"
            else:
                report = found.to_json()
                drifted = found.drifted
    # Locked from here to the commit, so that two checks at once (the worker's and an API call) count in turn.
    locked = session.scalar(
        sa.select(DriftMonitor)
        .where(DriftMonitor.id == monitor.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert locked is not None
    if locked.streak_version != info.version:
        locked.streak_version = info.version
        locked.drifted_checks = 0
    if drifted is not None:
        locked.drifted_checks = locked.drifted_checks + 1 if drifted else 0
    confirmed = bool(drifted) and locked.drifted_checks >= locked.confirm_checks
    locked.last_checked_at = checked_at
    event = DriftEvent(
        model_name=name,
        version=info.version,
        alias=locked.alias,
        checked_at=checked_at,
        rows=rows,
        drifted=bool(drifted),
        confirmed=confirmed,
        report=report,
        note=note,
        promoted=False,
    )
    session.add(event)
    retrain = confirmed and locked.retrain
    if retrain:
        event.retraining_job_id, busy = retraining.reserve(session, name, info.version)
        if busy is not None:
            event.note = busy
    session.commit()
    logger.info(
        "drift-checked model=%s version=%s rows=%d drifted=%s confirmed=%s",
        name,
        info.version,
        rows,
        bool(drifted),
        confirmed,
    )
    if retrain and event.retraining_job_id is not None:
        retraining.start(session, store, settings, locked, info, event, now_ms=now_ms)
    return event

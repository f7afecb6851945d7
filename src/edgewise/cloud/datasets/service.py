"""Datasets in the store: built from stored telemetry or imported from a file, listed, read and deleted.

A dataset's table is written as Parquet (:func:`edgewise.ml.datasets.dataset_bytes`, which keeps the spec and the
source in the file's metadata) into the cloud's artifact store under its SHA-256; the ``datasets`` row names it.
Telemetry is read in pages of :data:`PAGE_ROWS` messages, ordered by id, and fed to
:func:`edgewise.ml.datasets.build_dataset` as it is read, so the messages are never all in memory at once; a
selection of more than ``dataset_max_rows`` messages is refused. Functions block; the API runs them in its thread
pool. The ML libraries are imported only here, when a dataset is built or read: a cloud without them answers
those requests with :class:`~edgewise.cloud.errors.MlUnavailableError` (503).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgewise.cloud.components.models import ComponentArtifact
from edgewise.cloud.components.store import ArtifactStore
from edgewise.cloud.datasets.models import Dataset
from edgewise.cloud.datasets.schemas import DatasetCreate, DatasetItem, DatasetPublic, TelemetrySelection
from edgewise.cloud.errors import (
    AlreadyExistsError,
    CloudConflictError,
    InvalidRequestError,
    MlUnavailableError,
    NotFoundError,
)
from edgewise.cloud.telemetry import query
from edgewise.cloud.telemetry.models import ExportedObject, TelemetryMessage
from edgewise.cloud.training.models import TrainingJob, TrainingStatus
from edgewise.topics import TopicError, filter_matches, has_wildcards, validate_filter

if TYPE_CHECKING:
    import pyarrow as pa

    from edgewise.ml.datasets import DatasetSpec, TelemetryRecord

logger = logging.getLogger(__name__)

KIND: Final = "Dataset"
#: Messages read from the store per query while a dataset is built.
PAGE_ROWS: Final = 5000
#: The longest "field: " prefix of a DatasetError message taken as the field's name.
_FIELD_PREFIX_MAX: Final = 100


@contextmanager
def ml_libraries() -> Iterator[None]:
    """Turn an ``ImportError`` of the ML libraries, raised inside the block, into :class:`MlUnavailableError`."""
    try:
        yield
    except ImportError as exc:
        raise MlUnavailableError(exc.name or str(exc)) from exc


def _as_request_error(exc: Exception, default_field: str) -> InvalidRequestError:
    """A DatasetError (``"field: problem"``) as the API's 422 naming that field."""
    message = str(exc)
    field, separator, problem = message.partition(": ")
    if separator and field and len(field) <= _FIELD_PREFIX_MAX and not field[0].isspace():
        return InvalidRequestError(field, problem)
    return InvalidRequestError(default_field, message)


def get_dataset(session: Session, name: str) -> Dataset:
    """The dataset called ``name``.

    Raises:
        NotFoundError: there is none.
    """
    row = session.scalar(sa.select(Dataset).where(Dataset.name == name))
    if row is None:
        raise NotFoundError(KIND, name)
    return row


def list_datasets(session: Session, *, limit: int, offset: int) -> tuple[list[Dataset], int]:
    """A page of datasets by name, and how many there are in all."""
    count = session.scalar(sa.select(sa.func.count()).select_from(Dataset)) or 0
    rows = session.scalars(sa.select(Dataset).order_by(Dataset.name).limit(limit).offset(offset)).all()
    return list(rows), count


def _check_new(session: Session, name: str) -> None:
    if session.scalar(sa.select(Dataset.id).where(Dataset.name == name)) is not None:
        raise AlreadyExistsError(KIND, name)


def _spec_json(request: DatasetCreate) -> dict[str, Any]:
    """The request's recipe in :meth:`DatasetSpec.from_json`'s shape, its times and durations in ms."""
    label: dict[str, Any] | None = None
    if request.label is not None:
        ranges = [
            [
                query.parse_instant(f"label.anomalousRanges[{index}][0]", str(start)),
                query.parse_instant(f"label.anomalousRanges[{index}][1]", str(end)),
            ]
            for index, (start, end) in enumerate(request.label.anomalous_ranges)
        ]
        label = {"field": request.label.field, "anomalousRanges": ranges}
    window = None
    if request.window is not None:
        window = {
            "size": request.window.size,
            "step": request.window.step,
            "features": list(request.window.features),
            "fftBands": request.window.fft_bands,
        }
    return {
        "fields": list(request.fields),
        "resampleMs": None
        if request.resample is None
        else query.parse_duration("resample", request.resample),
        "window": window,
        "label": label,
    }


class _Selection:
    """A telemetry selection as SQL conditions, plus the topic filters SQL cannot apply exactly."""

    def __init__(self, selection: TelemetrySelection) -> None:
        self.since = (
            None if selection.since is None else query.parse_instant("selection.since", str(selection.since))
        )
        self.until = (
            None if selection.until is None else query.parse_instant("selection.until", str(selection.until))
        )
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise InvalidRequestError(
                "selection.until",
                f"{self.until} must be after since ({self.since}); the range is since <= t < until",
            )
        for index, topic_filter in enumerate(selection.topics):
            try:
                validate_filter(topic_filter)
            except TopicError as exc:
                raise InvalidRequestError(f"selection.topics[{index}]", str(exc)) from None
        self.selection = selection
        self.wildcard_topics = [topic for topic in selection.topics if has_wildcards(topic)]

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        conditions: list[sa.ColumnElement[bool]] = []
        if self.selection.things:
            conditions.append(TelemetryMessage.thing_name.in_(self.selection.things))
        if self.selection.streams:
            conditions.append(TelemetryMessage.stream.in_(self.selection.streams))
        if self.selection.topics:
            exact = [topic for topic in self.selection.topics if not has_wildcards(topic)]
            alternatives: list[sa.ColumnElement[bool]] = []
            if exact:
                alternatives.append(TelemetryMessage.topic.in_(exact))
            for topic_filter in self.wildcard_topics:
                # The part before the first wildcard narrows the rows; filter_matches then decides exactly.
                prefix = topic_filter.split("+", 1)[0].split("#", 1)[0]
                alternatives.append(TelemetryMessage.topic.startswith(prefix, autoescape=True))
            conditions.append(sa.or_(*alternatives))
        if self.since is not None:
            conditions.append(TelemetryMessage.timestamp_ms >= self.since)
        if self.until is not None:
            conditions.append(TelemetryMessage.timestamp_ms < self.until)
        return conditions

    def matches(self, topic: str | None) -> bool:
        """Whether a row the SQL conditions let through really matches the topic filters."""
        if not self.wildcard_topics:
            return True
        return topic is not None and any(
            filter_matches(topic_filter, topic) for topic_filter in self.selection.topics
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "things": list(self.selection.things),
            "streams": list(self.selection.streams),
            "topics": list(self.selection.topics),
            "since": self.since,
            "until": self.until,
        }


def _too_many(count: int, max_rows: int) -> InvalidRequestError:
    return InvalidRequestError(
        "selection",
        f"matches {count} or more telemetry messages, more than the {max_rows} a dataset is built from"
        " (the cloud setting dataset_max_rows); narrow the things, streams, topics or time range",
    )


class _Records:
    """The selected messages as the ML library's records, read page by page; counts what it yields."""

    def __init__(self, session: Session, selection: _Selection, max_rows: int) -> None:
        self._session = session
        self._selection = selection
        self._max_rows = max_rows
        self.count = 0

    def __iter__(self) -> Iterator[TelemetryRecord]:
        from edgewise.ml.datasets import TelemetryRecord

        conditions = self._selection.conditions()
        after = 0
        while True:
            rows = self._session.execute(
                sa.select(
                    TelemetryMessage.id,
                    TelemetryMessage.thing_name,
                    TelemetryMessage.stream,
                    TelemetryMessage.topic,
                    TelemetryMessage.timestamp_ms,
                    TelemetryMessage.payload,
                )
                .where(*conditions, TelemetryMessage.id > after)
                .order_by(TelemetryMessage.id)
                .limit(PAGE_ROWS)
            ).all()
            for message_id, thing, stream, topic, timestamp_ms, payload in rows:
                after = message_id
                if not self._selection.matches(topic):
                    continue
                self.count += 1
                if self.count > self._max_rows:
                    raise _too_many(self.count, self._max_rows)
                yield TelemetryRecord(thing, stream, topic or "", timestamp_ms, payload)
            if len(rows) < PAGE_ROWS:
                return


def _parse_spec(request: DatasetCreate) -> DatasetSpec:
    from edgewise.ml.datasets import DatasetSpec
    from edgewise.ml.errors import DatasetError

    try:
        return DatasetSpec.from_json(_spec_json(request))
    except DatasetError as exc:
        raise _as_request_error(exc, "fields") from None


def create_from_telemetry(
    session: Session, store: ArtifactStore, request: DatasetCreate, *, created_by: str, max_rows: int
) -> Dataset:
    """Build the dataset ``request`` describes from the stored telemetry, store it and record it.

    Raises:
        AlreadyExistsError: a dataset of that name exists.
        InvalidRequestError: a bad field, path, window or label; no stored message matches the selection, or
            more than ``max_rows`` do; or the messages do not make a dataset (a field in none of them, ...).
        MlUnavailableError: the ML libraries are not installed.
    """
    _check_new(session, request.name)
    selection = _Selection(request.selection)
    with ml_libraries():
        from edgewise.ml.datasets import build_dataset
        from edgewise.ml.errors import DatasetError

        spec = _parse_spec(request)
        conditions = selection.conditions()
        # Counted first, so an oversized selection is refused before anything is read.
        counted = (
            session.scalar(sa.select(sa.func.count()).select_from(TelemetryMessage).where(*conditions)) or 0
        )
        if counted == 0:
            raise InvalidRequestError(
                "selection", f"no stored telemetry message matches it ({_describe(selection)})"
            )
        if counted > max_rows and not selection.wildcard_topics:
            raise _too_many(counted, max_rows)
        records = _Records(session, selection, max_rows)
        try:
            table = build_dataset(records, spec)
        except DatasetError as exc:
            if records.count == 0:
                raise InvalidRequestError(
                    "selection", f"no stored telemetry message matches it ({_describe(selection)})"
                ) from None
            raise _as_request_error(exc, "fields") from None
        source = {"kind": "telemetry", "selection": selection.to_json(), "messages": records.count}
        return _record(session, store, request.name, table, spec=spec, source=source, created_by=created_by)


def _describe(selection: _Selection) -> str:
    parts = [
        f"{what} {', '.join(values)}"
        for what, values in (
            ("things", selection.selection.things),
            ("streams", selection.selection.streams),
            ("topics", selection.selection.topics),
        )
        if values
    ]
    if selection.since is not None:
        parts.append(f"since {selection.since}")
    if selection.until is not None:
        parts.append(f"until {selection.until}")
    return "; ".join(parts) if parts else "any message"


def create_from_file(
    session: Session,
    store: ArtifactStore,
    name: str,
    *,
    file_name: str,
    data: bytes,
    created_by: str,
    max_bytes: int,
) -> Dataset:
    """Import a user's CSV or Parquet file (by its suffix) as the dataset ``name``.

    Raises:
        AlreadyExistsError: a dataset of that name exists.
        InvalidRequestError: the file does not parse or holds columns a dataset cannot have (naming the file).
        MlUnavailableError: the ML libraries are not installed.
    """
    _check_new(session, name)
    with ml_libraries():
        from edgewise.ml.datasets import read_table_file
        from edgewise.ml.errors import DatasetError

        try:
            table = read_table_file(data, file_name=file_name, max_bytes=max_bytes)
        except DatasetError as exc:
            raise InvalidRequestError("body", str(exc)) from None
        source = {"kind": "file", "fileName": file_name, "fileBytes": len(data)}
        return _record(session, store, name, table, spec=None, source=source, created_by=created_by)


def _record(
    session: Session,
    store: ArtifactStore,
    name: str,
    table: pa.Table,
    *,
    spec: DatasetSpec | None,
    source: dict[str, Any],
    created_by: str,
) -> Dataset:
    from edgewise.ml.datasets import dataset_bytes, summarize

    data = dataset_bytes(table, spec=spec, source=source)
    summary = summarize(table).to_json()
    stored = store.put(io.BytesIO(data))
    row = Dataset(
        name=name,
        sha256=stored.sha256,
        size_bytes=stored.size,
        rows=table.num_rows,
        spec=None if spec is None else spec.to_json(),
        source=source,
        summary=summary,
        created_by=created_by,
    )
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise AlreadyExistsError(KIND, name) from None
    logger.info("dataset-created name=%s rows=%d bytes=%d", name, row.rows, row.size_bytes)
    return row


def active_jobs(session: Session, name: str) -> Sequence[str]:
    """The ids of the queued or running training jobs that read the dataset ``name``."""
    return session.scalars(
        sa.select(TrainingJob.id)
        .where(
            TrainingJob.dataset_name == name,
            TrainingJob.status.in_([TrainingStatus.QUEUED, TrainingStatus.RUNNING]),
        )
        .order_by(TrainingJob.created_at)
    ).all()


def _sha256_in_use(session: Session, sha256: str) -> bool:
    """Whether another dataset, a component artifact or an uploaded object keeps the bytes ``sha256`` (the
    artifact store is shared and content-addressed)."""
    users = (
        sa.select(Dataset.id).where(Dataset.sha256 == sha256),
        sa.select(ComponentArtifact.id).where(ComponentArtifact.sha256 == sha256),
        sa.select(ExportedObject.id).where(ExportedObject.sha256 == sha256),
    )
    return any(session.scalar(statement.limit(1)) is not None for statement in users)


def delete_dataset(session: Session, store: ArtifactStore, name: str) -> None:
    """Delete the dataset ``name``, and its stored file unless something else refers to the same bytes.

    Raises:
        NotFoundError: there is no such dataset.
        CloudConflictError: a queued or running training job reads it.
    """
    row = get_dataset(session, name)
    jobs = active_jobs(session, name)
    if jobs:
        raise CloudConflictError(
            f"Dataset {name!r} is used by the training job{'s' if len(jobs) > 1 else ''} {', '.join(jobs)}, "
            "queued or running; cancel them or wait until they end"
        )
    sha256 = row.sha256
    session.delete(row)
    session.commit()
    if _sha256_in_use(session, sha256):
        return
    try:
        store.delete(sha256)
    except Exception:
        # The row is gone already; an unreachable store leaves a file nothing refers to.
        logger.exception("dataset-file-delete-failed sha256=%s store=%s", sha256, store.location)
    logger.info("dataset-deleted name=%s", name)


def dataset_item(row: Dataset) -> DatasetItem:
    """The listing shape of ``row``."""
    columns = row.summary.get("columns")
    return DatasetItem(
        name=row.name,
        kind="telemetry" if row.source.get("kind") == "telemetry" else "file",
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        rows=row.rows,
        columns=len(columns) if isinstance(columns, list) else 0,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def dataset_public(row: Dataset) -> DatasetPublic:
    """The API shape of ``row``."""
    return DatasetPublic(
        **dataset_item(row).model_dump(), spec=row.spec, source=row.source, summary=row.summary
    )

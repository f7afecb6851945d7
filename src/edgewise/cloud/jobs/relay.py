"""Job events across cloud processes, through PostgreSQL's LISTEN/NOTIFY.

With several cloud processes (``edgewise cloud up --workers N``), a device's job report is answered by the
process that owns its thing, while the jobs engine runs in process 0. :class:`JobEventRelay` carries committed
job changes between them:

* sending: every transaction that recorded job changes also runs ``SELECT pg_notify('edgewise_job_events', ...)``
  in its ``before_commit`` (:meth:`JobEvents.forward_commits`), so PostgreSQL delivers the notification exactly
  when the commit happens, and never for a rolled-back transaction;
* receiving: one psycopg connection per process LISTENs on the channel and hands the batches of the other
  processes to the listeners subscribed with ``remote=True`` (:meth:`JobEvents.publish_remote`). It reconnects
  with backoff when the database goes away, and says so once; what was sent meanwhile is lost, which costs the
  engine at most its interval (it passes every second anyway).

A payload is JSON, ``{"origin": ..., "changes": [...]}``, with the fields of
:class:`~edgewise.cloud.jobs.events.ExecutionChange` and :class:`~edgewise.cloud.jobs.events.JobStatusChange`;
``origin`` is unique to the relay, so a process skips its own batches. PostgreSQL takes payloads shorter than
8000 bytes: a larger batch goes as several notifications, in order, and a change too large on its own (long
status details) goes without its status details or comment. SQLite serves one process and needs no relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from edgewise.cloud.errors import CloudStartError
from edgewise.cloud.jobs.events import ExecutionChange, JobChange, JobEvents, JobStatusChange
from edgewise.cloud.jobs.models import ExecutionStatus, JobStatus

logger = logging.getLogger(__name__)

CHANNEL = "edgewise_job_events"
#: PostgreSQL's NOTIFY takes payloads shorter than this many bytes.
PAYLOAD_LIMIT_BYTES = 8000
_NOTIFY = sa.text("SELECT pg_notify(:channel, :payload)")
_CONNECT_TIMEOUT = 10
_BACKOFF_FIRST = 0.5
_BACKOFF_MAX = 30.0


@dataclass(frozen=True)
class RelayedBatch:
    """Changes one process committed, as a notification carried them."""

    origin: str
    changes: tuple[JobChange, ...]


def _change_json(change: JobChange, *, details: bool = True) -> dict[str, Any]:
    if isinstance(change, ExecutionChange):
        return {
            "kind": "execution",
            "jobId": change.job_id,
            "namespaceId": change.namespace_id,
            "thingName": change.thing_name,
            "executionNumber": change.execution_number,
            "oldStatus": None if change.old_status is None else change.old_status.value,
            "status": change.status.value,
            "statusDetails": dict(change.status_details) if details else {},
            "queuedAt": change.queued_at.isoformat(),
        }
    return {
        "kind": "job",
        "jobId": change.job_id,
        "namespaceId": change.namespace_id,
        "oldStatus": change.old_status.value,
        "status": change.status.value,
        "reasonCode": change.reason_code,
        "comment": change.comment if details else None,
    }


def _dumps(value: Any) -> str:
    # ASCII only, so a payload's length in characters is its length in bytes.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)


def encode_batches(
    origin: str, changes: Sequence[JobChange], *, limit: int = PAYLOAD_LIMIT_BYTES
) -> list[str]:
    """``changes`` as notification payloads, each shorter than ``limit`` bytes, in order."""
    head = f'{{"origin":{_dumps(origin)},"changes":['
    tail = "]}"
    room = limit - 1 - len(head) - len(tail)
    payloads: list[str] = []
    parts: list[str] = []
    size = 0
    for change in changes:
        part = _dumps(_change_json(change))
        if len(part) > room:
            part = _dumps(_change_json(change, details=False))
        if parts and size + 1 + len(part) > room:
            payloads.append(head + ",".join(parts) + tail)
            parts, size = [], 0
        size += len(part) + (1 if parts else 0)
        parts.append(part)
    if parts:
        payloads.append(head + ",".join(parts) + tail)
    return payloads


def _field(body: Mapping[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"job event field {name!r} is missing or not of type {kind.__name__}")
    return value


def _optional(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"job event field {name!r} is not a string or null")
    return value


def _decode_change(body: Any) -> JobChange:
    if not isinstance(body, dict):
        raise ValueError("job event 'changes' holds something other than an object")
    kind = body.get("kind")
    if kind == "job":
        return JobStatusChange(
            job_id=_field(body, "jobId", str),
            namespace_id=_optional(body, "namespaceId"),
            old_status=JobStatus(_field(body, "oldStatus", str)),
            status=JobStatus(_field(body, "status", str)),
            reason_code=_optional(body, "reasonCode"),
            comment=_optional(body, "comment"),
        )
    if kind != "execution":
        raise ValueError(f"job event field 'kind' is {kind!r}, not 'execution' or 'job'")
    old = _optional(body, "oldStatus")
    details = _field(body, "statusDetails", dict)
    if not all(isinstance(key, str) and isinstance(value, str) for key, value in details.items()):
        raise ValueError("job event field 'statusDetails' holds something other than strings")
    queued_at = datetime.datetime.fromisoformat(_field(body, "queuedAt", str))
    if queued_at.tzinfo is None:
        raise ValueError("job event field 'queuedAt' has no time zone")
    return ExecutionChange(
        job_id=_field(body, "jobId", str),
        namespace_id=_optional(body, "namespaceId"),
        thing_name=_field(body, "thingName", str),
        execution_number=_field(body, "executionNumber", int),
        old_status=None if old is None else ExecutionStatus(old),
        status=ExecutionStatus(_field(body, "status", str)),
        status_details=details,
        queued_at=queued_at,
    )


def decode_batch(payload: str) -> RelayedBatch:
    """The batch a notification payload carries.

    Raises:
        ValueError: the payload is not one :func:`encode_batches` makes; the message names the field.
    """
    try:
        body = json.loads(payload)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"job event payload is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("job event payload is not a JSON object")
    changes = _field(body, "changes", list)
    return RelayedBatch(_field(body, "origin", str), tuple(_decode_change(change) for change in changes))


def listen_conninfo(database_url: str) -> str:
    """The libpq connection string of a SQLAlchemy ``postgresql+psycopg://`` URL."""
    return sa.make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class JobEventRelay:
    """Relays ``sessions``' committed job changes to the other processes and theirs to remote listeners."""

    #: What the cloud's logs call this worker.
    name = "job-event-relay"

    def __init__(self, sessions: sessionmaker[Session], database_url: str, *, listen: bool = True) -> None:
        self._events = JobEvents.for_sessions(sessions)
        #: False in a process without remote listeners (the worker processes): it only sends.
        self._listen_too = listen
        self._conninfo = listen_conninfo(database_url)
        self._database = sa.make_url(database_url).render_as_string(hide_password=True)
        #: Unique to this relay: the batches it sent come back to it too, and are skipped.
        self.origin = uuid.uuid4().hex
        self._listening: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """LISTEN (unless told not to), then send this process's commits too.

        Raises:
            CloudStartError: the database cannot be reached.
        """
        if not self._listen_too:
            self._events.forward_commits(self._send)
            logger.info("job-event-relay-started origin=%s listening=false", self.origin)
            return
        try:
            connection = await self._connect()
        except (OSError, psycopg.Error) as exc:
            raise CloudStartError(f"The job event relay cannot listen on {self._database}: {exc}") from exc
        self._listening = asyncio.create_task(self._listen(connection), name="job-event-relay")
        self._events.forward_commits(self._send)
        logger.info("job-event-relay-started origin=%s", self.origin)

    async def close(self) -> None:
        """Stop sending and listening."""
        self._events.forward_commits(None)
        listening, self._listening = self._listening, None
        if listening is not None:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)

    def _send(self, session: Session, changes: Sequence[JobChange]) -> None:
        for payload in encode_batches(self.origin, changes):
            session.execute(_NOTIFY, {"channel": CHANNEL, "payload": payload})

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        connection = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=_CONNECT_TIMEOUT
        )
        try:
            await connection.execute(f"LISTEN {CHANNEL}")
        except BaseException:
            await connection.close()
            raise
        return connection

    async def _listen(self, connection: psycopg.AsyncConnection[Any]) -> None:
        try:
            while True:
                try:
                    async for notification in connection.notifies():
                        self._received(notification.payload)
                except psycopg.Error as exc:
                    logger.warning("job-event-relay-disconnected: %s; reconnecting", exc)
                with contextlib.suppress(psycopg.Error):
                    await connection.close()
                connection = await self._reconnect()
        finally:
            with contextlib.suppress(psycopg.Error):
                await connection.close()

    async def _reconnect(self) -> psycopg.AsyncConnection[Any]:
        delay = _BACKOFF_FIRST
        failures = 0
        while True:
            await asyncio.sleep(delay)
            try:
                connection = await self._connect()
            except (OSError, psycopg.Error):
                failures += 1
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            logger.info("job-event-relay-reconnected failed_attempts=%d", failures)
            return connection

    def _received(self, payload: str) -> None:
        try:
            batch = decode_batch(payload)
        except ValueError as exc:
            logger.warning("job-event-relay-dropped: %s", exc)
            return
        if batch.origin != self.origin:
            self._events.publish_remote(batch.changes)

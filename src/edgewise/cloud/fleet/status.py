"""Fleet status messages and presence, checked and recorded; and what the API reads back.

A device publishes Greengrass fleet status messages and its presence (docs/device-protocol.md; the messages are
:mod:`edgewise.protocol.health`). A COMPLETE message replaces the stored component list, a PARTIAL one updates the
components it names; the chunks of a COMPLETE message split by its size add up to one list. Messages can
arrive late or twice (QoS 1, spooled while offline), so each kind carries the
device's timestamp and an older one than the stored one is ignored. A presence timestamp is the time its
connection opened, the same in the online message and in that connection's will, so for one connection the
offline message is final whichever order the two arrive in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgewise.cloud.db import utcnow
from edgewise.cloud.errors import InvalidRequestError, NotFoundError
from edgewise.cloud.fleet.models import DeviceStatus
from edgewise.cloud.registry import Page, Thing
from edgewise.protocol import health
from edgewise.protocol.health import HealthMessage, PresenceMessage


def parse_health(payload: bytes) -> HealthMessage:
    """Check a fleet status message (:func:`edgewise.protocol.health.parse_health`).

    Raises:
        InvalidRequestError: naming the field that is wrong.
    """
    try:
        return health.parse_health(payload)
    except health.StatusMessageError as exc:
        raise InvalidRequestError(exc.field, exc.problem) from exc


def parse_presence(payload: bytes) -> PresenceMessage:
    """Check a presence message (:func:`edgewise.protocol.health.parse_presence`).

    Raises:
        InvalidRequestError: naming the field that is wrong.
    """
    try:
        return health.parse_presence(payload)
    except health.StatusMessageError as exc:
        raise InvalidRequestError(exc.field, exc.problem) from exc


#: A thing's id and its status row (None before its first message), by thing name.
StatusRows = dict[str, tuple[int, DeviceStatus | None]]


def status_rows(session: Session, thing_names: Iterable[str]) -> StatusRows:
    """The status rows of ``thing_names`` in one query, for a batch of messages (unknown names are left out)."""
    found = session.execute(
        sa.select(Thing.name, Thing.id, DeviceStatus)
        .outerjoin(DeviceStatus, DeviceStatus.thing_id == Thing.id)
        .where(Thing.name.in_(set(thing_names)))
    )
    return {name: (thing_id, row) for name, thing_id, row in found}


def _row(session: Session, thing_name: str, rows: StatusRows | None) -> DeviceStatus:
    if rows is None:
        rows = status_rows(session, [thing_name])
    found = rows.get(thing_name)
    if found is None:
        raise NotFoundError("thing", thing_name)
    thing_id, row = found
    if row is not None:
        return row
    row = _insert_row(session, thing_id)
    rows[thing_name] = (thing_id, row)
    return row


def _insert_row(session: Session, thing_id: int) -> DeviceStatus:
    try:
        # A device's first health and presence messages arrive together: one of the two inserts the row.
        with session.begin_nested():
            row = DeviceStatus(
                thing_id=thing_id,
                components={},
                overall_status="UNKNOWN",
                connectivity_timestamp=0,
                status_timestamp=0,
                core_version="",
                platform="",
                architecture="",
            )
            session.add(row)
    except IntegrityError:
        inserted = session.get(DeviceStatus, thing_id)
        assert inserted is not None, "the row another writer inserted"
        return inserted
    return row


def record_health(session: Session, thing_name: str, report: HealthMessage) -> bool:
    """Store ``report`` unless a newer one is stored; True when it was stored. Commits.

    Raises:
        NotFoundError: no such thing.
    """
    stored = apply_health(session, thing_name, report)
    session.commit()
    return stored


def apply_health(
    session: Session, thing_name: str, report: HealthMessage, rows: StatusRows | None = None
) -> bool:
    """:func:`record_health` without the commit, so that a batch of messages shares one transaction (whose
    things' rows ``rows`` holds, from :func:`status_rows`).

    Raises:
        NotFoundError: no such thing (nothing changed).
    """
    row = _row(session, thing_name, rows)
    if report.timestamp < row.status_timestamp:
        return False
    # A COMPLETE message split by size replaces the list with its first chunk and adds the others to it.
    first_chunk = report.chunk is None or report.chunk.chunk_id == 1
    replaces = report.complete and (first_chunk or report.timestamp != row.status_timestamp)
    # Stored as sent; a name listed twice keeps its last entry.
    reported = {component.name: component.to_json() for component in report.components}
    row.components = reported if replaces else {**row.components, **reported}
    row.overall_status = report.overall_status.value
    row.status_timestamp = report.timestamp
    row.status_updated_at = utcnow()
    row.core_version = report.core_version or row.core_version
    row.platform = report.platform or row.platform
    row.architecture = report.architecture or row.architecture
    if report.deployment is not None:
        row.deployment = dict(report.deployment)
    return True


def record_presence(session: Session, thing_name: str, report: PresenceMessage) -> bool:
    """Store ``report`` unless a newer one is stored; True when it was stored. Commits.

    Raises:
        NotFoundError: no such thing.
    """
    stored = apply_presence(session, thing_name, report)
    session.commit()
    return stored


def apply_presence(
    session: Session, thing_name: str, report: PresenceMessage, rows: StatusRows | None = None
) -> bool:
    """:func:`record_presence` without the commit (``rows`` as in :func:`apply_health`).

    Raises:
        NotFoundError: no such thing (nothing changed).
    """
    row = _row(session, thing_name, rows)
    same_connection = report.timestamp == row.connectivity_timestamp
    if report.timestamp < row.connectivity_timestamp or (same_connection and row.connected is False):
        return False
    row.connected = report.connected
    row.connectivity_timestamp = report.timestamp
    row.connectivity_updated_at = utcnow()
    return True


@dataclass(frozen=True)
class CoreDevice:
    """A thing with the status it reported, as the API shows it."""

    thing_name: str
    status: DeviceStatus


def get_core_device(session: Session, thing_name: str) -> CoreDevice:
    """The status of one device that has reported.

    Raises:
        NotFoundError: no such thing, or it has never reported.
    """
    row = session.execute(
        sa.select(Thing.name, DeviceStatus)
        .join(DeviceStatus, DeviceStatus.thing_id == Thing.id)
        .where(Thing.name == thing_name)
    ).one_or_none()
    if row is None:
        raise NotFoundError("core device", thing_name)
    return CoreDevice(row[0], row[1])


def list_core_devices(
    session: Session,
    *,
    status: str | None = None,
    connected: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[CoreDevice]:
    """Devices that have reported, by thing name, optionally only those with ``status`` or ``connected``."""
    where: list[sa.ColumnElement[bool]] = []
    if status is not None:
        where.append(DeviceStatus.overall_status == status)
    if connected is not None:
        where.append(DeviceStatus.connected.is_(connected))
    total = session.scalar(sa.select(sa.func.count()).select_from(DeviceStatus).where(*where)) or 0
    rows = session.execute(
        sa.select(Thing.name, DeviceStatus)
        .join(DeviceStatus, DeviceStatus.thing_id == Thing.id)
        .where(*where)
        .order_by(Thing.name)
        .limit(limit)
        .offset(offset)
    ).all()
    return Page([CoreDevice(name, row) for name, row in rows], total)

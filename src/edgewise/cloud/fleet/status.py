"""Fleet status messages and presence, checked and recorded; and what the API reads back.

A device publishes Greengrass fleet status messages (reference greengrass.md §3.7) and its presence
(docs/device-protocol.md). A COMPLETE message replaces the stored component list, a PARTIAL one updates the
components it names; the chunks of a COMPLETE message split by its size add up to one list. Messages can
arrive late or twice (QoS 1, spooled while offline), so each kind carries the
device's timestamp and an older one than the stored one is ignored. A presence timestamp is the time its
connection opened, the same in the online message and in that connection's will, so for one connection the
offline message is final whichever order the two arrive in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from edgewise.cloud.db import utcnow
from edgewise.cloud.errors import InvalidRequestError, NotFoundError
from edgewise.cloud.fleet.models import DeviceStatus
from edgewise.cloud.registry.models import Thing
from edgewise.cloud.registry.service import Page

OVERALL_STATUSES = ("HEALTHY", "UNHEALTHY")
PRESENCE_STATES = {"online": True, "offline": False}
_MESSAGE_TYPES = ("COMPLETE", "PARTIAL")
_MAX_COMPONENTS = 10_000


@dataclass(frozen=True)
class HealthReport:
    """One fleet status message, checked."""

    overall_status: str
    timestamp: int
    complete: bool
    components: dict[str, dict[str, Any]]
    core_version: str
    platform: str
    architecture: str
    deployment: dict[str, Any] | None
    #: Which part of a message split because of its size (1 when it was not split).
    chunk: int = 1


@dataclass(frozen=True)
class PresenceReport:
    """One presence message, checked."""

    connected: bool
    timestamp: int


def _object(payload: bytes) -> dict[str, Any]:
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequestError("payload", f"is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidRequestError("payload", "must be a JSON object")
    return document


def _string(document: Mapping[str, Any], field: str, *, default: str | None = None, limit: int = 256) -> str:
    value = document.get(field, default)
    if not isinstance(value, str):
        raise InvalidRequestError(field, f"must be a string, not {type(value).__name__}")
    if len(value) > limit:
        raise InvalidRequestError(field, f"is longer than {limit} characters")
    return value


def _timestamp(document: Mapping[str, Any], field: str) -> int:
    value = document.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise InvalidRequestError(field, "must be a non-negative integer (milliseconds since the epoch)")
    return value


def _component(index: int, entry: object) -> dict[str, Any]:
    where = f"components[{index}]"
    if not isinstance(entry, dict):
        raise InvalidRequestError(where, "must be an object")
    component = {
        "componentName": _string(entry, "componentName", default=None),
        "version": _string(entry, "version", default=""),
        "status": _string(entry, "status", default=""),
        "isRoot": entry.get("isRoot", False),
    }
    if not component["componentName"]:
        raise InvalidRequestError(f"{where}.componentName", "must not be empty")
    if not isinstance(component["isRoot"], bool):
        raise InvalidRequestError(f"{where}.isRoot", "must be true or false")
    if entry.get("requestedVersion") is not None:
        component["requestedVersion"] = _string(entry, "requestedVersion", limit=256)
    details = entry.get("componentStatusDetails")
    if details is not None:
        if not isinstance(details, dict):
            raise InvalidRequestError(f"{where}.componentStatusDetails", "must be an object")
        component["componentStatusDetails"] = details
    return component


def _chunk_number(info: dict[str, Any], key: str) -> int:
    value = info.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
        raise InvalidRequestError(f"chunkInfo.{key}", "must be an integer from 1 to 10000")
    return value


def _chunk(info: object) -> int:
    if info is None:
        return 1
    if not isinstance(info, dict):
        raise InvalidRequestError("chunkInfo", "must be an object")
    chunk, total = (_chunk_number(info, key) for key in ("chunkId", "totalChunks"))
    if chunk > total:
        raise InvalidRequestError("chunkInfo.chunkId", f"is {chunk}, more than totalChunks {total}")
    return chunk


def parse_health(payload: bytes) -> HealthReport:
    """Check a fleet status message.

    Raises:
        InvalidRequestError: naming the field that is wrong.
    """
    document = _object(payload)
    overall = _string(document, "overallDeviceStatus", default=None)
    if overall not in OVERALL_STATUSES:
        raise InvalidRequestError("overallDeviceStatus", f"must be one of {', '.join(OVERALL_STATUSES)}")
    message_type = _string(document, "messageType", default="COMPLETE")
    if message_type not in _MESSAGE_TYPES:
        raise InvalidRequestError("messageType", f"must be one of {', '.join(_MESSAGE_TYPES)}")
    entries = document.get("components", [])
    if not isinstance(entries, list) or len(entries) > _MAX_COMPONENTS:
        raise InvalidRequestError("components", f"must be a list of at most {_MAX_COMPONENTS} objects")
    components = {}
    for index, entry in enumerate(entries):
        component = _component(index, entry)
        components[component["componentName"]] = component
    deployment = document.get("deploymentInformation")
    if deployment is not None and not isinstance(deployment, dict):
        raise InvalidRequestError("deploymentInformation", "must be an object")
    return HealthReport(
        chunk=_chunk(document.get("chunkInfo")),
        overall_status=overall,
        timestamp=_timestamp(document, "timestamp"),
        complete=message_type == "COMPLETE",
        components=components,
        core_version=_string(document, "ggcVersion", default=""),
        platform=_string(document, "platform", default=""),
        architecture=_string(document, "architecture", default=""),
        deployment=deployment,
    )


def parse_presence(payload: bytes) -> PresenceReport:
    """Check a presence message.

    Raises:
        InvalidRequestError: naming the field that is wrong.
    """
    document = _object(payload)
    state = document.get("state")
    if state not in PRESENCE_STATES:
        raise InvalidRequestError("state", f"must be one of {', '.join(PRESENCE_STATES)}")
    return PresenceReport(connected=PRESENCE_STATES[state], timestamp=_timestamp(document, "timestamp"))


def _row(session: Session, thing_name: str) -> DeviceStatus:
    thing_id = session.scalar(sa.select(Thing.id).where(Thing.name == thing_name))
    if thing_id is None:
        raise NotFoundError("thing", thing_name)
    row = session.get(DeviceStatus, thing_id)
    if row is not None:
        return row
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
        row = session.get(DeviceStatus, thing_id)
        assert row is not None, "the row another writer inserted"
    return row


def record_health(session: Session, thing_name: str, report: HealthReport) -> bool:
    """Store ``report`` unless a newer one is stored; True when it was stored. Commits.

    Raises:
        NotFoundError: no such thing.
    """
    row = _row(session, thing_name)
    if report.timestamp < row.status_timestamp:
        session.rollback()
        return False
    # A COMPLETE message split by size replaces the list with its first chunk and adds the others to it.
    replaces = report.complete and (report.chunk == 1 or report.timestamp != row.status_timestamp)
    components = dict(report.components) if replaces else {**row.components, **report.components}
    row.components = components
    row.overall_status = report.overall_status
    row.status_timestamp = report.timestamp
    row.status_updated_at = utcnow()
    row.core_version = report.core_version or row.core_version
    row.platform = report.platform or row.platform
    row.architecture = report.architecture or row.architecture
    if report.deployment is not None:
        row.deployment = report.deployment
    session.commit()
    return True


def record_presence(session: Session, thing_name: str, report: PresenceReport) -> bool:
    """Store ``report`` unless a newer one is stored; True when it was stored. Commits.

    Raises:
        NotFoundError: no such thing.
    """
    row = _row(session, thing_name)
    same_connection = report.timestamp == row.connectivity_timestamp
    if report.timestamp < row.connectivity_timestamp or (same_connection and row.connected is False):
        session.rollback()
        return False
    row.connected = report.connected
    row.connectivity_timestamp = report.timestamp
    row.connectivity_updated_at = utcnow()
    session.commit()
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

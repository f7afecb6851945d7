"""REST routes of fleet status: the devices that reported, their health, presence and components (any role)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from edgewise.cloud.auth import require_access
from edgewise.cloud.db import SessionDep
from edgewise.cloud.errors import ERROR_RESPONSES
from edgewise.cloud.fleet import status
from edgewise.cloud.fleet.schemas import (
    ConnectivityPublic,
    CoreDevicePublic,
    CoreDevicesPublic,
    InstalledComponentPublic,
    InstalledComponentsPublic,
)
from edgewise.cloud.registry import rules

ThingName = Annotated[
    str,
    Path(alias="thingName", min_length=1, max_length=rules.NAME_MAX_LENGTH, pattern=rules.NAME_PATTERN),
]
StatusFilter = Annotated[Literal["HEALTHY", "UNHEALTHY"] | None, Query(alias="status")]
ConnectedFilter = Annotated[bool | None, Query()]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]

router = APIRouter(dependencies=[Depends(require_access())], responses=ERROR_RESPONSES, tags=["fleet status"])


def core_device_public(device: status.CoreDevice) -> CoreDevicePublic:
    """The API shape of one device's status."""
    row = device.status
    return CoreDevicePublic(
        core_device_thing_name=device.thing_name,
        status=row.overall_status,
        last_status_update_timestamp=row.status_updated_at,
        core_version=row.core_version,
        platform=row.platform,
        architecture=row.architecture,
        connectivity=ConnectivityPublic(connected=row.connected, updated_at=row.connectivity_updated_at),
        last_deployment=row.deployment,
    )


@router.get("/core-devices")
def list_core_devices(
    session: SessionDep,
    status_filter: StatusFilter = None,
    connected: ConnectedFilter = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> CoreDevicesPublic:
    """Devices that have reported, by thing name; filter by overall status or connectivity."""
    page = status.list_core_devices(
        session, status=status_filter, connected=connected, limit=limit, offset=offset
    )
    return CoreDevicesPublic(data=[core_device_public(device) for device in page.items], count=page.total)


@router.get("/core-devices/{thingName}")
def get_core_device(session: SessionDep, thing_name: ThingName) -> CoreDevicePublic:
    """One device's last reported status and presence."""
    return core_device_public(status.get_core_device(session, thing_name))


@router.get("/core-devices/{thingName}/installed-components")
def list_installed_components(session: SessionDep, thing_name: ThingName) -> InstalledComponentsPublic:
    """The components the device last reported, by name."""
    device = status.get_core_device(session, thing_name)
    components = [
        InstalledComponentPublic(
            component_name=name,
            component_version=entry.get("version", ""),
            requested_version=entry.get("requestedVersion"),
            lifecycle_state=entry.get("status", ""),
            is_root=bool(entry.get("isRoot", False)),
            lifecycle_status_details=entry.get("componentStatusDetails"),
        )
        for name, entry in sorted(device.status.components.items())
    ]
    return InstalledComponentsPublic(core_device_thing_name=thing_name, installed_components=components)

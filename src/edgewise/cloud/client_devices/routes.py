"""REST routes of client devices, in AWS GreengrassV2's shapes: BatchAssociateClientDeviceWithCoreDevice,
BatchDisassociateClientDeviceFromCoreDevice, ListClientDevicesAssociatedWithCoreDevice, and Get/Update
ConnectivityInfo. Reads: any role; writes: write access.

A batch is answered 200 with the entries it could not apply (``errorEntries``); a core device that is no thing is a
404. Connectivity is checked by the same rules as an update from the core device over MQTT, and a bad entry is a
422 naming it (``connectivityInfo[1].hostAddress``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from edgewise.cloud.auth import require_access
from edgewise.cloud.client_devices import service
from edgewise.cloud.client_devices.schemas import (
    AssociatedClientDevicePublic,
    AssociatedClientDevicesPublic,
    ClientDeviceBatch,
    ClientDeviceBatchResult,
    ConnectivityInfo,
    ConnectivityPublic,
    ConnectivityUpdate,
    ErrorEntryPublic,
)
from edgewise.cloud.db import SessionDep
from edgewise.cloud.errors import ERROR_RESPONSES, InvalidRequestError
from edgewise.names import THING_NAME_MAX_LENGTH, THING_NAME_PATTERN
from edgewise.protocol.client_devices import ClientDeviceProtocolError, parse_connectivity_entries

CoreName = Annotated[
    str,
    Path(
        alias="thingName",
        min_length=1,
        max_length=THING_NAME_MAX_LENGTH,
        pattern=THING_NAME_PATTERN,
        description="The core device's thing name.",
    ),
]

router = APIRouter(
    dependencies=[Depends(require_access())], responses=ERROR_RESPONSES, tags=["client devices"]
)


def _result(errors: list[service.EntryError]) -> ClientDeviceBatchResult:
    return ClientDeviceBatchResult(
        error_entries=[
            ErrorEntryPublic(thing_name=error.thing_name, code=error.code, message=error.message)
            for error in errors
        ]
    )


@router.post("/core-devices/{thingName}/client-devices/associate")
def associate_client_devices(
    session: SessionDep, core: CoreName, batch: ClientDeviceBatch
) -> ClientDeviceBatchResult:
    """Associate client devices (things) with the core device; the entries that could not be, with why."""
    return _result(service.associate(session, core, [entry.thing_name for entry in batch.entries]))


@router.post("/core-devices/{thingName}/client-devices/disassociate")
def disassociate_client_devices(
    session: SessionDep, core: CoreName, batch: ClientDeviceBatch
) -> ClientDeviceBatchResult:
    """Disassociate client devices from the core device; the entries that name no thing, with why."""
    return _result(service.disassociate(session, core, [entry.thing_name for entry in batch.entries]))


@router.get("/core-devices/{thingName}/client-devices")
def list_client_devices(session: SessionDep, core: CoreName) -> AssociatedClientDevicesPublic:
    """The client devices associated with the core device, by thing name."""
    return AssociatedClientDevicesPublic(
        associated_client_devices=[
            AssociatedClientDevicePublic(
                thing_name=found.thing_name, association_timestamp=found.associated_at
            )
            for found in service.list_associations(session, core)
        ]
    )


def _connectivity_public(connectivity: service.Connectivity) -> ConnectivityPublic:
    return ConnectivityPublic(
        connectivity_info=[
            ConnectivityInfo(
                id=entry.id,
                host_address=entry.host_address,
                port_number=entry.port_number,
                metadata=entry.metadata,
            )
            for entry in connectivity.entries
        ],
        version=connectivity.version,
        updated_at=connectivity.updated_at,
    )


@router.get("/core-devices/{thingName}/connectivity")
def get_connectivity(session: SessionDep, core: CoreName) -> ConnectivityPublic:
    """Where client devices reach the core device's broker."""
    return _connectivity_public(service.get_connectivity(session, core))


@router.put("/core-devices/{thingName}/connectivity")
def update_connectivity(
    session: SessionDep, core: CoreName, update: ConnectivityUpdate
) -> ConnectivityPublic:
    """Replace the core device's connectivity (the IP detector does the same from the device)."""
    body = [entry.model_dump(by_alias=True) for entry in update.connectivity_info]
    try:
        entries = parse_connectivity_entries(body)
    except ClientDeviceProtocolError as exc:
        raise InvalidRequestError(exc.field, exc.problem) from None
    return _connectivity_public(service.set_connectivity(session, core, entries))

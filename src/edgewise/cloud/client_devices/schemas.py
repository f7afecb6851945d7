"""API shapes of client devices, in AWS GreengrassV2's field names (camelCase on the wire)."""

from __future__ import annotations

import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from edgewise.cloud.client_devices.service import MAX_BATCH
from edgewise.names import THING_NAME_MAX_LENGTH, THING_NAME_PATTERN
from edgewise.protocol.client_devices import (
    MAX_CONNECTIVITY_ENTRIES,
    MAX_HOST_LENGTH,
    MAX_ID_LENGTH,
    MAX_METADATA_LENGTH,
)

ThingName = Annotated[str, Field(min_length=1, max_length=THING_NAME_MAX_LENGTH, pattern=THING_NAME_PATTERN)]


class _Shape(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ClientDeviceEntry(_Shape):
    """One client device of a batch."""

    thing_name: ThingName


class ClientDeviceBatch(_Shape):
    """The client devices to associate with (or disassociate from) a core device."""

    entries: list[ClientDeviceEntry] = Field(min_length=1, max_length=MAX_BATCH)


class ErrorEntryPublic(_Shape):
    """An entry of a batch that was not applied."""

    thing_name: str
    code: str = Field(description="AWS's code: ResourceNotFoundException or ValidationException")
    message: str


class ClientDeviceBatchResult(_Shape):
    """What a batch left undone; empty when every entry was applied."""

    error_entries: list[ErrorEntryPublic]


class AssociatedClientDevicePublic(_Shape):
    """A client device associated with a core device."""

    thing_name: str
    association_timestamp: datetime.datetime


class AssociatedClientDevicesPublic(_Shape):
    """The client devices associated with a core device, by thing name."""

    associated_client_devices: list[AssociatedClientDevicePublic]


class ConnectivityInfo(_Shape):
    """An address client devices reach the core device's broker at."""

    id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    host_address: str = Field(
        min_length=1, max_length=MAX_HOST_LENGTH, description="An IP address or a DNS name"
    )
    port_number: int = Field(ge=1, le=65535)
    metadata: str = Field(default="", max_length=MAX_METADATA_LENGTH)


class ConnectivityUpdate(_Shape):
    """A core device's new connectivity, replacing the old one."""

    connectivity_info: list[ConnectivityInfo] = Field(max_length=MAX_CONNECTIVITY_ENTRIES)


class ConnectivityPublic(_Shape):
    """A core device's connectivity; ``version`` 0 when none was ever set."""

    connectivity_info: list[ConnectivityInfo]
    version: int
    updated_at: datetime.datetime | None

"""API shapes of fleet status (camelCase on the wire, after Greengrass's GetCoreDevice and ListInstalledComponents)."""

from __future__ import annotations

import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class _Public(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ConnectivityPublic(_Public):
    """Whether the device's MQTT connection is up, from its presence messages and last will."""

    connected: bool | None
    updated_at: datetime.datetime | None


class CoreDevicePublic(_Public):
    """A device that has reported its status."""

    core_device_thing_name: str
    status: str
    last_status_update_timestamp: datetime.datetime | None
    core_version: str
    platform: str
    architecture: str
    connectivity: ConnectivityPublic
    last_deployment: dict[str, Any] | None


class CoreDevicesPublic(_Public):
    """A page of core devices and how many match in all."""

    data: list[CoreDevicePublic]
    count: int


class InstalledComponentPublic(_Public):
    """A component as the device last reported it."""

    component_name: str
    component_version: str
    #: What the deployment or a dependency asked for, where the device serves another version: a built-in
    #: serves every requested version of its major line (``2.4.0`` asked, ``2.12.0`` served).
    requested_version: str | None = None
    lifecycle_state: str
    is_root: bool
    lifecycle_status_details: dict[str, Any] | None


class InstalledComponentsPublic(_Public):
    """The components a device last reported."""

    core_device_thing_name: str
    installed_components: list[InstalledComponentPublic]

"""Client devices in the cloud: plain MQTT devices associated with core devices (``models``, ``service``,
``routes``), the MQTT conversations core devices hold about them (``worker``: trust list, connectivity, core CA)
and Greengrass discovery (``discovery``, served on the HTTPS data-plane listener).

Only the tables are re-exported here: the broker's ACL reads them, and the broker is imported by the worker, so
the package itself stays free of the worker.
"""

from __future__ import annotations

from edgewise.cloud.client_devices.models import (
    ClientDeviceAssociation as ClientDeviceAssociation,
)
from edgewise.cloud.client_devices.models import (
    CoreDeviceAuthority as CoreDeviceAuthority,
)
from edgewise.cloud.client_devices.models import (
    CoreDeviceConnectivity as CoreDeviceConnectivity,
)

__all__ = ["ClientDeviceAssociation", "CoreDeviceAuthority", "CoreDeviceConnectivity"]

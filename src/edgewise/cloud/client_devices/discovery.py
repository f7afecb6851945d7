"""Greengrass discovery's answer: what ``GET /greengrass/discover/thing/<thing>`` returns to a client device.

One group per core device the client device is associated with, in Greengrass V2's shape (the group id is
``greengrassV2-coreDevice-<core>``), each with the core's connectivity and the CA certificates of the core's
broker::

    {"GGGroups": [{"GGGroupId": "greengrassV2-coreDevice-Core-1",
                   "Cores": [{"thingArn": "arn:aws:iot:edgewise:edgewise:thing/Core-1",
                              "Connectivity": [{"Id": "eth0", "HostAddress": "192.0.2.7", "PortNumber": 8883,
                                                "Metadata": ""}]}],
                   "CAs": ["-----BEGIN CERTIFICATE-----..."]}]}

The listener (:mod:`edgewise.cloud.https_publish`) checks who asks; this module only says what they get.
"""

from __future__ import annotations

import json
from typing import Any, Final

from sqlalchemy.orm import Session

from edgewise.cloud.client_devices import service

#: One Edgewise cloud stands for one AWS region and account in ARNs.
THING_ARN: Final = "arn:aws:iot:edgewise:edgewise:thing/{thing}"
GROUP_ID: Final = "greengrassV2-coreDevice-{core}"


def discover_body(session: Session, client: str) -> bytes | None:
    """The discovery answer (JSON) for client device ``client``, or None when it is associated with no core
    device. Blocks."""
    cores = service.discover(session, client)
    if not cores:
        return None
    groups: list[dict[str, Any]] = [
        {
            "GGGroupId": GROUP_ID.format(core=core.thing_name),
            "Cores": [
                {
                    "thingArn": THING_ARN.format(thing=core.thing_name),
                    "Connectivity": [
                        {
                            "Id": entry.id,
                            "HostAddress": entry.host_address,
                            "PortNumber": entry.port_number,
                            "Metadata": entry.metadata,
                        }
                        for entry in core.connectivity
                    ],
                }
            ],
            "CAs": list(core.ca_certificates),
        }
        for core in cores
    ]
    return json.dumps({"GGGroups": groups}, separators=(",", ":")).encode()

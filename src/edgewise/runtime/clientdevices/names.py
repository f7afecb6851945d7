"""The names of the client-device built-ins, as Greengrass names its components."""

from __future__ import annotations

from typing import Final

#: Authenticates client devices and decides what each may do.
AUTH: Final = "aws.greengrass.clientdevices.Auth"
#: The local MQTT broker under Greengrass's Moquette name.
MOQUETTE: Final = "aws.greengrass.clientdevices.mqtt.Moquette"
#: The local MQTT broker under Greengrass's EMQX name (the same broker as ``MOQUETTE``).
EMQX: Final = "aws.greengrass.clientdevices.mqtt.EMQX"
#: Relays messages between the local broker, local pub/sub and the cloud.
BRIDGE: Final = "aws.greengrass.clientdevices.mqtt.Bridge"
#: Reports the core device's connectivity addresses to the cloud.
IP_DETECTOR: Final = "aws.greengrass.clientdevices.IPDetector"

#: Both names under which the local broker may be deployed.
BROKERS: Final = (MOQUETTE, EMQX)
#: Every client-device built-in.
ALL: Final = (AUTH, MOQUETTE, EMQX, BRIDGE, IP_DETECTOR)

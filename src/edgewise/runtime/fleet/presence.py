"""Presence: the device says on ``$aws/things/<thing>/edgewise/presence`` (retained) whether it is connected.

Every connection publishes an online :class:`~edgewise.protocol.health.PresenceMessage` on connecting, and leaves
an offline one as its MQTT last will, so the broker announces a device that drops (or is killed) within the
keep-alive, and the runtime announces itself offline when it stops. Both carry the time of the connection attempt
(docs/device-protocol.md): a cloud that ignores older timestamps takes a connection's will after its own online
message, and the next connection's online message after that.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from edgewise.protocol import health
from edgewise.runtime.cloudlink import CloudMessage, ConnectionMessages


def presence_messages(
    thing: str, *, clock: Callable[[], float] = time.time
) -> Callable[[], ConnectionMessages]:
    """The factory the cloud link calls before each connection attempt."""
    topic = health.presence_topic(thing)

    def messages() -> ConnectionMessages:
        opened = int(clock() * 1000)

        def message(connected: bool) -> CloudMessage:
            payload = health.encode_presence(health.PresenceMessage(connected=connected, timestamp=opened))
            return CloudMessage(topic, payload, qos=1, retain=True)

        return ConnectionMessages(will=message(False), on_connect=message(True), will_on_close=True)

    return messages

"""Presence: ``$aws/things/<thing>/edgewise/presence``, retained, says whether the device is connected.

Every connection publishes ``{"state": "online", "timestamp": T}`` on connecting, and leaves
``{"state": "offline", "timestamp": T}`` as its MQTT last will, so the broker announces a device that drops (or
is killed) within the keep-alive, and the runtime announces itself offline when it stops. ``T`` is the time of the
connection attempt, the same in both (docs/device-protocol.md): a cloud that ignores older timestamps takes a
connection's will after its own online message, and the next connection's online message after that.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from edgewise.runtime.cloudlink import CloudMessage, ConnectionMessages


def presence_topic(thing: str) -> str:
    return f"$aws/things/{thing}/edgewise/presence"


def presence_messages(
    thing: str, *, clock: Callable[[], float] = time.time
) -> Callable[[], ConnectionMessages]:
    """The factory the cloud link calls before each connection attempt."""
    topic = presence_topic(thing)

    def messages() -> ConnectionMessages:
        now = int(clock() * 1000)

        def message(state: str, timestamp: int) -> CloudMessage:
            payload = json.dumps({"state": state, "timestamp": timestamp}).encode()
            return CloudMessage(topic, payload, qos=1, retain=True)

        return ConnectionMessages(
            will=message("offline", now), on_connect=message("online", now), will_on_close=True
        )

    return messages

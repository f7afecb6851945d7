"""Local publish/subscribe between components and runtime services."""

from edgewise.runtime.pubsub._message import PubSubMessage, ReceiveMode
from edgewise.runtime.pubsub.bus import Deliver, PubSubBus, PubSubStatistics, Subscription

__all__ = ["Deliver", "PubSubBus", "PubSubMessage", "PubSubStatistics", "ReceiveMode", "Subscription"]

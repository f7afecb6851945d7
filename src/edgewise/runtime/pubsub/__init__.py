"""Local publish/subscribe between components and runtime services."""

from edgewise.runtime.pubsub.bus import PubSubBus

__all__ = ["PubSubBus"]

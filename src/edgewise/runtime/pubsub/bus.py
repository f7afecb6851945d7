"""The local publish/subscribe bus shared by components (over IPC) and the runtime's own services."""

from __future__ import annotations


class PubSubBus:
    """Routes messages published on local topics to the subscribers whose filters match."""

"""Errors of the cloud link and of the runtime configuration file.

EdgewiseError
 ├── ConfigFileError              the runtime configuration file cannot be used (lists every problem)
 └── CloudLinkError               a cloud link operation that failed
      ├── MessageTooLargeError    a message bigger than the whole spool
      ├── NotConnectedError       a QoS 0 message while offline, not kept (``keepQos0WhenOffline``)
      ├── SubscriptionError       the broker refused a subscription, or too many filters
      └── CloudLinkClosedError    the link was closed (also a ``RuntimeError``: a misuse)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgewise.errors import EdgewiseError


class ConfigFileError(EdgewiseError):
    """The runtime configuration file is unreadable or invalid; ``problems`` names each field."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"Runtime configuration {path} is not valid:\n{lines}")
        self.path = path
        self.problems = tuple(problems)


class CloudLinkError(EdgewiseError):
    """Base class of cloud link errors."""


class MessageTooLargeError(CloudLinkError):
    """A message that could never fit in the spool."""

    def __init__(self, topic: str, size: int, limit: int) -> None:
        super().__init__(
            f"Message to {topic!r} is {size} bytes, more than the whole spool ({limit} bytes, cloud.spool.maxBytes)"
        )
        self.topic = topic
        self.size = size
        self.limit = limit


class NotConnectedError(CloudLinkError):
    """A QoS 0 message published while offline was dropped."""

    def __init__(self, topic: str) -> None:
        super().__init__(
            f"Not connected to the cloud: the QoS 0 message to {topic!r} was dropped "
            "(use QoS 1, or set cloud.spool.keepQos0WhenOffline)"
        )
        self.topic = topic


class SubscriptionError(CloudLinkError):
    """A subscription that cannot be made; ``topic_filter`` is the filter asked for."""

    def __init__(self, topic_filter: str, reason: str) -> None:
        super().__init__(f"Cannot subscribe to {topic_filter!r}: {reason}")
        self.topic_filter = topic_filter
        self.reason = reason


class CloudLinkClosedError(CloudLinkError, RuntimeError):
    """The cloud link was used after :meth:`CloudLink.close`."""

"""Which things a cloud process answers for when the cloud runs as several processes.

Every worker process subscribes to the same device request filters and keeps only the messages of the things it
owns: thing ``t`` belongs to process ``zlib.crc32(t) % count``. A thing's requests so stay in one process, in
the order they arrived (the jobs worker relies on that), and each is answered once. Shared subscriptions
(``$share/...``) cannot do this job: Mosquitto 2.0 does not deliver ``$``-topics such as
``$aws/things/<thing>/jobs/get`` to them, and they would spread one thing's requests over processes.

Usage::

    partition = Partition(index=1, count=4)
    if partition.owns(thing_of_topic(topic) or ""): ...
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

#: The most processes one cloud runs (``edgewise cloud up --workers``).
MAX_PROCESSES = 64
_THINGS_PREFIX = "$aws/things/"


@dataclass(frozen=True)
class Partition:
    """Process ``index`` of ``count``: it owns the things whose CRC-32 modulo ``count`` is ``index``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_PROCESSES:
            raise ValueError(
                f"Partition 'count' is invalid: {self.count} is not between 1 and {MAX_PROCESSES}"
            )
        if not 0 <= self.index < self.count:
            raise ValueError(
                f"Partition 'index' is invalid: {self.index} is not between 0 and {self.count - 1}"
            )

    def owns(self, thing: str) -> bool:
        """Whether this process answers for ``thing``."""
        return zlib.crc32(thing.encode("utf-8", "surrogatepass")) % self.count == self.index


def thing_of_topic(topic: str) -> str | None:
    """The thing a device topic ``$aws/things/<thing>/...`` is about, or None for any other topic.

    Every topic a partitioned worker subscribes to (jobs, resolve, shadows, logs, fleet status and presence) has
    this shape; the broker lets a device publish only under its own thing's prefix.
    """
    if not topic.startswith(_THINGS_PREFIX):
        return None
    thing, separator, _rest = topic[len(_THINGS_PREFIX) :].partition("/")
    return thing if separator and thing else None

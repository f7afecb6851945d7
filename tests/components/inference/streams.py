"""A stand-in for the stream manager in the inference component's unit tests: streams kept in memory."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from typing import Any


class MemoryStreams:
    """Appends decoded into lists per stream; ``hold`` cleared makes appends wait, to fill the queue."""

    def __init__(self) -> None:
        self.messages: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.hold = threading.Event()
        self.hold.set()
        self.opened = 0

    def open(self) -> MemoryStreams:
        self.opened += 1
        return self

    def append(self, stream: str, data: bytes) -> None:
        self.hold.wait()
        self.messages[stream].append(json.loads(data))

    def close(self) -> None:
        pass

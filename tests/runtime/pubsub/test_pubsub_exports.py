"""The pub/sub package exports exactly its public names."""

from __future__ import annotations

import edgewise.runtime.pubsub as pubsub


def test_all_lists_every_public_name_once() -> None:
    public = {name for name in vars(pubsub) if not name.startswith("_")}
    assert set(pubsub.__all__) == public - {"bus"}  # the bus submodule itself
    assert len(pubsub.__all__) == len(set(pubsub.__all__))

"""The broker package exports exactly what ``__all__`` lists."""

from __future__ import annotations

import edgewise.cloud.broker as broker


def test_all_lists_every_public_name() -> None:
    public = {name for name in vars(broker) if not name.startswith("_") and name != "annotations"}
    modules = {
        "acl",
        "config",
        "connection",
        "errors",
        "hook",
        "orphans",
        "permissions",
        "process",
        "routes",
        "sync",
    }
    assert set(broker.__all__) == public - modules

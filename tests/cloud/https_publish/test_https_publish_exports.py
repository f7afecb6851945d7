"""The HTTPS publish package exports exactly its public names."""

from __future__ import annotations

from edgewise.cloud import https_publish


def test_all_lists_every_public_name_once() -> None:
    public = {name for name in vars(https_publish) if not name.startswith("_")}
    submodules = {"annotations", "authorization", "errors", "request", "server", "uploads", "worker"}

    assert set(https_publish.__all__) == public - submodules
    assert len(https_publish.__all__) == len(set(https_publish.__all__))

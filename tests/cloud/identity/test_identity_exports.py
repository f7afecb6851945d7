"""The identity package exports exactly its public names."""

from __future__ import annotations

import edgewise.cloud.identity as identity


def test_all_lists_every_public_name_once() -> None:
    public = {name for name in vars(identity) if not name.startswith("_")}
    submodules = {"annotations", "ca", "certificates", "errors", "models", "policy", "routes"}
    submodules |= {"schemas", "service"}
    assert set(identity.__all__) == public - submodules
    assert len(identity.__all__) == len(set(identity.__all__))

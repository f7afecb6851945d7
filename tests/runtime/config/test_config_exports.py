"""The configuration package exports exactly its public names."""

from __future__ import annotations

import edgewise.runtime.config as config


def test_all_lists_every_public_name_once() -> None:
    public = {name for name in vars(config) if not name.startswith("_")}
    not_exported = {"annotations", "errors"}  # the __future__ import and the errors submodule
    assert set(config.__all__) == public - not_exported
    assert len(config.__all__) == len(set(config.__all__))

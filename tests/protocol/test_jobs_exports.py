"""The Jobs protocol package exports exactly what its ``__all__`` lists."""

from __future__ import annotations

import types

from edgewise.protocol import jobs


def test_all_lists_every_public_name() -> None:
    public = {name for name in vars(jobs) if not name.startswith("_")} - {"annotations"}
    submodules = {name for name, value in vars(jobs).items() if isinstance(value, types.ModuleType)}
    assert sorted(public - submodules) == sorted(jobs.__all__)

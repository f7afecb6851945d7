"""The ``edgewise.runtime.ipc`` package exports exactly what ``__all__`` lists."""

from __future__ import annotations

import types

import edgewise.runtime.ipc as ipc


def test_all_lists_every_public_name_of_the_package() -> None:
    public = {
        name
        for name, value in vars(ipc).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }

    assert set(ipc.__all__) == public

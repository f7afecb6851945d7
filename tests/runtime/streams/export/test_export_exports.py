"""The ``edgewise.runtime.streams.export`` package exports exactly what ``__all__`` lists, sorted."""

from __future__ import annotations

import types

import edgewise.runtime.streams.export as export


def test_all_lists_every_public_name_of_the_package_in_order() -> None:
    public = {
        name
        for name, value in vars(export).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }

    assert set(export.__all__) == public
    assert export.__all__ == sorted(export.__all__)

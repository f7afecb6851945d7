"""The ``edgewise.runtime.cloudlink`` package exports exactly what ``__all__`` lists, sorted."""

from __future__ import annotations

import types

import edgewise.runtime.cloudlink as cloudlink


def test_all_lists_every_public_name_of_the_package_in_order() -> None:
    public = {
        name
        for name, value in vars(cloudlink).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }

    assert set(cloudlink.__all__) == public
    assert cloudlink.__all__ == sorted(cloudlink.__all__)

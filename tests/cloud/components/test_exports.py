"""The component and data plane packages export exactly what their ``__all__`` lists."""

from __future__ import annotations

import types

import pytest

from edgewise.cloud import components, dataplane


@pytest.mark.parametrize("package", [components, dataplane])
def test_all_lists_every_public_name(package: types.ModuleType) -> None:
    public = {name for name in vars(package) if not name.startswith("_")} - {"annotations"}
    submodules = {name for name, value in vars(package).items() if isinstance(value, types.ModuleType)}
    assert sorted(public - submodules) == sorted(package.__all__)

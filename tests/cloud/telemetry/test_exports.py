"""The telemetry package exports exactly what its ``__all__`` lists."""

from __future__ import annotations

import types

from edgewise.cloud import telemetry


def test_all_lists_every_public_name() -> None:
    public = {name for name in vars(telemetry) if not name.startswith("_")} - {"annotations"}
    submodules = {name for name, value in vars(telemetry).items() if isinstance(value, types.ModuleType)}
    assert sorted(public - submodules) == sorted(telemetry.__all__)

"""The ``edgewise.runtime.cloudlink`` package exports exactly what ``__all__`` lists, sorted; the names that
need paho-mqtt load on first use."""

from __future__ import annotations

import subprocess
import sys
import types

import edgewise.runtime.cloudlink as cloudlink


def test_all_lists_every_public_name_of_the_package_in_order() -> None:
    public = {
        name
        for name, value in vars(cloudlink).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name not in ("annotations", "Any", "TYPE_CHECKING")
    } | set(cloudlink._LAZY)

    assert set(cloudlink.__all__) == public
    assert cloudlink.__all__ == sorted(cloudlink.__all__)
    for name in cloudlink.__all__:
        assert getattr(cloudlink, name) is not None


def test_the_runtime_imports_no_mqtt_client_until_a_cloud_link_is_configured() -> None:
    probe = "import sys, edgewise.runtime.__main__; print(sorted(m for m in ('paho', 'cryptography', 'sqlite3') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

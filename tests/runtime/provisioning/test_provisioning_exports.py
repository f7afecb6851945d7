"""The ``edgewise.runtime.provisioning`` package exports exactly what ``__all__`` lists (ruff keeps it sorted);
the names that need paho-mqtt and cryptography load on first use."""

from __future__ import annotations

import subprocess
import sys
import types

import edgewise.runtime.provisioning as provisioning


def test_all_lists_every_public_name_of_the_package_once() -> None:
    public = {
        name
        for name, value in vars(provisioning).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name not in ("annotations", "Any", "TYPE_CHECKING")
    } | set(provisioning._LAZY)

    assert set(provisioning.__all__) == public
    assert len(provisioning.__all__) == len(set(provisioning.__all__))
    for name in provisioning.__all__:
        assert getattr(provisioning, name) is not None


def test_writing_a_device_directory_imports_no_mqtt_client() -> None:
    probe = (
        "import sys; from edgewise.runtime.provisioning import write_device_directory; "
        "print(sorted(m for m in ('paho', 'cryptography') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

"""``edgewise.runtime.fleet`` exports exactly what ``__all__`` lists, sorted; the runtime loads it only with a
cloud section."""

from __future__ import annotations

import subprocess
import sys
import types

import edgewise.runtime.fleet as fleet


def test_all_lists_every_public_name_of_the_package_in_order() -> None:
    public = {
        name
        for name, value in vars(fleet).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }

    assert set(fleet.__all__) == public
    assert fleet.__all__ == sorted(fleet.__all__)


def test_the_runtime_does_not_load_the_agent_or_http_without_a_cloud_section() -> None:
    probe = (
        "import sys, edgewise.runtime.__main__, edgewise.runtime.kernel; "
        "print(sorted(m for m in ('edgewise.runtime.fleet', 'http.client') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

"""The deployment package exports exactly what ``__all__`` lists, and other packages import nothing past it."""

from __future__ import annotations

import re
import types
from pathlib import Path

import edgewise
import edgewise.runtime.deployment as deployment

SOURCE = Path(edgewise.__file__).parent


def test_all_lists_every_public_name_of_the_package() -> None:
    public = {
        name
        for name, value in vars(deployment).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }

    assert set(deployment.__all__) == public
    assert len(deployment.__all__) == len(public)


def test_other_packages_import_the_package_not_its_modules() -> None:
    past = re.compile(r"^\s*from (edgewise\.runtime\.deployment\.\w+) import", re.MULTILINE)
    found = {
        (str(path.relative_to(SOURCE)), module)
        for path in SOURCE.rglob("*.py")
        if "runtime/deployment" not in path.as_posix()
        for module in past.findall(path.read_text("utf-8"))
    }

    assert found == set()

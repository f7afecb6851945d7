"""The lifecycle package exports exactly what ``__all__`` lists."""

from __future__ import annotations

import edgewise.runtime.lifecycle as lifecycle


def test_all_lists_every_public_name_and_only_those() -> None:
    public = {name for name in vars(lifecycle) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(lifecycle, name)).__name__ == "module"}

    assert sorted(lifecycle.__all__) == sorted(public - modules)

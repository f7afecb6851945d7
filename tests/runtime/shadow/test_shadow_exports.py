"""The public surface of edgewise.runtime.shadow is exactly what ``__all__`` lists."""

from __future__ import annotations
import __future__

import types

import edgewise.runtime.shadow as package


def test_all_lists_exactly_the_public_names() -> None:
    exported = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType | __future__._Feature)
    }

    assert set(package.__all__) == exported
    assert sorted(package.__all__) == sorted(set(package.__all__))


def test_public_names_say_they_belong_to_the_package_or_the_shared_shadow_protocol() -> None:
    for name in package.__all__:
        value = getattr(package, name)
        module = getattr(value, "__module__", package.__name__)
        assert module.startswith((package.__name__, "edgewise.protocol.shadow.")), name

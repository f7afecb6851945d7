"""The public surface of edgewise.recipe is exactly what ``__all__`` lists; the parsers load on first use."""

from __future__ import annotations
import __future__

import types

import edgewise.recipe


def test_all_lists_exactly_the_public_names() -> None:
    exported = {
        name
        for name, value in vars(edgewise.recipe).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType | __future__._Feature)
    }

    assert set(edgewise.recipe.__all__) == exported | edgewise.recipe._LAZY
    assert sorted(edgewise.recipe.__all__) == sorted(set(edgewise.recipe.__all__))


def test_public_names_say_they_belong_to_the_package() -> None:
    for name in edgewise.recipe.__all__:
        value = getattr(edgewise.recipe, name)
        module = getattr(value, "__module__", "edgewise.recipe")
        assert module.startswith("edgewise.recipe"), name

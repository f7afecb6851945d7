"""The error tree drawn in ``edgewise.errors``' docstring names exactly the ``EdgewiseError`` subclasses in src/,
and no two of them share a name."""

from __future__ import annotations

import ast
import functools
import re
from collections import Counter
from pathlib import Path

import edgewise
from edgewise import errors

SOURCE = Path(edgewise.__file__).parent
#: A tree line: box-drawing prefix, then a dotted class name or a package name ending in ``/``.
TREE_ENTRY = re.compile(r"[├└]── ([\w.]+/?)")


# Parsed once for both tests: parsing every module of src/ takes seconds.
@functools.cache
def _edgewise_errors() -> tuple[str, ...]:
    """The names of every EdgewiseError subclass in src/, once per definition."""
    classes = _classes()
    names = {"EdgewiseError"}
    grew = True
    while grew:
        grew = False
        for name, bases in classes:
            if name not in names and bases & names:
                names.add(name)
                grew = True
    return tuple(name for name, bases in classes if name in names and bases & names)


def _classes() -> list[tuple[str, set[str]]]:
    """Every class defined in src/edgewise: its name and the names of its bases (last dotted part)."""
    found: list[tuple[str, set[str]]] = []
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                found.append((node.name, {ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases}))
    return found


def _classes_in_tree() -> set[str]:
    assert errors.__doc__ is not None
    entries = TREE_ENTRY.findall(errors.__doc__)
    return {entry.rsplit(".", 1)[-1] for entry in entries if not entry.endswith("/")}


def test_error_tree_names_every_edgewise_error_and_nothing_else() -> None:
    in_source = set(_edgewise_errors())
    in_tree = _classes_in_tree()

    assert in_source - in_tree == set(), "add these to the tree in src/edgewise/errors.py"
    assert in_tree - in_source == set(), "these are in the tree but no longer in src/"


def test_no_two_edgewise_errors_share_a_name() -> None:
    counts = Counter(_edgewise_errors())

    assert {name for name, count in counts.items() if count > 1} == set()

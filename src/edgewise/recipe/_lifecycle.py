"""Choosing the lifecycle a component runs and reading it into :class:`Lifecycle`.

A manifest's own non-empty ``Lifecycle`` is used as written. Otherwise the recipe's global ``Lifecycle``
is filtered by the manifest's ``Selections``, the way Greengrass Classic filters it:

- the selection keywords of a recipe are every key listed in any manifest's ``Selections``, plus ``all``;
- wherever a mapping (at any depth: the whole lifecycle, a step, a ``Script``, a ``Setenv``) has a
  keyword among its keys, it is replaced by the value under the manifest's first selection present at
  that level, else by the value under ``all``, else it disappears; its other keys are ignored;
- selection keys are matched exactly (they are labels the author chose, not recipe fields).

Recipe fields inside a lifecycle (step names, ``Script``, ``Timeout``, ``Setenv``, ``errorResetTime``...)
match case-insensitively, and step names come out in the canonical spelling of :data:`STEP_NAMES`.
A step object without ``Script`` has nothing to run: it becomes a step whose script is ``""``.
A ``null`` in ``Setenv`` becomes an empty string.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from edgewise.recipe._errors import Problems, RecipeError
from edgewise.recipe._fields import (
    Fields,
    child,
    describe,
    expect_bool,
    expect_mapping,
    expect_positive_number,
    expect_text,
    item,
    scalar_text,
)
from edgewise.recipe._model import STEP_NAMES, Lifecycle, LifecycleStep, Manifest, Recipe, Skipif

ALL_SELECTION = "all"

_SKIPIF = re.compile(r"\s*(!?)\s*(onpath|exists)\s+(.*?)\s*", re.IGNORECASE | re.DOTALL)


def selection_keywords(manifests: Iterable[Manifest]) -> frozenset[str]:
    """Every selection key the recipe's manifests use, plus ``all``."""
    keywords = {ALL_SELECTION}
    for manifest in manifests:
        keywords.update(manifest.selections)
    return frozenset(keywords)


class LifecycleReader:
    """Reads a raw lifecycle mapping into a :class:`Lifecycle`, recording problems as it goes.

    With ``keywords`` empty nothing is filtered (a manifest's own lifecycle); otherwise selection
    filtering is applied at every level for a manifest whose selections are ``selections``.
    """

    def __init__(
        self, problems: Problems, *, keywords: Collection[str] = frozenset(), selections: Iterable[str] = ()
    ) -> None:
        self.problems = problems
        self.keywords = frozenset(keywords)
        self.selections = (*selections, ALL_SELECTION)

    def read(self, raw: Any, path: str) -> Lifecycle:
        """The lifecycle at ``path``; an unusable one reads as empty (with problems recorded)."""
        value, path = self._select(raw, path)
        if value is None:
            return Lifecycle()
        mapping = expect_mapping(value, path, self.problems)
        if mapping is None:
            return Lifecycle()
        fields = Fields(mapping, path, self.problems)
        steps: dict[str, LifecycleStep] = {}
        for name in STEP_NAMES:
            step = self._step(*self._field(fields, name))
            if step is not None:
                steps[name] = step
        reset, reset_path = self._field(fields, "errorResetTime")
        return Lifecycle(
            steps=steps,
            setenv=self._setenv(*self._field(fields, "Setenv")),
            error_reset_time=None
            if reset is None
            else expect_positive_number(reset, reset_path, self.problems),
        )

    def _select(self, value: Any, path: str) -> tuple[Any, str]:
        while isinstance(value, Mapping) and any(
            key in self.keywords for key in value if isinstance(key, str)
        ):
            for selection in self.selections:
                chosen = value.get(selection)
                if chosen is not None:
                    value, path = chosen, child(path, selection)
                    break
            else:
                return None, path
        return value, path

    def _field(self, fields: Fields, name: str) -> tuple[Any, str]:
        return self._select(fields.get(name), fields.path_of(name))

    def _step(self, value: Any, path: str) -> LifecycleStep | None:
        if value is None:
            return None
        if isinstance(value, str):
            return LifecycleStep(script=self._script(value, path))
        if not isinstance(value, Mapping):
            self.problems.add(path, f"expected a script or a mapping with Script, got {describe(value)}")
            return None
        fields = Fields(value, path, self.problems)
        script, script_path = self._field(fields, "Script")
        timeout, timeout_path = self._field(fields, "Timeout")
        privilege, privilege_path = self._field(fields, "RequiresPrivilege")
        skipif, skipif_path = self._field(fields, "Skipif")
        text = None if script is None else expect_text(script, script_path, self.problems)
        return LifecycleStep(
            script="" if text is None else self._script(text, script_path),
            timeout=None if timeout is None else expect_positive_number(timeout, timeout_path, self.problems),
            requires_privilege=privilege is not None
            and bool(expect_bool(privilege, privilege_path, self.problems)),
            setenv=self._setenv(*self._field(fields, "Setenv")),
            skipif=None if skipif is None else self._skipif(skipif, skipif_path),
        )

    def _script(self, script: str, path: str) -> str:
        if "\0" in script:
            self.problems.add(path, "contains a NUL character, which no shell command can hold")
        return script

    def _skipif(self, value: Any, path: str) -> Skipif | None:
        text = expect_text(value, path, self.problems)
        if text is None:
            return None
        match = _SKIPIF.fullmatch(text)
        if match is None or not match[3]:
            self.problems.add(
                path,
                f"expected 'onpath <executable>' or 'exists <path>', optionally after '!', "
                f"got {describe(text)}",
            )
            return None
        return Skipif(check=match[2].casefold(), target=self._script(match[3], path), negate=bool(match[1]))

    def _setenv(self, value: Any, path: str) -> dict[str, str]:
        if value is None:
            return {}
        mapping = expect_mapping(value, path, self.problems)
        if mapping is None:
            return {}
        variables: dict[str, str] = {}
        for name, raw in mapping.items():
            if not isinstance(name, str) or not name or "=" in name or "\0" in name:
                self.problems.add(path, f"{describe(name)} is not a valid environment variable name")
                continue
            if raw is None:
                variables[name] = ""
                continue
            selected, variable_path = self._select(raw, child(path, name))
            if selected is None:
                continue
            text = scalar_text(selected)
            if text is None:
                self.problems.add(
                    variable_path, f"expected a string, number or boolean, got {describe(selected)}"
                )
            elif "\0" in text:
                self.problems.add(
                    variable_path, "contains a NUL character, which no environment variable can hold"
                )
            else:
                variables[name] = text
        return variables


def manifest_path(recipe: Recipe, manifest: Manifest) -> str:
    """``Manifests[i]`` for a manifest of ``recipe``; ``Manifests[?]`` for one from elsewhere."""
    for index, candidate in enumerate(recipe.manifests):
        if candidate is manifest:
            return item("Manifests", index)
    for index, candidate in enumerate(recipe.manifests):
        if candidate == manifest:
            return item("Manifests", index)
    return "Manifests[?]"


def select_lifecycle(recipe: Recipe, manifest: Manifest) -> Lifecycle:
    """The lifecycle ``manifest`` (normally from :func:`select_manifest`) runs.

    The manifest's own lifecycle if it is not empty, else the global lifecycle filtered by the
    manifest's selections (``all`` when it has none). Raises :class:`RecipeError` if the chosen
    lifecycle is invalid, which :func:`parse_recipe` has already ruled out for parsed recipes.
    """
    problems = Problems()
    if manifest.lifecycle:
        lifecycle = LifecycleReader(problems).read(
            manifest.lifecycle, child(manifest_path(recipe, manifest), "Lifecycle")
        )
    else:
        reader = LifecycleReader(
            problems, keywords=selection_keywords(recipe.manifests), selections=manifest.selections
        )
        lifecycle = reader.read(recipe.global_lifecycle, "Lifecycle")
    if problems:
        raise RecipeError(f"{recipe.name} {recipe.version}", problems.items)
    return lifecycle


def check_global_lifecycle(raw: Any, manifests: Iterable[Manifest], problems: Problems) -> None:
    """Record the problems of the global lifecycle as each manifest that would use it sees it.

    Only the branches some manifest selects are checked: a branch nobody selects never runs. A recipe
    without manifests uses the global lifecycle with the ``all`` selection.
    """
    manifests = tuple(manifests)
    keywords = selection_keywords(manifests)
    users = [manifest.selections for manifest in manifests if not manifest.lifecycle] if manifests else [()]
    for selections in dict.fromkeys(users):
        LifecycleReader(problems, keywords=keywords, selections=selections).read(raw, "Lifecycle")

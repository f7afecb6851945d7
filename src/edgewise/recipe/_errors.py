"""The recipe error: every problem found in a recipe, each with the path of the field at fault."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edgewise.errors import EdgewiseError


@dataclass(frozen=True)
class RecipeProblem:
    """One thing wrong with a recipe.

    ``path`` names the field the way the recipe reference spells it, with list indexes and user-chosen
    keys as written, e.g. ``Manifests[0].Lifecycle.Run.Timeout``; it is empty for the document itself.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class RecipeError(EdgewiseError):
    """A recipe that cannot be used. ``problems`` lists everything wrong with it, not just the first."""

    def __init__(self, source_name: str, problems: Iterable[RecipeProblem]) -> None:
        self.source_name = source_name
        self.problems = list(problems)
        count = len(self.problems)
        header = f"Recipe {source_name} is invalid ({count} problem{'' if count == 1 else 's'}):"
        super().__init__("\n".join([header, *(str(problem) for problem in self.problems)]))


class Problems:
    """Collects problems while a recipe is read, so that one pass reports all of them."""

    def __init__(self) -> None:
        self.items: list[RecipeProblem] = []
        self._seen: set[RecipeProblem] = set()

    def add(self, path: str, message: str) -> None:
        """Record a problem; the same problem found twice (e.g. under two selections) is kept once."""
        problem = RecipeProblem(path, message)
        if problem not in self._seen:
            self._seen.add(problem)
            self.items.append(problem)

    def __bool__(self) -> bool:
        return bool(self.items)

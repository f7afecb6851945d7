"""Dependency resolution: which version of every component a deployment runs. Pure: no I/O.

Each component gets the highest available version that satisfies the requirement of every dependent
(the deployment's roots included). The search decides components in the order they are discovered
(roots first, then dependencies breadth-first) and backtracks when a choice leads to a conflict.
Conflicts record which decisions caused them, so the search jumps straight back to a decision that
can make a difference instead of retrying every combination of unrelated ones (conflict-directed
backjumping). When no assignment exists, the error describes the first conflict met on the most
preferred path, naming every requirement on the component that could not be resolved.

Built-in components (the runtime's own services) are never chosen from recipes: a built-in serves every
requirement on its major line (:mod:`edgewise.aws_components`), and the result records what was requested of it
next to what it serves. A name in an AWS namespace with no recipe and no built-in is an AWS component Edgewise
does not provide: needing one is a conflict naming it, so a dependent version that does without it is chosen if
there is one, and the deployment fails otherwise. A dependency cycle is a conflict too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edgewise.aws_components import is_aws_component, served_note, serves, unprovided_problem
from edgewise.errors import EdgewiseError
from edgewise.recipe import Recipe
from edgewise.runtime.deployment.errors import DeploymentError
from edgewise.versions import Requirement, Version, VersionError

DEPLOYMENT = "the deployment"


@dataclass(frozen=True)
class Resolution:
    """The outcome of :func:`resolve`."""

    components: dict[str, Recipe]  #: chosen version of every non-builtin component, roots and dependencies
    builtins: dict[str, str]  #: built-in names referenced -> the version the runtime serves
    #: built-in names referenced -> what was asked of them: the deployment's requirement where it names the
    #: built-in, otherwise its dependents' requirements (", " between distinct ones)
    requested: dict[str, str]


class ResolutionError(EdgewiseError):
    """No set of component versions satisfies every requirement.

    ``component`` is the component that could not be resolved (the first one of a cycle).
    """

    def __init__(self, message: str, *, component: str) -> None:
        super().__init__(message)
        self.component = component


@dataclass(frozen=True)
class _Constraint:
    source: str | None  #: the dependent component, None for the deployment itself
    label: str  #: "A 1.0.0" or "the deployment"
    requirement: Requirement


class _Conflict(Exception):
    """Internal: a dead end of the search, turned into ResolutionError by resolve()."""

    def __init__(self, message: str, component: str, culprits: frozenset[str]) -> None:
        super().__init__(message)
        self.message = message
        self.component = component
        self.culprits = culprits  #: decisions whose change might remove the conflict


@dataclass(frozen=True)
class _State:
    chosen: Mapping[str, Recipe]
    versions: Mapping[str, Version]
    constraints: Mapping[str, tuple[_Constraint, ...]]
    pending: tuple[str, ...]


def resolve(
    roots: Mapping[str, str],
    candidates: Mapping[str, Sequence[Recipe]],
    *,
    builtins: Mapping[str, str],
) -> Resolution:
    """Choose a version of every component ``roots`` need.

    ``roots`` maps each component the deployment names to a requirement (often an exact version);
    ``candidates`` holds every available recipe by component name; ``builtins`` maps built-in
    component names to the version the runtime provides. Raises :class:`ResolutionError`.
    """
    resolver = _Resolver(candidates, builtins)
    state = _State(chosen={}, versions={}, constraints={}, pending=())
    try:
        for name, text in roots.items():
            state = resolver.constrain(state, name, _Constraint(None, DEPLOYMENT, _requirement(name, text)))
        final = resolver.search(state)
    except _Conflict as conflict:
        raise ResolutionError(conflict.message, component=conflict.component) from None
    return resolver.result(final)


def _requirement(name: str, text: str, label: str = DEPLOYMENT, source: str | None = None) -> Requirement:
    try:
        return Requirement.parse(text)
    except VersionError as exc:
        msg = f"Cannot resolve {name}: {label} needs it at {text!r}, which is not a valid version requirement"
        raise _Conflict(msg, name, frozenset() if source is None else frozenset({source})) from exc


class _Resolver:
    def __init__(self, candidates: Mapping[str, Sequence[Recipe]], builtins: Mapping[str, str]) -> None:
        self.builtins = {name: Version.parse(version) for name, version in builtins.items()}
        self.available: dict[str, list[tuple[Version, Recipe]]] = {}
        for name, recipes in candidates.items():
            by_version: dict[Version, Recipe] = {}
            for recipe in recipes:
                if recipe.name != name:
                    msg = f"Candidate recipe {recipe.name} {recipe.version} is listed under {name!r}"
                    raise ValueError(msg)
                by_version.setdefault(Version.parse(recipe.version), recipe)
            self.available[name] = sorted(by_version.items(), key=lambda pair: pair[0], reverse=True)

    def constrain(self, state: _State, name: str, constraint: _Constraint) -> _State:
        """``state`` with one more requirement on ``name``; raises _Conflict if it cannot hold."""
        constraints = {**state.constraints, name: (*state.constraints.get(name, ()), constraint)}
        needs = f"Cannot resolve {name}: {_needs(name, constraints[name])}"
        blame = _sources(constraints[name])
        if name in self.builtins:
            if not serves(self.builtins[name], constraint.requirement):
                raise _Conflict(f"{needs} ({served_note(self.builtins[name])})", name, blame)
        elif name in state.versions:
            if not constraint.requirement.allows(state.versions[name]):
                raise _Conflict(f"{needs} (available: {self._listing(name)})", name, blame | {name})
        elif name not in self.available:
            if is_aws_component(name):
                raise _Conflict(f"{needs}, but {unprovided_problem(name)}", name, blame)
            raise _Conflict(f"{needs}, but no recipe for {name} is available", name, blame)
        elif name not in state.pending:
            return _State(state.chosen, state.versions, constraints, (*state.pending, name))
        return _State(state.chosen, state.versions, constraints, state.pending)

    def search(self, state: _State) -> _State:
        """Decide every pending component; raises the first _Conflict met when no choice works."""
        if not state.pending:
            return state
        name, rest = state.pending[0], state.pending[1:]
        constraints = state.constraints[name]
        blame = _sources(constraints)
        options = [
            (version, recipe)
            for version, recipe in self.available[name]
            if all(constraint.requirement.allows(version) for constraint in constraints)
        ]
        if not options:
            msg = f"Cannot resolve {name}: {_needs(name, constraints)} (available: {self._listing(name)})"
            raise _Conflict(msg, name, blame)
        first: _Conflict | None = None
        culprits: set[str] = set()
        for version, recipe in options:
            try:
                return self.search(self._choose(state, rest, name, version, recipe))
            except _Conflict as conflict:
                if name not in conflict.culprits:
                    raise  # no other version of this component can help: jump further back
                if first is None:
                    first = conflict
                culprits |= conflict.culprits
        assert first is not None
        raise _Conflict(first.message, first.component, frozenset(culprits - {name}) | blame)

    def _choose(
        self, state: _State, rest: tuple[str, ...], name: str, version: Version, recipe: Recipe
    ) -> _State:
        chosen = {**state.chosen, name: recipe}
        state = _State(chosen, {**state.versions, name: version}, state.constraints, rest)
        self._check_cycle(chosen, name)
        label = f"{name} {version}"
        for dependency in recipe.dependencies.values():
            requirement = _requirement(dependency.name, dependency.version_requirement, label, name)
            state = self.constrain(state, dependency.name, _Constraint(name, label, requirement))
        return state

    def _check_cycle(self, chosen: Mapping[str, Recipe], start: str) -> None:
        """Raise a _Conflict if the newly chosen ``start`` closes a cycle among chosen components."""
        path = [start]
        explored = {start}
        iterators = [iter(chosen[start].dependencies)]
        while iterators:
            dependency = next(iterators[-1], None)
            if dependency is None:
                iterators.pop()
                path.pop()
            elif dependency == start:
                raise self._cycle(chosen, path)
            elif dependency in chosen and dependency not in explored:
                explored.add(dependency)
                path.append(dependency)
                iterators.append(iter(chosen[dependency].dependencies))

    @staticmethod
    def _cycle(chosen: Mapping[str, Recipe], members: list[str]) -> _Conflict:
        # Shown from the member decided first, which is usually the one the user knows best.
        order = list(chosen)
        pivot = min(range(len(members)), key=lambda index: order.index(members[index]))
        cycle = [*members[pivot:], *members[:pivot]]
        shown = " -> ".join(f"{name} {chosen[name].version}" for name in [*cycle, cycle[0]])
        return _Conflict(f"Dependency cycle: {shown}", cycle[0], frozenset(cycle))

    def _listing(self, name: str) -> str:
        versions = sorted(version for version, _ in self.available.get(name, ()))
        return ", ".join(str(version) for version in versions) or "none"

    def result(self, state: _State) -> Resolution:
        builtins = {name: str(self.builtins[name]) for name in state.constraints if name in self.builtins}
        requested = {name: _requested(state.constraints[name]) for name in builtins}
        return Resolution(components=dict(state.chosen), builtins=builtins, requested=requested)


def _sources(constraints: Sequence[_Constraint]) -> frozenset[str]:
    return frozenset(constraint.source for constraint in constraints if constraint.source is not None)


def _requested(constraints: Sequence[_Constraint]) -> str:
    from_deployment = [str(c.requirement) for c in constraints if c.source is None]
    texts = from_deployment or [str(c.requirement) for c in constraints]
    return ", ".join(dict.fromkeys(texts))


def _needs(name: str, constraints: Sequence[_Constraint]) -> str:
    return ", ".join(
        f"{constraint.label} needs {name} {constraint.requirement}" for constraint in constraints
    )


def union_group_roots(groups: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The root components of every group together: a device runs its thing's and all its groups'.

    Raises:
        DeploymentError: two groups deploy one component at different versions; the message names both.
    """
    roots: dict[str, str] = {}
    owners: dict[str, str] = {}
    for group, members in sorted(groups.items()):
        for name, version in members.items():
            if name in roots and roots[name] != version:
                raise DeploymentError(
                    f"{name} is deployed at {roots[name]} by {owners[name]} and at {version} by {group}",
                    error_types=("COMPONENT_VERSION_CONFLICT",),
                )
            roots[name] = version
            owners.setdefault(name, group)
    return roots

"""Stage *resolve*: the root components of every group after the deployment, and one version of every component
they need, chosen over the installed recipes and those the deployment's source offers.

A device runs the root components of all its groups at once (its thing's and its thing groups' fleet
deployments, and local deployments), so a deployment to one group is resolved over the union of every group's
roots. When that fails on a device with several groups, the error names the groups through which the
component that could not be resolved is required.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from edgewise.aws_components import BUILTIN_VERSIONS
from edgewise.recipe import Recipe
from edgewise.runtime.deployment.document import DeploymentDocument
from edgewise.runtime.deployment.errors import DeploymentError
from edgewise.runtime.deployment.resolution import Resolution, ResolutionError, resolve, union_group_roots

Groups = dict[str, dict[str, str]]


@dataclass(frozen=True)
class ResolvedDeployment:
    """What stage *resolve* decided."""

    groups: Groups  #: every group's root components after the deployment
    roots: dict[str, str]  #: their union
    resolution: Resolution


def next_groups(document: DeploymentDocument, groups: Mapping[str, Mapping[str, str]]) -> Groups:
    """Every group's root components once ``document`` is applied to its group.

    Raises:
        DeploymentError: the document configures a component it does not deploy as a root component.
    """
    result: Groups = copy.deepcopy({name: dict(members) for name, members in groups.items()})
    roots = {} if document.replace_group_roots else dict(result.get(document.group) or {})
    for name in document.components_to_remove:
        roots.pop(name, None)
    roots.update(document.components_to_add)
    unknown = set(document.configuration) - set(roots)
    if unknown:
        raise DeploymentError(
            f"componentToConfiguration names {', '.join(sorted(unknown))}, which this deployment does not "
            "deploy as a root component",
            error_types=("REQUEST_ERROR",),
        )
    result[document.group] = roots
    return result


def candidates(
    installed: Mapping[str, Sequence[Recipe]], offered: Mapping[str, Sequence[Recipe]]
) -> dict[str, list[Recipe]]:
    """The recipes to choose from: the installed ones, replaced by the offered ones of the same version."""
    result = {name: list(recipes) for name, recipes in installed.items()}
    for name, recipes in offered.items():
        versions = {recipe.version for recipe in recipes}
        result[name] = [r for r in result.get(name, []) if r.version not in versions] + list(recipes)
    return result


def resolve_groups(
    groups: Mapping[str, Mapping[str, str]],
    candidates: Mapping[str, Sequence[Recipe]],
    *,
    builtins: Mapping[str, str] = BUILTIN_VERSIONS,
) -> Resolution:
    """Resolve the union of every group's root components: every group's version constraints hold at once.

    Raises:
        DeploymentError: two groups deploy one component at different versions, or no version set satisfies
            every requirement; with several groups, the message names the groups involved.
    """
    roots = union_group_roots(groups)
    try:
        return resolve(roots, candidates, builtins=builtins)
    except ResolutionError as exc:
        involved = [
            f"{group} ({', '.join(f'{name} {version}' for name, version in sorted(members.items()))})"
            for group, members in sorted(groups.items())
            if _reaches(members, exc.component, candidates)
        ]
        # A device with one group has nothing to tell apart: the message says what that group needs already.
        where = (
            f"; {exc.component} is required through {' and '.join(involved)}"
            if involved and len(groups) > 1
            else ""
        )
        raise DeploymentError(f"{exc}{where}", error_types=("DEPENDENCY_RESOLUTION_ERROR",)) from exc


def resolve_deployment(
    groups: Groups, installed: Mapping[str, Sequence[Recipe]], offered: Mapping[str, Sequence[Recipe]]
) -> ResolvedDeployment:
    """Choose the versions for ``groups`` (from :func:`next_groups`). Pure, but may take a while: call it in a
    thread.

    Raises:
        DeploymentError: see :func:`resolve_groups`.
    """
    resolution = resolve_groups(groups, candidates(installed, offered))
    return ResolvedDeployment(groups=groups, roots=union_group_roots(groups), resolution=resolution)


def _reaches(roots: Collection[str], target: str, candidates: Mapping[str, Sequence[Recipe]]) -> bool:
    """Whether ``target`` is one of ``roots`` or a dependency of some version of them, transitively."""
    seen: set[str] = set()
    frontier = list(roots)
    while frontier:
        name = frontier.pop()
        if name == target:
            return True
        if name in seen:
            continue
        seen.add(name)
        for recipe in candidates.get(name, ()):
            frontier.extend(recipe.dependencies)
    return False

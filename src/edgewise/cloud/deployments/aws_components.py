"""AWS-provided components in a deployment, checked when it is created (:mod:`edgewise.aws_components`).

A built-in (``aws.greengrass.Nucleus``, ``Cli``, ...) serves every version of its major line that a deployment
written for an older Greengrass pins; another major version is refused. An AWS component that Edgewise does not
provide (``aws.greengrass.DockerApplicationManager``, ...) and that nobody published to the registry is refused, whether the
deployment names it or a root component needs it through its dependencies: the registry has every recipe, so the
deployment fails here, naming the component, instead of on every device.

A dependency on a user component counts only when every published version that satisfies its requirement (the
versions a device would be offered) needs such a component, since a device picks a version that does without
one if there is one. Missing versions, bad requirements and cycles are the device's to report, as before.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from edgewise.aws_components import (
    BUILTIN_VERSIONS,
    is_aws_component,
    served_note,
    serves,
    unprovided_problem,
)
from edgewise.cloud.components import service as components
from edgewise.cloud.components.models import ComponentVersion
from edgewise.cloud.components.published import offered
from edgewise.cloud.deployments.schemas import ComponentDeploymentSpecification
from edgewise.cloud.errors import InvalidRequestError, NotFoundError
from edgewise.recipe import Recipe, RecipeError, parse_recipe
from edgewise.versions import Requirement, VersionError

DEPLOYMENT = "the deployment"


def check_aws_components(session: Session, roots: Mapping[str, ComponentDeploymentSpecification]) -> None:
    """Refuse a deployment that needs an AWS component Edgewise cannot serve.

    Raises:
        InvalidRequestError: on ``components``, naming every such component and what needs it.
    """
    walk = _Walk(session)
    problems = [
        problem
        for name, specification in sorted(roots.items())
        if (problem := walk.root_problem(name, specification.component_version)) is not None
    ]
    if problems:
        raise InvalidRequestError("components", "; ".join(problems))


class _Walk:
    """The registry's recipes, followed from the roots; remembers what it learnt about each version."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._published: dict[str, bool] = {}
        self._blocked: dict[tuple[str, str], str | None] = {}

    def root_problem(self, name: str, version: str) -> str | None:
        """Why the deployment cannot run ``name`` at ``version``, as far as AWS components go; None if it can."""
        if name in BUILTIN_VERSIONS:
            return self._builtin_problem(DEPLOYMENT, name, version)
        if self._unprovided(name):
            return f"{DEPLOYMENT} needs {name} {version}, but {unprovided_problem(name)}"
        try:
            row = components.get_component_version(self._session, name, version)
        except (NotFoundError, InvalidRequestError):
            return None  # the deployment's own check names a root version that is not published
        return self._blocker(row, frozenset())

    def _builtin_problem(self, who: str, name: str, requirement_text: str) -> str | None:
        try:
            requirement = Requirement.parse(requirement_text)
        except VersionError as exc:
            return f"{who} needs {name} at {requirement_text!r}: {exc}"
        served = BUILTIN_VERSIONS[name]
        if serves(served, requirement):
            return None
        return f"{who} needs {name} {requirement} ({served_note(served)})"

    def _unprovided(self, name: str) -> bool:
        if name in BUILTIN_VERSIONS or not is_aws_component(name):
            return False
        if name not in self._published:
            try:
                self._published[name] = bool(components.list_versions(self._session, name))
            except NotFoundError:
                self._published[name] = False
        return not self._published[name]

    def _blocker(self, row: ComponentVersion, visiting: frozenset[tuple[str, str]]) -> str | None:
        """Why every way of running ``row`` needs an AWS component Edgewise cannot serve; None if one does not."""
        key = (row.name, row.version)
        if key in visiting:
            return None
        if key not in self._blocked:
            try:
                recipe = parse_recipe(
                    components.recipe_document(row), source_name=f"{row.name} {row.version}"
                )
            except RecipeError:
                return None  # published recipes were valid; a device reports one that no longer parses
            self._blocked[key] = self._dependency_blocker(recipe, visiting | {key})
        return self._blocked[key]

    def _dependency_blocker(self, recipe: Recipe, visiting: frozenset[tuple[str, str]]) -> str | None:
        who = f"{recipe.name} {recipe.version}"
        for dependency in recipe.dependencies.values():
            name, text = dependency.name, dependency.version_requirement
            if name in BUILTIN_VERSIONS:
                problem = self._builtin_problem(who, name, text)
                if problem is not None:
                    return problem
            elif self._unprovided(name):
                return f"{who} needs {name} {text}, but {unprovided_problem(name)}"
            else:
                try:
                    requirement = Requirement.parse(text)
                except VersionError:
                    continue
                rows = offered(components.versions_of(self._session, name), requirement)
                reasons = [self._blocker(row, visiting) for row in rows]
                if rows and all(reasons):
                    return f"{who} needs {name} {text}, and {reasons[0]}"
        return None

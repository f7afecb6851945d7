"""Dependency resolution: highest satisfying versions, backtracking, builtins, AWS names, clear errors."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgewise.recipe import ComponentDependency, DependencyType, Recipe
from edgewise.runtime.deployment.resolution import Resolution, ResolutionError, resolve
from edgewise.versions import Requirement, Version

NUCLEUS = "aws.greengrass.Nucleus"
CLI = "aws.greengrass.Cli"
BUILTINS = {NUCLEUS: "2.12.0"}


def recipe(name: str, version: str, **dependencies: str) -> Recipe:
    """A recipe whose dependencies are given as name=requirement ("SOFT:" prefix for soft ones)."""
    parsed = {}
    for dependency, requirement in dependencies.items():
        real_name = dependency.replace("__", ".")
        kind = DependencyType.HARD
        if requirement.startswith("SOFT:"):
            kind, requirement = DependencyType.SOFT, requirement.removeprefix("SOFT:")
        parsed[real_name] = ComponentDependency(real_name, requirement, kind)
    return Recipe(name=name, version=version, dependencies=parsed)


def catalog(*recipes: Recipe) -> dict[str, list[Recipe]]:
    by_name: dict[str, list[Recipe]] = {}
    for item in recipes:
        by_name.setdefault(item.name, []).append(item)
    return by_name


def chosen(resolution: Resolution) -> dict[str, str]:
    return {name: item.version for name, item in resolution.components.items()}


def fails(roots: dict[str, str], candidates: dict[str, list[Recipe]]) -> ResolutionError:
    with pytest.raises(ResolutionError) as caught:
        resolve(roots, candidates, builtins=BUILTINS)
    return caught.value


def test_roots_and_their_dependencies_get_the_highest_satisfying_versions() -> None:
    candidates = catalog(
        recipe("A", "1.0.0", B="^1.0.0"),
        recipe("A", "1.1.0", B="^1.0.0", C="SOFT:>=2.0.0"),
        recipe("B", "1.0.0"),
        recipe("B", "1.4.2"),
        recipe("B", "2.0.0"),
        recipe("C", "2.0.0"),
        recipe("C", "3.0.0-beta.1"),
    )

    resolution = resolve({"A": "*"}, candidates, builtins=BUILTINS)

    assert chosen(resolution) == {"A": "1.1.0", "B": "1.4.2", "C": "2.0.0"}
    assert resolution.components["A"] is candidates["A"][1]
    assert resolution.builtins == {}
    assert resolution.requested == {}


def test_an_exact_root_version_is_honoured() -> None:
    candidates = catalog(recipe("A", "1.0.0"), recipe("A", "2.0.0"))

    assert chosen(resolve({"A": "1.0.0"}, candidates, builtins=BUILTINS)) == {"A": "1.0.0"}


def test_every_dependent_requirement_is_satisfied_at_once() -> None:
    candidates = catalog(
        recipe("A", "1.0.0", C=">=1.2.0"),
        recipe("B", "1.0.0", C="<1.5.0"),
        recipe("C", "1.1.0"),
        recipe("C", "1.4.0"),
        recipe("C", "1.6.0"),
    )

    assert chosen(resolve({"A": "*", "B": "*"}, candidates, builtins=BUILTINS))["C"] == "1.4.0"


def test_a_conflict_backtracks_to_an_older_version_of_the_dependent() -> None:
    candidates = catalog(
        recipe("A", "2.0.0", B=">=2.0.0"),
        recipe("A", "1.0.0", B="^1.0.0"),
        recipe("B", "1.5.0"),
        recipe("B", "2.1.0", D="<1.0.0"),
        recipe("D", "1.0.0"),
        recipe("C", "1.0.0", B="<2.0.0"),
    )

    resolution = resolve({"A": "*", "C": "*"}, candidates, builtins=BUILTINS)

    assert chosen(resolution) == {"A": "1.0.0", "C": "1.0.0", "B": "1.5.0"}


def test_a_choice_made_before_a_later_requirement_appeared_is_revisited() -> None:
    candidates = catalog(
        recipe("A", "1.0.0", B="*", D="*"),
        recipe("B", "2.0.0"),
        recipe("B", "1.0.0"),
        recipe("D", "1.0.0", B="<2.0.0"),
    )

    assert chosen(resolve({"A": "*"}, candidates, builtins=BUILTINS)) == {
        "A": "1.0.0",
        "B": "1.0.0",
        "D": "1.0.0",
    }


def test_a_dependency_that_only_an_abandoned_version_needed_is_left_out() -> None:
    candidates = catalog(
        recipe("A", "2.0.0", X="*", B="^2.0.0"),
        recipe("A", "1.0.0", B="^1.0.0"),
        recipe("B", "1.0.0"),
        recipe("X", "1.0.0"),
    )

    assert chosen(resolve({"A": "*"}, candidates, builtins=BUILTINS)) == {"A": "1.0.0", "B": "1.0.0"}


def test_conflicting_requirements_name_every_dependent_and_what_is_available() -> None:
    candidates = catalog(
        recipe("A", "1.0.0", B=">=2.0.0"),
        recipe("C", "1.2.0", B="<2.0.0"),
        recipe("B", "1.0.0"),
        recipe("B", "2.1.0"),
    )

    error = fails({"A": "1.0.0", "C": "1.2.0"}, candidates)

    assert str(error) == (
        "Cannot resolve B: A 1.0.0 needs B >=2.0.0, C 1.2.0 needs B <2.0.0 (available: 1.0.0, 2.1.0)"
    )
    assert error.component == "B"


def test_a_requirement_against_an_already_chosen_version_names_the_chain() -> None:
    candidates = catalog(
        recipe("A", "1.0.0", B=">=2.0.0", D="*"),
        recipe("B", "2.1.0"),
        recipe("B", "1.0.0"),
        recipe("D", "1.0.0", B="<2.0.0"),
    )

    error = fails({"A": "*"}, candidates)

    assert str(error) == (
        "Cannot resolve B: A 1.0.0 needs B >=2.0.0, D 1.0.0 needs B <2.0.0 (available: 1.0.0, 2.1.0)"
    )


def test_a_root_version_that_does_not_exist_is_reported() -> None:
    error = fails({"A": "3.0.0"}, catalog(recipe("A", "1.0.0"), recipe("A", "2.0.0")))

    assert str(error) == "Cannot resolve A: the deployment needs A 3.0.0 (available: 1.0.0, 2.0.0)"


def test_a_missing_component_names_who_needs_it() -> None:
    error = fails({"A": "*"}, catalog(recipe("A", "1.0.0", com__example__Gone="^1.0.0")))

    assert str(error) == (
        "Cannot resolve com.example.Gone: A 1.0.0 needs com.example.Gone ^1.0.0, "
        "but no recipe for com.example.Gone is available"
    )
    assert error.component == "com.example.Gone"


def test_a_missing_root_is_reported() -> None:
    error = fails({"com.example.Gone": "1.0.0"}, {})

    assert str(error) == (
        "Cannot resolve com.example.Gone: the deployment needs com.example.Gone 1.0.0, "
        "but no recipe for com.example.Gone is available"
    )


def test_a_component_listed_with_no_versions_shows_none_available() -> None:
    assert str(fails({"A": "*"}, {"A": []})) == "Cannot resolve A: the deployment needs A * (available: none)"


def test_a_dependency_cycle_is_named() -> None:
    candidates = catalog(
        recipe("A", "1.0.0", B="*"), recipe("B", "1.0.0", C="*"), recipe("C", "1.0.0", A="*")
    )

    error = fails({"A": "*"}, candidates)

    assert str(error) == "Dependency cycle: A 1.0.0 -> B 1.0.0 -> C 1.0.0 -> A 1.0.0"
    assert error.component == "A"


def test_soft_dependencies_count_for_cycles() -> None:
    candidates = catalog(recipe("A", "1.0.0", B="SOFT:*"), recipe("B", "1.0.0", A="SOFT:*"))

    assert str(fails({"A": "*"}, candidates)) == "Dependency cycle: A 1.0.0 -> B 1.0.0 -> A 1.0.0"


def test_a_cycle_is_avoided_when_another_version_breaks_it() -> None:
    candidates = catalog(
        recipe("A", "1.0.0", B="*"),
        recipe("B", "2.0.0", A="*"),
        recipe("B", "1.0.0"),
    )

    assert chosen(resolve({"A": "*"}, candidates, builtins=BUILTINS)) == {"A": "1.0.0", "B": "1.0.0"}


def test_builtins_are_checked_against_their_version_and_reported() -> None:
    candidates = catalog(recipe("A", "1.0.0", aws__greengrass__Nucleus=">=2.0.0 <3.0.0"))

    resolution = resolve({"A": "*"}, candidates, builtins=BUILTINS)

    assert chosen(resolution) == {"A": "1.0.0"}
    assert resolution.builtins == {NUCLEUS: "2.12.0"}
    assert resolution.requested == {NUCLEUS: ">=2.0.0 <3.0.0"}


@pytest.mark.parametrize("requirement", ["2.4.0", "^2.0.0", ">=2.5.0 <2.11.0", ">=2.13.0", "2.x", "*"])
def test_a_builtin_serves_every_requested_version_of_its_major_line(requirement: str) -> None:
    resolution = resolve({CLI: requirement}, {}, builtins={**BUILTINS, CLI: "2.12.0"})

    assert resolution.components == {}
    assert resolution.builtins == {CLI: "2.12.0"}
    assert resolution.requested == {CLI: requirement}


def test_a_builtin_reports_what_the_deployment_asked_over_what_dependents_asked() -> None:
    candidates = catalog(
        recipe("A", "1.0.0", aws__greengrass__Nucleus="^2.0.0"),
        recipe("B", "1.0.0", aws__greengrass__Nucleus=">=2.5.0 <2.11.0"),
        recipe("C", "1.0.0", aws__greengrass__Nucleus="^2.0.0"),
    )

    only_dependents = resolve({"A": "*", "B": "*", "C": "*"}, candidates, builtins=BUILTINS)
    pinned = resolve({"A": "*", "B": "*", NUCLEUS: "2.5.6"}, candidates, builtins=BUILTINS)

    assert only_dependents.requested == {NUCLEUS: "^2.0.0, >=2.5.0 <2.11.0"}
    assert pinned.requested == {NUCLEUS: "2.5.6"}


@pytest.mark.parametrize(
    "requirement", ["1.0.0", "^1.0.0", "<2.0.0", ">=3.0.0", "3.0.0-beta.1", "^1.0.0 || ^3.0.0"]
)
def test_a_builtin_requirement_on_another_major_version_names_component_request_and_served(
    requirement: str,
) -> None:
    with pytest.raises(ResolutionError) as caught:
        resolve({CLI: requirement}, {}, builtins={CLI: "2.12.0"})
    error = caught.value

    assert str(error) == (
        f"Cannot resolve aws.greengrass.Cli: the deployment needs aws.greengrass.Cli {requirement} "
        "(built in: 2.12.0, which serves major version 2 only)"
    )
    assert error.component == CLI


def test_a_builtin_requirement_that_is_not_met_is_an_error() -> None:
    candidates = catalog(recipe("A", "1.0.0", aws__greengrass__Nucleus=">=3.0.0"))

    assert str(fails({"A": "*"}, candidates)) == (
        "Cannot resolve aws.greengrass.Nucleus: A 1.0.0 needs aws.greengrass.Nucleus >=3.0.0 "
        "(built in: 2.12.0, which serves major version 2 only)"
    )


def test_a_builtin_requirement_backtracks_to_a_compatible_dependent() -> None:
    candidates = catalog(
        recipe("A", "2.0.0", aws__greengrass__Nucleus="^3.0.0"),
        recipe("A", "1.0.0", aws__greengrass__Nucleus=">=2.0.0"),
    )

    assert chosen(resolve({"A": "*"}, candidates, builtins=BUILTINS)) == {"A": "1.0.0"}


def test_a_builtin_wins_over_a_recipe_of_the_same_name() -> None:
    candidates = catalog(recipe(NUCLEUS, "2.14.0"), recipe("A", "1.0.0", aws__greengrass__Nucleus="*"))

    resolution = resolve({"A": "*", NUCLEUS: "2.12.0"}, candidates, builtins=BUILTINS)

    assert chosen(resolution) == {"A": "1.0.0"}
    assert resolution.builtins == {NUCLEUS: "2.12.0"}


UNPROVIDED = (
    "is an AWS-provided component that Edgewise does not provide (built in: aws.greengrass.Nucleus, "
    "aws.greengrass.Cli, aws.greengrass.LogManager, aws.greengrass.SecretManager, "
    "aws.greengrass.ShadowManager, aws.greengrass.StreamManager, aws.greengrass.clientdevices.Auth, "
    "aws.greengrass.clientdevices.mqtt.Moquette, aws.greengrass.clientdevices.mqtt.EMQX, "
    "aws.greengrass.clientdevices.mqtt.Bridge, aws.greengrass.clientdevices.IPDetector)"
)


def test_an_aws_component_edgewise_does_not_provide_fails_naming_it() -> None:
    error = fails({"aws.greengrass.DockerApplicationManager": "2.3.0"}, {})

    assert str(error) == (
        "Cannot resolve aws.greengrass.DockerApplicationManager: the deployment needs aws.greengrass.DockerApplicationManager 2.3.0, "
        f"but aws.greengrass.DockerApplicationManager {UNPROVIDED}"
    )
    assert error.component == "aws.greengrass.DockerApplicationManager"


@pytest.mark.parametrize("kind", ["", "SOFT:"])
def test_a_dependency_on_an_aws_component_edgewise_does_not_provide_fails_naming_it(kind: str) -> None:
    candidates = catalog(recipe("A", "1.0.0", aws__greengrass__DockerApplicationManager=f"{kind}^2.0.0"))

    error = fails({"A": "1.0.0"}, candidates)

    assert str(error) == (
        "Cannot resolve aws.greengrass.DockerApplicationManager: A 1.0.0 needs aws.greengrass.DockerApplicationManager ^2.0.0, "
        f"but aws.greengrass.DockerApplicationManager {UNPROVIDED}"
    )
    assert error.component == "aws.greengrass.DockerApplicationManager"


def test_every_aws_namespace_counts_as_aws_provided() -> None:
    candidates = catalog(recipe("A", "1.0.0", aws__iot__SiteWiseEdgePublisher="^2.0.0"))

    assert f"aws.iot.SiteWiseEdgePublisher {UNPROVIDED}" in str(fails({"A": "*"}, candidates))
    assert f"aws.greengrass.SecureTunneling {UNPROVIDED}" in str(
        fails({"aws.greengrass.SecureTunneling": "1.0.0"}, {})
    )


def test_a_dependent_version_that_does_without_an_unprovided_aws_component_is_chosen() -> None:
    candidates = catalog(
        recipe("A", "2.0.0", aws__greengrass__DockerApplicationManager="^2.0.0"),
        recipe("A", "1.0.0"),
    )

    assert chosen(resolve({"A": "*"}, candidates, builtins=BUILTINS)) == {"A": "1.0.0"}


def test_aws_components_with_recipes_are_resolved_like_any_other() -> None:
    candidates = catalog(
        recipe("aws.greengrass.DockerApplicationManager", "2.1.0"),
        recipe("aws.greengrass.DockerApplicationManager", "2.2.0"),
        recipe("A", "1.0.0", aws__greengrass__DockerApplicationManager="^2.0.0"),
    )

    resolution = resolve({"A": "*"}, candidates, builtins=BUILTINS)

    assert chosen(resolution) == {"A": "1.0.0", "aws.greengrass.DockerApplicationManager": "2.2.0"}
    assert resolution.builtins == {}


def test_invalid_requirements_are_errors_naming_the_text() -> None:
    error = fails({"A": "newest"}, catalog(recipe("A", "1.0.0")))
    assert (
        str(error)
        == "Cannot resolve A: the deployment needs it at 'newest', which is not a valid version requirement"
    )

    error = fails({"A": "*"}, catalog(recipe("A", "1.0.0", B="soon"), recipe("B", "1.0.0")))
    assert (
        str(error) == "Cannot resolve B: A 1.0.0 needs it at 'soon', which is not a valid version requirement"
    )


def test_a_version_with_an_invalid_requirement_is_passed_over_for_a_valid_one() -> None:
    candidates = catalog(recipe("A", "2.0.0", B="soon"), recipe("A", "1.0.0", B="*"), recipe("B", "1.0.0"))

    assert chosen(resolve({"A": "*"}, candidates, builtins=BUILTINS)) == {"A": "1.0.0", "B": "1.0.0"}


def test_prerelease_candidates_are_only_chosen_when_asked_for() -> None:
    candidates = catalog(recipe("A", "1.0.0"), recipe("A", "1.1.0-rc.1"))

    assert chosen(resolve({"A": "*"}, candidates, builtins=BUILTINS)) == {"A": "1.0.0"}
    assert chosen(resolve({"A": "1.1.0-rc.1"}, candidates, builtins=BUILTINS)) == {"A": "1.1.0-rc.1"}


def test_a_recipe_listed_under_another_name_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="listed under 'B'"):
        resolve({"B": "*"}, {"B": [recipe("A", "1.0.0")]}, builtins=BUILTINS)


def test_the_first_conflict_on_the_preferred_path_is_reported() -> None:
    candidates = catalog(
        recipe("A", "2.0.0", B=">=5.0.0"),
        recipe("A", "1.0.0", com__example__Gone="*"),
        recipe("B", "1.0.0"),
    )

    assert (
        str(fails({"A": "*"}, candidates)) == "Cannot resolve B: A 2.0.0 needs B >=5.0.0 (available: 1.0.0)"
    )


@pytest.mark.timeout(20)
def test_unrelated_choices_are_not_retried_in_every_combination() -> None:
    # 12 independent roots with 8 versions each, then a root that can never be satisfied: a naive
    # backtracking search would try 8**12 combinations before giving up.
    candidates = catalog(*(recipe(f"R{i}", f"1.{v}.0") for i in range(12) for v in range(8)))
    candidates.update(
        catalog(*(recipe("Z", f"1.{v}.0", B=">=9.0.0") for v in range(8)), recipe("B", "1.0.0"))
    )
    roots = {**{f"R{i}": "*" for i in range(12)}, "Z": "*"}

    started = time.monotonic()
    error = fails(roots, candidates)

    assert time.monotonic() - started < 5
    assert str(error) == "Cannot resolve B: Z 1.7.0 needs B >=9.0.0 (available: 1.0.0)"


def test_deep_dependency_chains_resolve() -> None:
    candidates = catalog(
        *(recipe(f"C{i}", "1.0.0", **{f"C{i + 1}": "^1.0.0"}) for i in range(300)), recipe("C300", "1.0.0")
    )

    assert len(resolve({"C0": "*"}, candidates, builtins=BUILTINS).components) == 301


# --- property: whatever resolve returns satisfies every requirement -----------------------------

NAMES = ["A", "B", "C", "D", "E"]
VERSIONS = ["1.0.0", "1.1.0", "2.0.0", "2.1.0"]
REQUIREMENTS = ["*", "^1.0.0", "^2.0.0", ">=1.1.0", "<2.0.0", "1.0.0", "~2.1.0"]


@st.composite
def universes(draw: st.DrawFn) -> tuple[dict[str, str], dict[str, list[Recipe]]]:
    recipes = []
    for name in NAMES:
        for version in draw(st.lists(st.sampled_from(VERSIONS), unique=True, max_size=3)):
            dependencies = draw(
                st.dictionaries(
                    st.sampled_from([n for n in NAMES if n != name]),
                    st.sampled_from(REQUIREMENTS),
                    max_size=2,
                )
            )
            recipes.append(recipe(name, version, **dependencies))
    roots = draw(
        st.dictionaries(st.sampled_from(NAMES), st.sampled_from(REQUIREMENTS), min_size=1, max_size=3)
    )
    return roots, catalog(*recipes)


def has_cycle(assigned: dict[str, Recipe]) -> bool:
    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for dependency in assigned[start].dependencies:
            if dependency == target or (
                dependency not in seen and reaches(dependency, target, seen | {dependency})
            ):
                return True
        return False

    return any(reaches(name, name, {name}) for name in assigned)


def brute_force(roots: dict[str, str], candidates: dict[str, list[Recipe]]) -> bool:
    """Whether any acyclic assignment satisfies everything reachable (exhaustive, tiny inputs only)."""

    def search(assigned: dict[str, Recipe], needs: Sequence[tuple[str, str]]) -> bool:
        for index, (name, text) in enumerate(needs):
            if name in assigned:
                if not Requirement.parse(text).allows(Version.parse(assigned[name].version)):
                    return False
                continue
            rest = needs[index + 1 :]
            for option in candidates.get(name, []):
                if Requirement.parse(text).allows(Version.parse(option.version)):
                    more = [(d.name, d.version_requirement) for d in option.dependencies.values()]
                    if search({**assigned, name: option}, [*needs[:index], (name, text), *rest, *more]):
                        return True
            return False
        return not has_cycle(assigned)

    return search({}, list(roots.items()))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(universes())
def test_resolutions_satisfy_every_requirement_and_exist_exactly_when_one_does(
    universe: tuple[dict[str, str], dict[str, list[Recipe]]],
) -> None:
    roots, candidates = universe
    try:
        resolution = resolve(roots, candidates, builtins=BUILTINS)
    except ResolutionError:
        assert not brute_force(roots, candidates)
        return
    assert brute_force(roots, candidates)
    picked = resolution.components
    assert not has_cycle(picked)
    for name, text in roots.items():
        assert Requirement.parse(text).allows(Version.parse(picked[name].version))
    for item in picked.values():
        for dependency in item.dependencies.values():
            assert Requirement.parse(dependency.version_requirement).allows(
                Version.parse(picked[dependency.name].version)
            )

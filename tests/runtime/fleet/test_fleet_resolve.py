"""Recipes from the cloud: the resolve answer, and the closure asked round by round."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

from edgewise.aws_components import BUILTIN_VERSIONS
from edgewise.recipe import parse_recipe
from edgewise.runtime.fleet.errors import ComponentResolveError
from edgewise.runtime.fleet.resolve import ComponentOffer, fetch_closure, parse_resolve_reply
from edgewise.versions import Requirement

DIGEST = base64.b64encode(hashlib.sha256(b"x").digest()).decode()


def recipe_document(name: str, version: str, dependencies: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentDependencies": {
            dependency: {"VersionRequirement": requirement}
            for dependency, requirement in (dependencies or {}).items()
        },
        "Manifests": [{"Artifacts": [{"Uri": f"s3://b/{name}.py"}], "Lifecycle": {"Run": "true"}}],
    }


def entry(name: str, version: str, dependencies: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "version": version,
        "recipe": recipe_document(name, version, dependencies),
        "artifacts": {f"s3://b/{name}.py": {"url": "https://cloud:8443/a?s=1", "size": 1, "digest": DIGEST}},
    }


def test_an_answer_becomes_offers_with_their_artifact_sources() -> None:
    offers = parse_resolve_reply(
        {"clientToken": "c", "components": {"A": [entry("A", "1.1.0"), entry("A", "1.0.0")], "B": []}}
    )

    assert [offer.recipe.version for offer in offers["A"]] == ["1.1.0", "1.0.0"]
    assert offers["B"] == []
    source = offers["A"][0].artifacts["s3://b/A.py"]
    assert (source.url, source.size, source.digest) == ("https://cloud:8443/a?s=1", 1, DIGEST)
    assert parse_recipe(offers["A"][0].text).name == "A"


@pytest.mark.parametrize(
    ("components", "expected"),
    [
        ("A", "components: expected an object"),
        ({"A": {}}, "components.A: expected a list"),
        ({"A": [entry("B", "1.0.0")]}, "components.A[0]: the recipe is B 1.0.0"),
        ({"A": [{**entry("A", "1.0.0"), "recipe": "text"}]}, "components.A[0].recipe: expected the recipe"),
        (
            {"A": [{**entry("A", "1.0.0"), "artifacts": {"u": {"url": "http://x", "digest": DIGEST}}}]},
            "components.A[0].artifacts.u.url: expected an https:// URL",
        ),
        (
            {"A": [{**entry("A", "1.0.0"), "artifacts": {"u": {"url": "https://x", "digest": "abc"}}}]},
            "components.A[0].artifacts.u.digest: expected a base64 SHA-256",
        ),
        (
            {
                "A": [
                    {
                        **entry("A", "1.0.0"),
                        "artifacts": {"u": {"url": "https://x", "digest": DIGEST, "size": -1}},
                    }
                ]
            },
            "components.A[0].artifacts.u.size: expected a number of bytes",
        ),
    ],
)
def test_a_malformed_answer_names_the_field(components: Any, expected: str) -> None:
    with pytest.raises(ComponentResolveError) as caught:
        parse_resolve_reply({"components": components})

    assert str(caught.value).startswith(expected)


def offer(name: str, version: str, dependencies: dict[str, str] | None = None) -> ComponentOffer:
    return parse_resolve_reply({"components": {name: [entry(name, version, dependencies)]}})[name][0]


async def test_the_closure_is_asked_round_by_round_until_nothing_is_new() -> None:
    published = {
        "App": [offer("App", "1.0.0", {"Lib": "^1.0.0", "aws.greengrass.Nucleus": ">=2.0.0"})],
        "Lib": [offer("Lib", "1.2.0", {"Base": "1.0.0"}), offer("Lib", "1.1.0", {"Base": "1.0.0"})],
        "Base": [offer("Base", "1.0.0", {"App": "1.0.0"})],
    }
    asked: list[dict[str, str]] = []

    async def ask(requirements: dict[str, str]) -> dict[str, list[ComponentOffer]]:
        asked.append(dict(requirements))
        return {
            name: [o for o in published[name] if Requirement.parse(text).allows(o.recipe.version)]
            for name, text in requirements.items()
        }

    offers = await fetch_closure({"App": "1.0.0"}, ask, skip=BUILTIN_VERSIONS)

    assert asked == [{"App": "1.0.0"}, {"Lib": "^1.0.0"}, {"Base": "1.0.0"}]
    assert {name: sorted(versions) for name, versions in offers.items()} == {
        "App": ["1.0.0"],
        "Lib": ["1.1.0", "1.2.0"],
        "Base": ["1.0.0"],
    }


async def test_two_requirements_on_one_name_are_both_asked() -> None:
    published = {
        "A": [offer("A", "1.0.0", {"C": "^1.0.0"})],
        "B": [offer("B", "1.0.0", {"C": "1.0.0"})],
        "C": [offer("C", "1.0.0")],
    }
    asked: list[dict[str, str]] = []

    async def ask(requirements: dict[str, str]) -> dict[str, list[ComponentOffer]]:
        asked.append(dict(requirements))
        return {name: published[name] for name in requirements}

    await fetch_closure({"A": "1.0.0", "B": "1.0.0"}, ask)

    assert asked == [{"A": "1.0.0", "B": "1.0.0"}, {"C": "^1.0.0"}, {"C": "1.0.0"}]


async def test_components_that_depend_only_on_each_other_take_one_request() -> None:
    published = {
        "App": [offer("App", "1.0.0", {"Lib": "^1.0.0", "aws.greengrass.Nucleus": ">=2.0.0"})],
        "Lib": [offer("Lib", "1.0.0", {"Base": ">=1.0.0"})],
        "Base": [offer("Base", "1.0.0")],
    }
    asked: list[dict[str, str]] = []

    async def ask(requirements: dict[str, str]) -> dict[str, list[ComponentOffer]]:
        asked.append(dict(requirements))
        return {name: published[name] for name in requirements}

    roots = {"App": "1.0.0", "Lib": "1.0.0", "Base": "1.0.0"}
    offers = await fetch_closure(roots, ask, skip=BUILTIN_VERSIONS)

    assert asked == [roots]
    assert {name: sorted(versions) for name, versions in offers.items()} == {
        "App": ["1.0.0"],
        "Lib": ["1.0.0"],
        "Base": ["1.0.0"],
    }
    # A root given as a range is no pin: what depends on it asks for its own range.
    await fetch_closure({"App": "1.0.0", "Lib": "^1.0.0"}, ask, skip=BUILTIN_VERSIONS)
    assert asked[1:] == [{"App": "1.0.0", "Lib": "^1.0.0"}, {"Base": ">=1.0.0"}]


async def test_a_round_with_many_names_is_asked_in_requests_of_at_most_100() -> None:
    dependencies = {f"Dep{index:03}": "1.0.0" for index in range(250)}
    published = {"App": [offer("App", "1.0.0", dependencies)]}
    published.update({name: [offer(name, "1.0.0")] for name in dependencies})
    asked: list[dict[str, str]] = []

    async def ask(requirements: dict[str, str]) -> dict[str, list[ComponentOffer]]:
        asked.append(dict(requirements))
        return {name: published[name] for name in requirements}

    offers = await fetch_closure({"App": "1.0.0"}, ask)

    assert [len(request) for request in asked] == [1, 100, 100, 50]
    assert len(offers) == 251

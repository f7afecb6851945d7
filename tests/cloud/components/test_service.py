"""The component registry's behaviour on SQLite and PostgreSQL: publish, immutability, lookups, delete, resolve."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.orm import Session

from edgewise.cloud.components import service
from edgewise.cloud.components.models import ComponentArtifact, ComponentVersion
from edgewise.cloud.components.published import PublishedArtifact, PublishedVersions
from edgewise.cloud.components.service import PublishRejectedError
from edgewise.cloud.components.store import LocalArtifactStore
from edgewise.cloud.errors import CloudConflictError, InvalidRequestError, NotFoundError
from edgewise.recipe import parse_recipe
from edgewise.versions import Requirement
from tests.cloud.components.conftest import recipe, sha256_of
from tests.cloud.statements import selects_sent

APP = b"print('hello')\n"


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


def upload(store: LocalArtifactStore, data: bytes) -> str:
    return store.put(io.BytesIO(data)).sha256


def publish(
    session: Session, store: LocalArtifactStore, document: dict[str, object] | str, artifacts: dict[str, str]
) -> service.Published:
    return service.publish_component(
        session, store, recipe=document, artifacts=artifacts, published_by="ci-token"
    )


def rows(session: Session) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(ComponentVersion)) or 0


def test_publish_writes_digests_into_the_stored_recipe(session: Session, store: LocalArtifactStore) -> None:
    sha = upload(store, APP)
    published = publish(session, store, recipe(), {"app.zip": sha})
    assert published.created
    version = published.version
    assert (version.name, version.version, version.publisher) == (
        "com.example.Hello",
        "1.0.0",
        "Edgewise tests",
    )
    assert version.published_by == "ci-token"
    stored = service.recipe_document(version)
    artifact = stored["Manifests"][0]["Artifacts"][0]
    assert artifact == {
        "Uri": "s3://bucket/hello/app.zip",
        "Digest": base64.b64encode(hashlib.sha256(APP).digest()).decode(),
        "Algorithm": "SHA-256",
    }
    parse_recipe(stored)
    [row] = version.artifacts
    assert (row.file_name, row.sha256, row.size, row.storage_key) == (
        "app.zip",
        sha,
        len(APP),
        store.key(sha),
    )


def test_yaml_recipes_with_any_key_case_are_stored_with_canonical_digest_keys(
    session: Session, store: LocalArtifactStore
) -> None:
    sha = upload(store, APP)
    text = (
        "recipeformatversion: 2020-01-25\n"
        "componentname: com.example.Yaml\n"
        "componentversion: 2.0.0\n"
        "manifests:\n"
        "  - artifacts:\n"
        "      - uri: s3://b/app.zip\n"
        "        digest: " + base64.b64encode(hashlib.sha256(APP).digest()).decode() + "\n"
        "        algorithm: sha-256\n"
        "      - URI: docker:registry/image:1\n"
    )
    version = publish(session, store, text, {"app.zip": sha}).version
    artifacts = service.recipe_document(version)["manifests"][0]["artifacts"]
    assert artifacts[0] == {"uri": "s3://b/app.zip", "Digest": artifacts[0]["Digest"], "Algorithm": "SHA-256"}
    assert artifacts[1] == {"URI": "docker:registry/image:1"}
    assert [row.uri for row in version.artifacts] == ["s3://b/app.zip"]
    assert yaml.safe_load(service.recipe_yaml(version))["componentversion"] == "2.0.0"


def test_republishing_identically_is_a_no_op(session: Session, store: LocalArtifactStore) -> None:
    sha = upload(store, APP)
    first = publish(session, store, recipe(), {"app.zip": sha})
    again = publish(session, store, json.dumps(recipe()), {"app.zip": sha})
    assert not again.created
    assert again.version.id == first.version.id
    assert rows(session) == 1


def test_republishing_with_another_recipe_or_artifact_is_a_conflict(
    session: Session, store: LocalArtifactStore
) -> None:
    sha = upload(store, APP)
    publish(session, store, recipe(), {"app.zip": sha})
    changed = recipe()
    changed["ComponentDescription"] = "changed"
    with pytest.raises(CloudConflictError, match="versions are immutable"):
        publish(session, store, changed, {"app.zip": sha})
    other = upload(store, b"other bytes")
    with pytest.raises(CloudConflictError, match="already published with another recipe or other artifacts"):
        publish(session, store, recipe(), {"app.zip": other})
    with pytest.raises(CloudConflictError, match="only in build metadata"):
        publish(session, store, recipe(version="1.0.0+build.7"), {"app.zip": sha})
    assert rows(session) == 1


def test_every_problem_is_named_by_its_field_path_and_nothing_is_stored(
    session: Session, store: LocalArtifactStore
) -> None:
    sha = upload(store, APP)
    bad = recipe(uris=("s3://b/app.zip", "s3://b/lib.so"))
    bad["Manifests"][0]["Lifecycle"] = {"Run": {"Timeout": "soon"}}
    with pytest.raises(PublishRejectedError) as caught:
        publish(session, store, bad, {"app.zip": sha})
    assert caught.value.problems == [
        ("recipe.Manifests[0].Lifecycle.Run.Timeout", "expected a number, got 'soon'")
    ]
    with pytest.raises(PublishRejectedError) as caught:
        publish(
            session,
            store,
            recipe(uris=("s3://b/app.zip", "s3://b/lib.so")),
            {"app.zip": sha, "extra.bin": sha, "lib.so": sha256_of(b"not uploaded")},
        )
    assert caught.value.problems == [
        ("artifacts.extra.bin", "is not referenced by any artifact Uri in the recipe"),
        ("artifacts.lib.so", f"no artifact with SHA-256 {sha256_of(b'not uploaded')} has been uploaded"),
    ]
    with pytest.raises(PublishRejectedError) as caught:
        publish(session, store, recipe(uris=("s3://b/app.zip", "s3://b/lib.so")), {"app.zip": sha})
    assert caught.value.problems == [
        ("recipe.Manifests[0].Artifacts[1].Uri", "no uploaded artifact is named 'lib.so' (uploaded: app.zip)")
    ]
    assert str(caught.value).startswith("The component cannot be published (1 problem): recipe.Manifests[0]")
    assert rows(session) == 0


def test_a_digest_in_the_recipe_must_match_the_upload(session: Session, store: LocalArtifactStore) -> None:
    sha = upload(store, APP)
    document = recipe()
    document["Manifests"][0]["Artifacts"][0]["Digest"] = base64.b64encode(b"\0" * 32).decode()
    with pytest.raises(
        PublishRejectedError, match=r"recipe\.Manifests\[0\]\.Artifacts\[0\]\.Digest: is 'AAAA"
    ):
        publish(session, store, document, {"app.zip": sha})


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ("", "recipe"),
        ("[1, 2]", "recipe"),
        ({"RecipeFormatVersion": "2020-01-25"}, "recipe.ComponentName"),
        (recipe(name="aws.greengrass.Nucleus"), "recipe.ComponentName"),
        (recipe(name="edgewise.models.anomaly"), "recipe.ComponentName"),
        (recipe(version="v1"), "recipe.ComponentVersion"),
    ],
)
def test_invalid_recipes_are_refused(
    session: Session, store: LocalArtifactStore, document: dict[str, object] | str, field: str
) -> None:
    sha = upload(store, APP)
    with pytest.raises(PublishRejectedError) as caught:
        publish(session, store, document, {"app.zip": sha})
    assert caught.value.field == field


def test_versions_sort_by_semantic_version_not_by_publish_time(
    session: Session, store: LocalArtifactStore
) -> None:
    sha = upload(store, APP)
    for version in ("1.10.0", "1.2.0", "2.0.0-beta.1", "1.9.9"):
        publish(session, store, recipe(version=version), {"app.zip": sha})
    publish(session, store, recipe(name="com.example.Other"), {"app.zip": sha})
    assert [v.version for v in service.list_versions(session, "com.example.Hello")] == [
        "2.0.0-beta.1",
        "1.10.0",
        "1.9.9",
        "1.2.0",
    ]
    page = service.list_components(session, limit=10, offset=0)
    assert page.total == 2
    assert [(item.name, item.latest.version, item.version_count) for item in page.items] == [
        ("com.example.Hello", "2.0.0-beta.1", 4),
        ("com.example.Other", "1.0.0", 1),
    ]
    second = service.list_components(session, limit=1, offset=1, name_prefix="com.example.")
    assert (second.total, [item.name for item in second.items]) == (2, ["com.example.Other"])
    assert service.list_components(session, limit=10, offset=0, name_prefix="com.example_").total == 0


def test_lookups_ignore_build_metadata_and_refuse_bad_names(
    session: Session, store: LocalArtifactStore
) -> None:
    sha = upload(store, APP)
    publish(session, store, recipe(version="1.0.0+build.3"), {"app.zip": sha})
    assert service.get_component_version(session, "com.example.Hello", "1.0.0").version == "1.0.0+build.3"
    with pytest.raises(NotFoundError, match=re.escape("'com.example.Hello@1.0.1' does not exist")):
        service.get_component_version(session, "com.example.Hello", "1.0.1")
    with pytest.raises(NotFoundError, match=re.escape("Component 'com.example.Nope' does not exist")):
        service.list_versions(session, "com.example.Nope")
    with pytest.raises(InvalidRequestError, match="'componentVersion'"):
        service.get_component_version(session, "com.example.Hello", "one")
    with pytest.raises(InvalidRequestError, match="'componentName'"):
        service.list_versions(session, "bad name")


def test_delete_removes_artifacts_no_other_version_uses(session: Session, store: LocalArtifactStore) -> None:
    shared = upload(store, APP)
    own = upload(store, b"only in 1.0.0")
    publish(
        session, store, recipe(uris=("s3://b/app.zip", "s3://b/own.bin")), {"app.zip": shared, "own.bin": own}
    )
    publish(session, store, recipe(version="1.1.0"), {"app.zip": shared})
    service.delete_component_version(session, store, "com.example.Hello", "1.0.0")
    assert not store.exists(own)
    assert store.exists(shared)
    assert session.scalar(sa.select(sa.func.count()).select_from(ComponentArtifact)) == 1
    with pytest.raises(NotFoundError):
        service.delete_component_version(session, store, "com.example.Hello", "1.0.0")


@pytest.fixture
def in_use() -> Iterator[None]:
    def check(session: Session, name: str, version: str) -> list[str]:
        return ["deployment 'd-1'"] if version == "1.0.0" else []

    service.register_usage_check(check)
    yield
    service._usage_checks.remove(check)


@pytest.mark.usefixtures("in_use")
def test_delete_is_refused_while_a_registered_check_reports_use(
    session: Session, store: LocalArtifactStore
) -> None:
    sha = upload(store, APP)
    publish(session, store, recipe(), {"app.zip": sha})
    with pytest.raises(CloudConflictError, match="in use by deployment 'd-1'"):
        service.delete_component_version(session, store, "com.example.Hello", "1.0.0")
    assert store.exists(sha)
    assert rows(session) == 1


def test_resolve_returns_matching_versions_newest_first_at_most_the_limit(
    session: Session, store: LocalArtifactStore
) -> None:
    sha = upload(store, APP)
    for version in ("0.9.0", "1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0"):
        publish(session, store, recipe(version=version), {"app.zip": sha})
    published = PublishedVersions()
    [found] = published.matching(
        session,
        [
            {
                "com.example.Hello": Requirement.parse(">=1.0.0 <2.0.0"),
                "com.example.Missing": Requirement.parse("*"),
            }
        ],
    )
    assert [v.version for v in found["com.example.Hello"]] == ["1.1.0", "1.0.0"]
    assert found["com.example.Missing"] == []
    assert found["com.example.Hello"][0].artifacts == (
        PublishedArtifact("s3://bucket/hello/app.zip", sha, len(APP)),
    )
    [limited] = published.matching(session, [{"com.example.Hello": Requirement.parse("*")}], limit=2)
    assert [v.version for v in limited["com.example.Hello"]] == ["2.0.0", "1.1.0"]


def test_resolve_reads_a_components_versions_again_only_once_they_changed(
    session: Session, store: LocalArtifactStore
) -> None:
    sha = upload(store, APP)
    publish(session, store, recipe(version="1.0.0"), {"app.zip": sha})
    published, any_version = PublishedVersions(), {"com.example.Hello": Requirement.parse("*")}

    def answer() -> list[tuple[str, object]]:
        found = published.matching(session, [any_version])[0]["com.example.Hello"]
        return [(v.version, v.recipe["ComponentDescription"]) for v in found]

    assert answer() == [("1.0.0", "com.example.Hello for tests")]
    assert answer() == [("1.0.0", "com.example.Hello for tests")]
    assert published.reads == 1

    publish(session, store, recipe(version="1.1.0"), {"app.zip": sha})
    assert answer() == [("1.1.0", "com.example.Hello for tests"), ("1.0.0", "com.example.Hello for tests")]
    assert published.reads == 2

    # The same version deleted and published again with another recipe: the new recipe is answered.
    service.delete_component_version(session, store, "com.example.Hello", "1.1.0")
    publish(session, store, recipe(version="1.1.0", ComponentDescription="second take"), {"app.zip": sha})
    assert answer() == [("1.1.0", "second take"), ("1.0.0", "com.example.Hello for tests")]
    service.delete_component_version(session, store, "com.example.Hello", "1.0.0")
    assert answer() == [("1.1.0", "second take")]
    assert published.reads == 4


def test_resolve_of_several_requests_reads_their_components_versions_in_one_query(
    session: Session, store: LocalArtifactStore
) -> None:
    sha = upload(store, APP)
    publish(session, store, recipe(version="1.0.0"), {"app.zip": sha})
    publish(session, store, recipe(name="com.example.Other", version="2.0.0"), {"app.zip": sha})
    published = PublishedVersions()
    asked = [
        {"com.example.Hello": Requirement.parse("*"), "com.example.Other": Requirement.parse("^2")},
        {"com.example.Missing": Requirement.parse("*"), "com.example.Other": Requirement.parse("^1")},
    ]
    first = published.matching(session, asked)
    with selects_sent(session.get_bind()) as selects:
        again = published.matching(session, asked)
    assert len(selects) == 1, selects
    assert again == first
    assert [{name: [v.version for v in found] for name, found in answer.items()} for answer in again] == [
        {"com.example.Hello": ["1.0.0"], "com.example.Other": ["2.0.0"]},
        {"com.example.Missing": [], "com.example.Other": []},
    ]

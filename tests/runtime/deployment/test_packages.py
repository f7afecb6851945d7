"""The component store: whole artifact folders copied as greengrass-cli copies them, links out of a folder
refused, ZIP limits for local and fleet installs, and nothing left behind when an install fails."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.fleet_cloud import ArtifactServer
from tests.support.pki import CertificateAuthority

from edgewise.recipe import parse_recipe, select_manifest
from edgewise.runtime.deployment.errors import DeploymentError, PackageError
from edgewise.runtime.deployment.packages import ComponentStore
from edgewise.runtime.fleet.download import (
    ArtifactDownloader,
    DownloadSettings,
    artifact_context,
    install_offer,
)
from edgewise.runtime.fleet.resolve import parse_resolve_reply
from edgewise.runtime.paths import RootPaths
from edgewise.runtime.settings import ArtifactLimits

NAME, VERSION = "com.example.App", "1.0.0"
SMALL = ArtifactLimits(max_expanded_bytes=1 << 20, max_compression_ratio=100, min_free_bytes=0)


def digest_of(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def recipe_of(artifacts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    manifest: dict[str, Any] = {"Platform": {"os": "linux"}, "Lifecycle": {"Run": "true"}}
    if artifacts is not None:
        manifest["Artifacts"] = artifacts
    return {
        "RecipeFormatVersion": "2020-01-25",
        "ComponentName": NAME,
        "ComponentVersion": VERSION,
        "Manifests": [manifest],
    }


@pytest.fixture
def paths(tmp_path: Path) -> RootPaths:
    paths = RootPaths.at(tmp_path / "root")
    paths.create()
    return paths


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """``artifacts/<name>/<version>/`` of a local artifact directory."""
    path = tmp_path / "artifacts" / NAME / VERSION
    path.mkdir(parents=True)
    return path


def install(paths: RootPaths, recipe: dict[str, Any], artifacts: Path | None, **store: Any) -> None:
    text = json.dumps(recipe).encode()
    parsed = parse_recipe(text)
    manifest = select_manifest(parsed, {"os": "linux"})
    assert manifest is not None
    ComponentStore(paths, **store).install(parsed, text, manifest, artifacts)


def tree(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


def nothing_installed(paths: RootPaths) -> bool:
    return tree(paths.packages_dir) == ["artifacts", "artifacts-unarchived", "recipes"]


def test_a_recipe_without_artifacts_gets_its_whole_folder_with_modes_kept(
    paths: RootPaths, folder: Path
) -> None:
    (folder / "hello_world.py").write_text("print('hello')\n")
    (folder / "bin").mkdir(mode=0o750)
    (folder / "bin" / "tool.sh").write_text("echo tool\n")
    (folder / "bin" / "tool.sh").chmod(0o754)
    (folder / ".hidden").write_text("kept too")
    (folder / "latest").symlink_to("bin/tool.sh")

    install(paths, recipe_of(), folder.parent.parent)

    target = paths.component_artifacts(NAME, VERSION)
    assert tree(target) == [".hidden", "bin", "bin/tool.sh", "hello_world.py", "latest"]
    assert (target / "hello_world.py").read_text() == "print('hello')\n"
    assert (target / "bin" / "tool.sh").stat().st_mode & 0o777 == 0o754
    assert (target / "bin").stat().st_mode & 0o777 == 0o750
    assert os.readlink(target / "latest") == "bin/tool.sh"
    assert (target / "latest").read_text() == "echo tool\n"
    assert (paths.recipes_dir / f"{NAME}@{VERSION}.recipe.yaml").exists()


def test_listed_artifacts_keep_their_checks_beside_the_copied_folder(paths: RootPaths, folder: Path) -> None:
    (folder / "run.sh").write_text("echo run\n")
    (folder / "run.sh").chmod(0o600)
    (folder / "extra.txt").write_text("unlisted")
    (folder / "extra.txt").chmod(0o640)
    with zipfile.ZipFile(folder / "app.zip", "w") as bundle:
        bundle.writestr("app/main.py", "print('main')\n")
    artifacts = [
        {"Uri": "s3://bucket/run.sh", "Digest": digest_of(b"echo run\n"), "Permission": {"Execute": "ALL"}},
        {"Uri": "s3://bucket/app.zip", "Unarchive": "ZIP"},
    ]

    install(paths, recipe_of(artifacts), folder.parent.parent)

    target = paths.component_artifacts(NAME, VERSION)
    assert tree(target) == ["app.zip", "extra.txt", "run.sh"]
    assert (target / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (target / "extra.txt").stat().st_mode & 0o777 == 0o640
    assert (paths.component_unarchived(NAME, VERSION) / "app" / "app" / "main.py").exists()


def test_a_listed_artifact_with_a_wrong_digest_still_fails_and_installs_nothing(
    paths: RootPaths, folder: Path
) -> None:
    (folder / "run.sh").write_text("tampered\n")
    (folder / "other.txt").write_text("unlisted")

    with pytest.raises(PackageError, match="has digest"):
        install(
            paths,
            recipe_of([{"Uri": "s3://b/run.sh", "Digest": digest_of(b"echo run\n")}]),
            folder.parent.parent,
        )

    assert nothing_installed(paths)


def test_an_unlisted_link_out_of_the_folder_is_refused_naming_it(
    paths: RootPaths, folder: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.key"
    secret.write_text("PRIVATE KEY")
    (folder / "run.sh").write_text("echo run\n")
    (folder / "conf").mkdir()
    (folder / "conf" / "device.key").symlink_to(secret)

    with pytest.raises(PackageError) as caught:
        install(paths, recipe_of(), folder.parent.parent)

    assert str(caught.value) == (
        f"{folder / 'conf' / 'device.key'} is a link to {secret}, outside the artifact folder {folder}; "
        "links in an artifact folder may only point inside it"
    )
    assert caught.value.error_types == ("ARTIFACT_ERROR",)
    assert nothing_installed(paths)


def test_a_listed_artifact_linking_out_of_the_folder_is_refused(
    paths: RootPaths, folder: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "private.pem.key"
    secret.write_text("PRIVATE KEY")
    (folder / "key.pem").symlink_to(secret)

    with pytest.raises(PackageError, match=re.escape(f"{folder / 'key.pem'} is a link to {secret}, outside")):
        install(
            paths,
            recipe_of([{"Uri": "s3://bucket/key.pem", "Permission": {"Read": "ALL"}}]),
            folder.parent.parent,
        )

    assert nothing_installed(paths)
    assert not any(b"PRIVATE KEY" in path.read_bytes() for path in paths.root.rglob("*") if path.is_file())


def test_a_link_to_a_directory_out_of_the_folder_is_refused(
    paths: RootPaths, folder: Path, tmp_path: Path
) -> None:
    (tmp_path / "elsewhere").mkdir()
    (folder / "data").symlink_to(tmp_path / "elsewhere")

    with pytest.raises(
        PackageError, match=re.escape(f"{folder / 'data'} is a link to {tmp_path / 'elsewhere'}")
    ):
        install(paths, recipe_of(), folder.parent.parent)

    assert nothing_installed(paths)


def test_a_version_folder_that_is_a_link_elsewhere_is_refused(paths: RootPaths, tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "id_rsa").write_text("PRIVATE KEY")
    base = tmp_path / "artifacts"
    (base / NAME).mkdir(parents=True)
    (base / NAME / VERSION).symlink_to(tmp_path / "home")

    with pytest.raises(
        PackageError, match=re.escape(f"The artifact folder {base / NAME / VERSION} is a link to")
    ):
        install(paths, recipe_of(), base)

    assert nothing_installed(paths)


def test_a_zip_bomb_in_a_local_deployment_is_refused_and_nothing_is_left(
    paths: RootPaths, folder: Path
) -> None:
    with zipfile.ZipFile(folder / "bomb.zip", "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("zeros.bin", bytes(4 << 20))
    (folder / "run.sh").write_text("echo run\n")

    with pytest.raises(PackageError) as caught:
        install(
            paths,
            recipe_of([{"Uri": "s3://b/bomb.zip", "Unarchive": "ZIP"}]),
            folder.parent.parent,
            limits=SMALL,
        )

    assert str(caught.value).startswith(f"Artifact 'bomb.zip' of {NAME} {VERSION} expands to more than 1 MiB")
    assert "artifacts.maxExpandedBytes" in str(caught.value)
    assert nothing_installed(paths)


def test_a_failed_reinstall_keeps_the_installed_version(paths: RootPaths, folder: Path) -> None:
    (folder / "run.sh").write_text("echo run\n")
    install(paths, recipe_of(), folder.parent.parent)
    (folder / "escape").symlink_to("/etc/hostname")

    with pytest.raises(PackageError, match="outside the artifact folder"):
        install(paths, recipe_of(), folder.parent.parent)

    assert tree(paths.component_artifacts(NAME, VERSION)) == ["run.sh"]


def test_copying_a_folder_that_does_not_fit_on_the_disk_is_refused(paths: RootPaths, folder: Path) -> None:
    (folder / "model.onnx").write_bytes(bytes(2048))
    limits = ArtifactLimits(min_free_bytes=1024)

    with pytest.raises(PackageError) as caught:
        install(paths, recipe_of(), folder.parent.parent, limits=limits, free_space=lambda _path: 2048)

    assert str(caught.value).startswith(
        f"The artifact folder of {NAME} {VERSION} needs 2 KiB (2048 bytes) but "
    )
    assert "1 KiB (1024 bytes) free beyond the 1 KiB (1024 bytes) kept free (artifacts.minFreeBytes)" in str(
        caught.value
    )
    assert nothing_installed(paths)


def test_a_file_system_error_is_an_artifact_error_naming_the_component(
    paths: RootPaths, folder: Path
) -> None:
    (folder / "run.sh").write_text("echo run\n")
    (paths.artifacts_dir / NAME).write_text("a file where the component's directory goes")

    with pytest.raises(PackageError, match=re.escape(f"{NAME} {VERSION} could not be installed: ")) as caught:
        install(paths, recipe_of(), folder.parent.parent)

    assert caught.value.error_types == ("ARTIFACT_ERROR",)
    assert not (paths.recipes_dir / f"{NAME}@{VERSION}.recipe.yaml").exists()


def test_a_fifo_in_the_folder_is_refused_rather_than_read_forever(paths: RootPaths, folder: Path) -> None:
    os.mkfifo(folder / "pipe")

    with pytest.raises(
        PackageError, match=re.escape(f"{folder / 'pipe'} in the artifact folder {folder} is not a")
    ):
        install(paths, recipe_of(), folder.parent.parent)

    assert nothing_installed(paths)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[ArtifactServer, ArtifactDownloader]]:
    ca = CertificateAuthority(tmp_path / "pki")
    with ArtifactServer(ca) as running:
        downloader = ArtifactDownloader(
            artifact_context(ca.certificate), DownloadSettings(attempts=2, first_delay=0.01, timeout=10)
        )
        yield running, downloader


def test_a_zip_bomb_from_the_fleet_is_refused_and_its_download_removed(
    tmp_path: Path, paths: RootPaths, server: tuple[ArtifactServer, ArtifactDownloader]
) -> None:
    artifact_server, downloader = server
    bundle_path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bundle_path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("zeros.bin", bytes(4 << 20))
    data = bundle_path.read_bytes()
    artifact_server.files["bomb.zip"] = data
    uri = "s3://bucket/bomb.zip"
    source = {"url": artifact_server.url("bomb.zip"), "size": len(data), "digest": digest_of(data)}
    recipe = recipe_of([{"Uri": uri, "Unarchive": "ZIP", "Digest": digest_of(data)}])
    reply = {"components": {NAME: [{"version": VERSION, "recipe": recipe, "artifacts": {uri: source}}]}}
    offer = parse_resolve_reply(reply)[NAME][0]

    with pytest.raises(DeploymentError, match=re.escape("the limit set by artifacts.maxExpandedBytes")):
        install_offer(offer, paths=paths, platform={"os": "linux"}, downloader=downloader, limits=SMALL)

    assert nothing_installed(paths)
    assert not (paths.deployments_dir / "downloads" / NAME).exists()

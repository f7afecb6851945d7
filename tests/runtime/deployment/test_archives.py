"""ZIP artifacts extracted within limits (expanded size, ratio, free space), refused entries, nothing left behind;
the limits' defaults and their configuration file section."""

from __future__ import annotations

import re
import struct
import zipfile
from pathlib import Path

import pytest

from edgewise.runtime.__main__ import parse_args
from edgewise.runtime.cloudlink import ConfigFileError
from edgewise.runtime.config_file import load_config_file
from edgewise.runtime.deployment.archives import disk_free, extract_zip
from edgewise.runtime.deployment.errors import PackageError
from edgewise.runtime.settings import ArtifactLimits

MIB = 1 << 20
SMALL = ArtifactLimits(max_expanded_bytes=MIB, max_compression_ratio=100, min_free_bytes=0)
WHAT = "Artifact 'app.zip' of com.example.App 1.0.0"


def make_zip(path: Path, entries: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as bundle:
        for name, data in entries.items():
            bundle.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return path


def extract(
    archive: Path, destination: Path, limits: ArtifactLimits = SMALL, free: int | None = None
) -> None:
    extract_zip(
        archive,
        destination,
        file_mode=0o640,
        limits=limits,
        free_space=disk_free if free is None else (lambda _path: free),
        what=WHAT,
    )


def leftovers(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


def test_an_archive_within_the_limits_is_extracted_with_the_recipe_modes(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "app.zip", {"app/main.sh": b"echo main\n", "app/data/": b"", "README": b"hi"}
    )
    out = tmp_path / "unarchived"
    out.mkdir()

    extract(archive, out / "app")

    assert (out / "app" / "app" / "main.sh").read_bytes() == b"echo main\n"
    assert (out / "app" / "app" / "main.sh").stat().st_mode & 0o777 == 0o640
    assert (out / "app" / "app" / "data").stat().st_mode & 0o777 == 0o755
    assert leftovers(out) == ["app", "app/README", "app/app", "app/app/data", "app/app/main.sh"]


def test_an_archive_expanding_beyond_the_size_limit_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "app.zip", {"a.bin": bytes(MIB // 2), "b.bin": bytes(MIB // 2 + 1)})
    out = tmp_path / "unarchived"
    out.mkdir()

    with pytest.raises(PackageError) as caught:
        extract(archive, out / "app", SMALL)

    message = str(caught.value)
    assert message.startswith(WHAT)
    assert "more than 1 MiB (1048576 bytes), the limit set by artifacts.maxExpandedBytes" in message
    assert caught.value.error_types == ("ARTIFACT_ERROR",)
    assert leftovers(out) == []


def test_an_archive_beyond_the_compression_ratio_is_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "app.zip", {"zeros.bin": bytes(4 * MIB)})
    limits = ArtifactLimits(max_expanded_bytes=100 * MIB, max_compression_ratio=50, min_free_bytes=0)
    out = tmp_path / "unarchived"
    out.mkdir()

    with pytest.raises(PackageError, match=r"times allowed by artifacts\.maxCompressionRatio") as caught:
        extract(archive, out / "app", limits)

    assert re.search(r"expands at least \d+ times its size", str(caught.value))
    assert leftovers(out) == []


def test_a_small_archive_of_repetitive_data_passes_the_ratio_check(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "app.zip", {"empty.db": bytes(512 * 1024)})
    assert archive.stat().st_size * 100 < 512 * 1024  # a ratio far above the limit, within the grace

    extract(archive, tmp_path / "app")

    assert (tmp_path / "app" / "empty.db").stat().st_size == 512 * 1024


def test_free_space_is_checked_before_anything_is_extracted(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "app.zip", {"model.bin": bytes(300 * 1024)})
    limits = ArtifactLimits(max_expanded_bytes=MIB, max_compression_ratio=1000, min_free_bytes=100 * 1024)
    out = tmp_path / "unarchived"
    out.mkdir()

    with pytest.raises(PackageError) as caught:
        extract(archive, out / "app", limits, free=300 * 1024)

    message = str(caught.value)
    assert message.startswith(WHAT)
    assert "200 KiB (204800 bytes) free" in message
    assert "artifacts.minFreeBytes" in message
    assert leftovers(out) == []


def test_an_archive_whose_header_understates_its_sizes_is_refused(tmp_path: Path) -> None:
    data = bytes(2 * MIB)
    archive = make_zip(tmp_path / "app.zip", {"big.bin": data}, method=zipfile.ZIP_STORED)
    # Rewrite the central directory's sizes to 10 bytes, so the declared total passes every limit.
    raw = bytearray(archive.read_bytes())
    central = raw.rindex(b"PK\x01\x02")
    struct.pack_into("<II", raw, central + 20, 10, 10)
    archive.write_bytes(bytes(raw))
    assert zipfile.ZipFile(archive).infolist()[0].file_size == 10
    out = tmp_path / "unarchived"
    out.mkdir()

    with pytest.raises(PackageError, match="is not a valid ZIP archive") as caught:
        extract(archive, out / "app")

    assert str(caught.value).startswith(WHAT)
    assert leftovers(out) == []


@pytest.mark.parametrize("name", ["../escaped.txt", "/etc/escaped.txt", "app/../../escaped.txt"])
def test_an_entry_outside_the_directory_is_refused(tmp_path: Path, name: str) -> None:
    archive = make_zip(tmp_path / "app.zip", {"ok.txt": b"fine", name: b"escaped"})
    out = tmp_path / "unarchived"
    out.mkdir()

    with pytest.raises(PackageError, match=re.escape(f"has an entry outside its directory: {name!r}")):
        extract(archive, out / "app")

    assert leftovers(out) == []
    assert not list(tmp_path.rglob("escaped.txt"))


def test_a_file_system_error_while_extracting_is_an_artifact_error_and_nothing_is_left(
    tmp_path: Path,
) -> None:
    archive = make_zip(tmp_path / "app.zip", {"a": b"a file", "a/b": b"and a file inside it"})
    out = tmp_path / "unarchived"
    out.mkdir()

    with pytest.raises(PackageError, match=re.escape(f"{WHAT} could not be extracted")):
        extract(archive, out / "app")

    assert leftovers(out) == []


def test_a_new_archive_replaces_the_old_contents_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "unarchived"
    out.mkdir()
    extract(make_zip(tmp_path / "v1.zip", {"old.txt": b"old"}), out / "app")

    with pytest.raises(PackageError):
        extract(make_zip(tmp_path / "bomb.zip", {"new.txt": bytes(2 * MIB)}), out / "app")
    assert leftovers(out) == ["app", "app/old.txt"]

    extract(make_zip(tmp_path / "v2.zip", {"new.txt": b"new"}), out / "app")
    assert leftovers(out) == ["app", "app/new.txt"]


def test_not_a_zip_is_refused_naming_the_artifact(tmp_path: Path) -> None:
    archive = tmp_path / "app.zip"
    archive.write_bytes(b"not a zip at all")

    with pytest.raises(PackageError, match=re.escape(f"{WHAT} is not a valid ZIP archive")):
        extract(archive, tmp_path / "app")

    assert leftovers(tmp_path) == ["app.zip"]


def test_the_default_limits_bound_an_archive_to_1_gib_100_times_its_size_and_keep_64_mib_free() -> None:
    limits = ArtifactLimits()

    assert limits.max_expanded_bytes == 1 << 30
    assert limits.max_compression_ratio == 100
    assert limits.min_free_bytes == 64 << 20


def test_the_limits_come_from_the_configuration_file(tmp_path: Path) -> None:
    path = tmp_path / "edgewise.yaml"
    path.write_text("artifacts: {maxExpandedBytes: 1048576, maxCompressionRatio: 20, minFreeBytes: 0}\n")

    settings = parse_args(["--root", str(tmp_path / "root"), "--config", str(path)])

    assert settings.artifacts == ArtifactLimits(
        max_expanded_bytes=MIB, max_compression_ratio=20, min_free_bytes=0
    )
    assert parse_args(["--root", str(tmp_path / "root")]).artifacts == ArtifactLimits()


def test_bad_limits_in_the_configuration_file_are_named(tmp_path: Path) -> None:
    path = tmp_path / "edgewise.yaml"
    path.write_text(
        "artifacts: {maxExpandedBytes: 0, maxCompressionRatio: lots, minFreeBytes: -1, size: 3}\n"
    )

    with pytest.raises(ConfigFileError) as caught:
        load_config_file(path)

    problems = caught.value.problems
    assert "artifacts.maxExpandedBytes: expected an integer 1-1125899906842624, got 0" in problems
    assert "artifacts.maxCompressionRatio: expected an integer 1-1000000, got 'lots'" in problems
    assert "artifacts.minFreeBytes: expected an integer 0-1125899906842624, got -1" in problems
    assert any(problem.startswith("artifacts.size: unknown key") for problem in problems)

"""First start and settings: the data directory, the admin token file, and the database URL rules."""

from __future__ import annotations

import stat
from pathlib import Path

import pydantic
import pytest

from edgewise.cloud.app import initialize
from edgewise.cloud.settings import CloudSettings


def test_first_start_creates_database_and_private_admin_token(tmp_path: Path) -> None:
    first = initialize(tmp_path / "cloud")
    assert first.admin_token is not None
    token_file = first.settings.admin_token_file
    assert token_file.read_text().strip() == first.admin_token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert (tmp_path / "cloud" / "edgewise.db").exists()
    assert first.admin_token not in (tmp_path / "cloud" / "edgewise.db").read_bytes().decode("latin-1")


def test_second_start_creates_no_new_token(tmp_path: Path) -> None:
    first = initialize(tmp_path / "cloud")
    again = initialize(tmp_path / "cloud")
    assert again.admin_token is None
    assert first.settings.admin_token_file.read_text().strip() == first.admin_token


def test_first_start_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    # The shared database may hold tokens from other tests; a fresh one shows the first start itself.
    first = initialize(tmp_path / "cloud", database_url=postgres_url.replace("/edgewise", "/postgres"))
    assert first.settings.database_url.startswith("postgresql+psycopg://")
    assert first.admin_token is not None


def test_settings_default_to_sqlite_in_data_dir(tmp_path: Path) -> None:
    settings = CloudSettings(data_dir=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path / 'edgewise.db'}"


def test_settings_from_environ_with_overrides(tmp_path: Path) -> None:
    settings = CloudSettings.from_environ(
        {"EDGEWISE_CLOUD_DATA_DIR": str(tmp_path), "EDGEWISE_CLOUD_API_PORT": "9000"}, api_host="0.0.0.0"
    )
    assert (settings.data_dir, settings.api_port, settings.api_host) == (tmp_path, 9000, "0.0.0.0")


def test_settings_refuse_unsupported_database(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match="database_url") as caught:
        CloudSettings(data_dir=tmp_path, database_url="mysql://db/edgewise")
    assert "unsupported database URL 'mysql'" in str(caught.value)

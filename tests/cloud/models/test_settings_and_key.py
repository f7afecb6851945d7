"""Where the model registry lives by default, MLflow kept out of the cloud's database, the model-signing key's
file, and a cloud without the ML libraries answering 503 ``ml_unavailable``."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from edgewise.cloud.errors import MlUnavailableError
from edgewise.cloud.models import service, signing
from edgewise.cloud.models.registry import artifact_location, tracking_uri
from edgewise.cloud.settings import CloudSettings
from edgewise.protocol.model_package import key_id, parse_public_key


def test_the_registry_defaults_to_its_own_sqlite_file_and_follows_an_s3_artifact_store(
    tmp_path: Path,
) -> None:
    local = CloudSettings(data_dir=tmp_path)
    s3 = CloudSettings(data_dir=tmp_path, artifact_store="s3://fleet-bucket/edgewise")
    explicit = CloudSettings(
        data_dir=tmp_path,
        mlflow_tracking_uri="postgresql://db/mlflow",
        mlflow_artifact_location="s3://models/here",
    )

    assert tracking_uri(local) == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert tracking_uri(local) != local.database_url
    assert artifact_location(local) == str(tmp_path / "mlflow" / "artifacts")
    assert artifact_location(s3) == "s3://fleet-bucket/edgewise/mlflow"
    assert (tracking_uri(explicit), artifact_location(explicit)) == (
        "postgresql://db/mlflow",
        "s3://models/here",
    )
    with pytest.raises(ValidationError, match="mlflow_tracking_uri: is the cloud's own database_url"):
        CloudSettings(data_dir=tmp_path, mlflow_tracking_uri=local.database_url)


def test_the_signing_key_is_created_once_owner_only_and_refused_when_not_ed25519(tmp_path: Path) -> None:
    key = signing.load_or_create(tmp_path)
    path = tmp_path / signing.KEY_FILE

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing.load_or_create(tmp_path).public_key_text() == key.public_key_text()
    assert key.key_id() == key_id(parse_public_key(key.public_key_text()))
    path.write_text("not a key\n")
    with pytest.raises(ValueError, match="does not hold a PEM private key"):
        signing.load_or_create(tmp_path)


def test_without_the_ml_libraries_the_registry_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "edgewise.ml.registry", None)

    with pytest.raises(MlUnavailableError, match="not installed"):
        service.model_registry(CloudSettings(data_dir=tmp_path))

"""The cloud's one MLflow model registry, opened from its settings.

MLflow keeps its own tracking database, never the cloud's: it migrates that database with its own Alembic
history, which must not meet ours. By default that is ``DATA_DIR/mlflow/mlflow.db`` (SQLite) with model files in
``DATA_DIR/mlflow/artifacts``, or under ``s3://BUCKET[/PREFIX]/mlflow`` when the cloud's artifact store is an
S3 bucket. ``edgewise.ml.registry`` (and with it MLflow) is imported only when a registry is opened, so the API
starts without the ML libraries installed.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from edgewise.cloud.components.store import parse_store_url
from edgewise.cloud.settings import CloudSettings

if TYPE_CHECKING:
    from edgewise.ml.registry import ModelRegistry

MLFLOW_DIR = "mlflow"
MLFLOW_DATABASE_FILE = "mlflow.db"
MLFLOW_ARTIFACTS_DIR = "artifacts"

_registries: dict[tuple[str, str], ModelRegistry] = {}
_opening = threading.Lock()


def tracking_uri(settings: CloudSettings) -> str:
    """MLflow's tracking URI: the setting, else a SQLite file of its own in the data directory."""
    if settings.mlflow_tracking_uri:
        return settings.mlflow_tracking_uri
    return f"sqlite:///{settings.data_dir / MLFLOW_DIR / MLFLOW_DATABASE_FILE}"


def artifact_location(settings: CloudSettings) -> str:
    """Where MLflow keeps model files: the setting, else beside the cloud's artifacts (directory or bucket)."""
    if settings.mlflow_artifact_location:
        return settings.mlflow_artifact_location
    store = parse_store_url(settings.artifact_store)
    if store.bucket is not None:
        prefix = f"{store.prefix}/" if store.prefix else ""
        return f"s3://{store.bucket}/{prefix}{MLFLOW_DIR}"
    return str(settings.data_dir / MLFLOW_DIR / MLFLOW_ARTIFACTS_DIR)


def open_registry(settings: CloudSettings) -> ModelRegistry:
    """The model registry of ``settings``, opened once per (tracking URI, artifact location). Blocks.

    Raises:
        ModuleNotFoundError: the ML libraries (``edgewise[ml]``) are not installed.
        RegistryError: MLflow cannot open its tracking store.
    """
    key = (tracking_uri(settings), artifact_location(settings))
    with _opening:
        registry = _registries.get(key)
        if registry is None:
            from edgewise.ml.registry import ModelRegistry

            if not settings.mlflow_tracking_uri:
                (settings.data_dir / MLFLOW_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
            registry = ModelRegistry(*key)
            _registries[key] = registry
        return registry

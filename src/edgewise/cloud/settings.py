"""The cloud's settings: where its data lives, which database it uses, where the API listens.

Precedence, highest first: explicit keyword arguments, then ``EDGEWISE_CLOUD_*`` environment variables (read
by :meth:`CloudSettings.from_environ`, and by ``edgewise cloud up`` for the settings it has no option for:
``edgewise.cloud.preparation.ENVIRONMENT_SETTINGS``), then the defaults here. The database defaults to a SQLite
file in the data directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edgewise.cloud.components.store import parse_store_url
from edgewise.protocol.telemetry import DEVICE_TOPIC_FILTER
from edgewise.topics import TopicError, validate_filter

ENV_PREFIX = "EDGEWISE_CLOUD_"
DATABASE_FILE = "edgewise.db"
SUPPORTED_DATABASE_SCHEMES = ("sqlite://", "postgresql+psycopg://")
#: The device topics whose messages are stored as telemetry unless configured otherwise.
TELEMETRY_TOPIC_FILTERS: tuple[str, ...] = (DEVICE_TOPIC_FILTER,)
_TELEMETRY_FILTERS_MAX = 32
_TELEMETRY_FILTER_MAX_LENGTH = 256


class CloudSettings(BaseModel):
    """Settings of one cloud process; immutable once built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path
    database_url: str = Field(default="", description="SQLAlchemy URL; empty means SQLite in data_dir")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=1, le=65535)
    artifact_store: str = Field(
        default="", description="s3://bucket/prefix; empty means the directory DATA_DIR/artifacts"
    )
    artifact_store_endpoint_url: str | None = Field(
        default=None, description="The endpoint of an S3-compatible store (default: AWS S3)"
    )
    api_body_max_bytes: int = Field(
        default=1024 * 1024,
        ge=64 * 1024,
        description="The largest request body the API reads (JSON requests)",
    )
    api_upload_max_bytes: int = Field(
        default=8 * 1024**3,
        ge=1024 * 1024,
        description="The largest artifact the API takes (streamed to disk)",
    )
    telemetry_topic_filters: tuple[str, ...] = Field(
        default=TELEMETRY_TOPIC_FILTERS,
        description="MQTT filters whose messages are stored as telemetry (comma-separated in the environment)",
    )
    telemetry_flush_messages: int = Field(
        default=500, ge=1, le=10_000, description="Telemetry is written once this many messages wait"
    )
    telemetry_flush_interval_ms: int = Field(
        default=200, ge=1, le=60_000, description="...or once the oldest waiting message is this old"
    )
    telemetry_retention_interval_seconds: float = Field(
        default=60.0, ge=1.0, le=86_400.0, description="How often telemetry retention is enforced"
    )
    telemetry_default_max_age_seconds: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="The age limit of telemetry streams without a retention of their own; none keeps them",
    )
    logs_max_age_seconds: int = Field(
        default=30 * 86_400,
        ge=1,
        le=2**31 - 1,
        description="How long device log lines are kept after arrival",
    )
    logs_retention_interval_seconds: float = Field(
        default=300.0, ge=1.0, le=86_400.0, description="How often old device log lines are deleted"
    )
    stream_upload_max_bytes: int = Field(
        default=5 * 1024**3,
        ge=1,
        le=5 * 1024**4,
        description="The largest file a device may upload through a stream manager S3 export task",
    )
    dataset_max_rows: int = Field(
        default=2_000_000,
        ge=1,
        le=100_000_000,
        description="The most telemetry messages one dataset is built from",
    )
    dataset_file_max_bytes: int = Field(
        default=256 * 1024**2,
        ge=1024,
        le=16 * 1024**3,
        description="The largest CSV or Parquet file a dataset is imported from (read into memory)",
    )
    training_concurrency: int = Field(
        default=1, ge=1, le=64, description="How many training jobs run at once"
    )
    training_ray_address: str | None = Field(
        default=None,
        max_length=1024,
        description="The Ray cluster training jobs use when they name none (default: train in the cloud)",
    )
    mlflow_tracking_uri: str = Field(
        default="",
        description="MLflow's tracking URI (the model registry): empty means sqlite:///DATA_DIR/mlflow/mlflow.db; "
        "a PostgreSQL URL must name a database of its own, never the cloud's",
    )
    mlflow_artifact_location: str = Field(
        default="",
        description="Where MLflow keeps model files: empty means DATA_DIR/mlflow/artifacts, or "
        "s3://BUCKET[/PREFIX]/mlflow when the artifact store is s3://BUCKET[/PREFIX]",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_database_in_data_dir(cls, values: Any) -> Any:
        if isinstance(values, dict) and not values.get("database_url") and values.get("data_dir"):
            values = {**values, "database_url": f"sqlite:///{Path(values['data_dir']) / DATABASE_FILE}"}
        return values

    @model_validator(mode="after")
    def _mlflow_in_its_own_database(self) -> CloudSettings:
        # MLflow migrates its tracking database with its own Alembic history; sharing ours would mix the two.
        if self.mlflow_tracking_uri and self.mlflow_tracking_uri == self.database_url:
            raise ValueError(
                "mlflow_tracking_uri: is the cloud's own database_url; give MLflow a database of its own"
            )
        return self

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, url: str) -> str:
        if not url.startswith(SUPPORTED_DATABASE_SCHEMES):
            raise ValueError(
                f"unsupported database URL {url.split('://')[0]!r}://...; use one of "
                + ", ".join(SUPPORTED_DATABASE_SCHEMES)
            )
        return url

    @field_validator("telemetry_topic_filters", mode="before")
    @classmethod
    def _filters_from_text(cls, value: Any) -> Any:
        return (
            tuple(part.strip() for part in value.split(",") if part.strip())
            if isinstance(value, str)
            else value
        )

    @field_validator("telemetry_topic_filters")
    @classmethod
    def _telemetry_filters(cls, filters: tuple[str, ...]) -> tuple[str, ...]:
        if len(filters) > _TELEMETRY_FILTERS_MAX:
            raise ValueError(f"{len(filters)} filters; at most {_TELEMETRY_FILTERS_MAX} are allowed")
        for topic_filter in filters:
            try:
                validate_filter(topic_filter)
            except TopicError as exc:
                raise ValueError(str(exc)) from None
            if len(topic_filter) > _TELEMETRY_FILTER_MAX_LENGTH or topic_filter.startswith("$"):
                # '$' topics carry the device protocol itself (shadows, jobs, exports), never telemetry.
                raise ValueError(
                    f"{topic_filter!r:.300}: a telemetry filter is at most {_TELEMETRY_FILTER_MAX_LENGTH} "
                    "characters and does not start with '$'"
                )
        return tuple(dict.fromkeys(filters))

    @field_validator("artifact_store")
    @classmethod
    def _supported_artifact_store(cls, url: str) -> str:
        parse_store_url(url)
        return url

    @field_validator("artifact_store_endpoint_url")
    @classmethod
    def _http_endpoint(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return url

    @property
    def admin_token_file(self) -> Path:
        """Where the first start writes the admin token's plaintext (mode 0600)."""
        return self.data_dir / "admin-token"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], **overrides: Any) -> CloudSettings:
        """Build settings from ``EDGEWISE_CLOUD_<FIELD>`` variables, with ``overrides`` taking precedence."""
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            key = ENV_PREFIX + name.upper()
            if key in environ:
                values[name] = environ[key]
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls.model_validate(values)

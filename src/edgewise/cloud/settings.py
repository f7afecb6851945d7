"""The cloud's settings: where its data lives, which database it uses, where the API listens.

Precedence, highest first: explicit keyword arguments, then ``EDGEWISE_CLOUD_*`` environment variables (read
only by :meth:`CloudSettings.from_environ`), then the defaults here. The database defaults to a SQLite file in
the data directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edgewise.cloud.components.store import parse_store_url

ENV_PREFIX = "EDGEWISE_CLOUD_"
DATABASE_FILE = "edgewise.db"
SUPPORTED_DATABASE_SCHEMES = ("sqlite://", "postgresql+psycopg://")


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

    @model_validator(mode="before")
    @classmethod
    def _default_database_in_data_dir(cls, values: Any) -> Any:
        if isinstance(values, dict) and not values.get("database_url") and values.get("data_dir"):
            values = {**values, "database_url": f"sqlite:///{Path(values['data_dir']) / DATABASE_FILE}"}
        return values

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, url: str) -> str:
        if not url.startswith(SUPPORTED_DATABASE_SCHEMES):
            raise ValueError(
                f"unsupported database URL {url.split('://')[0]!r}://...; use one of "
                + ", ".join(SUPPORTED_DATABASE_SCHEMES)
            )
        return url

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

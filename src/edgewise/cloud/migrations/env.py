"""Alembic environment: runs the shipped migrations against the URL set by ``edgewise.cloud.db``."""

from __future__ import annotations

from alembic import context

# The model modules register their tables on Base.metadata (used by `alembic revision --autogenerate`).
from edgewise.cloud.auth import models as _auth_models  # noqa: F401
from edgewise.cloud.client_devices import models as _client_device_models  # noqa: F401
from edgewise.cloud.components import models as _component_models  # noqa: F401
from edgewise.cloud.datasets import models as _dataset_models  # noqa: F401
from edgewise.cloud.db import Base, create_database_engine
from edgewise.cloud.deployments import models as _deployment_models  # noqa: F401
from edgewise.cloud.drift import models as _drift_models  # noqa: F401
from edgewise.cloud.fleet import models as _fleet_models  # noqa: F401
from edgewise.cloud.identity import models as _identity_models  # noqa: F401
from edgewise.cloud.jobs import models as _job_models  # noqa: F401
from edgewise.cloud.logs import models as _log_models  # noqa: F401
from edgewise.cloud.models import models as _model_registry_models  # noqa: F401
from edgewise.cloud.provisioning import models as _provisioning_models  # noqa: F401
from edgewise.cloud.registry import models as _registry_models  # noqa: F401
from edgewise.cloud.rules import models as _rule_models  # noqa: F401
from edgewise.cloud.shadows import models as _shadow_models  # noqa: F401
from edgewise.cloud.telemetry import models as _telemetry_models  # noqa: F401
from edgewise.cloud.training import models as _training_models  # noqa: F401


def run_migrations() -> None:
    """Run the pending migrations online, on a connection of our own engine (with its SQLite pragmas)."""
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("alembic config has no sqlalchemy.url; call edgewise.cloud.db.upgrade_database")
    engine = create_database_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


run_migrations()

"""Alembic migrations of the cloud store; run them with ``edgewise.cloud.db.upgrade_database``."""

"""The store: migrations match the models, SQLite gets WAL and foreign keys, timestamps come back aware, a
PostgreSQL connection closed while it sat in the pool is replaced."""

from __future__ import annotations

import datetime
import importlib
import pkgutil

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import edgewise.cloud
from edgewise.cloud.db import Base, alembic_config, create_database_engine, upgrade_database
from edgewise.cloud.registry import Thing, ThingGroupMembership


def _import_every_model_module() -> None:
    """Register every table on Base.metadata, whichever tests ran before."""
    for module in pkgutil.walk_packages(edgewise.cloud.__path__, "edgewise.cloud."):
        if module.name.endswith(".models"):
            importlib.import_module(module.name)


def test_migrations_create_exactly_the_models_tables(database_url: str) -> None:
    _import_every_model_module()
    engine = create_database_engine(database_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_upgrade_when_already_at_head_changes_nothing(database_url: str) -> None:
    upgrade_database(database_url)
    engine = create_database_engine(database_url)
    try:
        with engine.connect() as connection:
            revisions = set(connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()
    assert revisions == set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())


def test_sqlite_connections_use_wal_and_enforce_foreign_keys(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    upgrade_database(url)
    engine = create_database_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert connection.execute(sa.text("PRAGMA foreign_keys")).scalar_one() == 1
    finally:
        engine.dispose()


def _backend_of(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        pid: int = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    return pid


def _terminate(url: str, pid: int) -> None:
    """End PostgreSQL's backend ``pid`` as a database restart would, and wait until it is gone."""
    admin = create_database_engine(url)
    try:
        with admin.connect() as connection:
            ended = connection.execute(sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
            assert ended.scalar_one() is True
    finally:
        admin.dispose()


def test_a_postgresql_connection_closed_while_idle_in_the_pool_is_replaced_before_use(
    postgres_url: str,
) -> None:
    engine = create_database_engine(postgres_url, idle_ping_seconds=0.0)
    try:
        closed = _backend_of(engine)
        _terminate(postgres_url, closed)
        assert _backend_of(engine) != closed
    finally:
        engine.dispose()


def test_a_postgresql_connection_handed_out_again_soon_is_not_pinged(postgres_url: str) -> None:
    engine = create_database_engine(postgres_url, idle_ping_seconds=3600.0)
    try:
        closed = _backend_of(engine)
        _terminate(postgres_url, closed)
        # Unpinged, the dead connection is used and the statement fails; SQLAlchemy then replaces it.
        with pytest.raises(sa.exc.OperationalError):
            _backend_of(engine)
        assert _backend_of(engine) != closed
    finally:
        engine.dispose()


def test_membership_of_a_missing_thing_is_refused_by_the_database(session: Session) -> None:
    session.add(ThingGroupMembership(thing_id=12345, group_id=67890))
    with pytest.raises(IntegrityError):
        session.commit()


def test_timestamps_come_back_as_aware_utc(session: Session) -> None:
    written = datetime.datetime(2026, 3, 1, 12, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    session.add(Thing(name="clock", attributes={}, created_at=written, updated_at=written))
    session.commit()
    session.expunge_all()
    thing = session.scalars(sa.select(Thing).where(Thing.name == "clock")).one()
    assert thing.created_at == written
    assert thing.created_at.tzinfo == datetime.UTC


def test_naive_timestamps_are_refused(session: Session) -> None:
    naive = datetime.datetime(2026, 3, 1, 12, 30)
    session.add(Thing(name="naive", attributes={}, created_at=naive, updated_at=naive))
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        session.commit()

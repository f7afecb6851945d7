"""The cloud's store: the declarative base, engines, sessions and schema migrations.

SQLite (the default) gets WAL journaling and enforced foreign keys on every connection; PostgreSQL is reached
through psycopg 3 (``postgresql+psycopg://``), and a pooled connection that sat unused for a while is pinged before
it is handed out, so one that a database restart or an idle timeout closed is replaced instead of failing a request. Timestamps are stored and returned as aware UTC datetimes on
both, so the models behave the same whichever engine is underneath. The schema is owned by the Alembic
migrations shipped in ``edgewise/cloud/migrations``; :func:`upgrade_database` brings a database to the latest.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from fastapi import Depends, Request
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# Stable constraint names, so migrations can refer to them on every engine.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime.datetime]):
    """An aware UTC datetime; SQLite would otherwise hand back naive values."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime.datetime | None, dialect: sa.Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"refusing to store the naive datetime {value.isoformat()}; use an aware one")
        return value.astimezone(datetime.UTC)

    def process_result_value(
        self, value: datetime.datetime | None, dialect: sa.Dialect
    ) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=datetime.UTC)
        return value.astimezone(datetime.UTC)


class Base(DeclarativeBase):
    """Base class of every cloud table."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime.datetime:
    """The current time as an aware UTC datetime (what every timestamp column stores)."""
    return datetime.datetime.now(datetime.UTC)


def _enable_sqlite_features(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


#: How long a pooled connection may sit unused before it is pinged on checkout. A busy cloud hands its
#: connections out again within milliseconds, and pinging each checkout (SQLAlchemy's ``pool_pre_ping``) cost a
#: round trip per transaction: 7 % of the fleet fan-out's cloud CPU.
IDLE_PING_SECONDS = 5.0

_CHECKED_IN_AT = "edgewise.checked_in_at"


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Have ``engine``'s pool ping a connection on checkout when it was checked in more than ``idle_seconds``
    ago; one that fails is discarded and another one taken (SQLAlchemy retries on DisconnectionError)."""
    dialect = engine.dialect

    def checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get(_CHECKED_IN_AT)
        if since is None or time.monotonic() - since <= idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DisconnectionError(f"the pooled connection is gone: {exc}") from exc

    sa.event.listen(engine, "checkin", checked_in)
    sa.event.listen(engine, "checkout", checkout)


def create_database_engine(url: str, *, idle_ping_seconds: float = IDLE_PING_SECONDS) -> Engine:
    """An engine for ``url`` (``sqlite:///...`` or ``postgresql+psycopg://...``); dispose it when done.
    A PostgreSQL connection unused for more than ``idle_ping_seconds`` is pinged before it is handed out."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False})
        sa.event.listen(engine, "connect", _enable_sqlite_features)
        return engine
    engine = sa.create_engine(url)
    _ping_when_idle(engine, idle_ping_seconds)
    return engine


def create_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    """The Alembic configuration for the migrations shipped in the package, aimed at ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser treats % as interpolation; URLs may contain percent-escapes.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_database(url: str) -> None:
    """Create or migrate the database at ``url`` to the latest schema. Blocks; idempotent."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "heads")
    logger.info(
        "database-upgraded", extra={"database": sa.make_url(url).render_as_string(hide_password=True)}
    )


def get_session(request: Request) -> Iterator[Session]:
    """A session for one API request, from the factory the app keeps in ``app.state.services``."""
    factory: sessionmaker[Session] = request.app.state.services.sessions
    with factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

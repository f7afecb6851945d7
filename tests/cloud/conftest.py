"""Fixtures for the cloud tests: a throwaway PostgreSQL per session, and migrated databases on both engines."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.orm import Session

from edgewise.cloud.app import FirstStart, create_app, initialize
from edgewise.cloud.db import create_database_engine, create_session_factory, upgrade_database
from tests.cloud.postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole test session."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresServer) -> str:
    """A PostgreSQL database migrated to the latest schema, shared by the tests (emptied before each)."""
    url = postgres.create_database("edgewise")
    upgrade_database(url)
    return url


def _empty_tables(url: str) -> None:
    engine = create_database_engine(url)
    try:
        tables = [name for name in sa.inspect(engine).get_table_names() if name != "alembic_version"]
        with engine.begin() as connection:
            connection.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated database: a fresh SQLite file, or the shared PostgreSQL database emptied."""
    if request.param == "sqlite":
        sqlite_url = f"sqlite:///{tmp_path / 'edgewise.db'}"
        upgrade_database(sqlite_url)
        return sqlite_url
    shared_url: str = request.getfixturevalue("postgres_url")
    _empty_tables(shared_url)
    return shared_url


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    """A session on an empty, migrated database (run once per engine)."""
    engine = create_database_engine(database_url)
    try:
        with create_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


@pytest.fixture
def first_start(tmp_path: Path) -> FirstStart:
    """A data directory initialised as on first start (SQLite), with its admin token."""
    return initialize(tmp_path / "cloud")


@pytest.fixture
def app(first_start: FirstStart) -> Iterator[FastAPI]:
    """The API app on the first start's database."""
    application = create_app(first_start.settings)
    try:
        yield application
    finally:
        application.state.services.engine.dispose()


ApiClientFactory = Callable[[str | None], httpx.AsyncClient]


@pytest.fixture
def api_client(app: FastAPI) -> ApiClientFactory:
    """Makes HTTP clients for ``app`` that send the given bearer token (none for ``None``)."""

    def make(token: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://cloud", headers=headers
        )

    return make


@pytest.fixture
async def admin_api(
    api_client: ApiClientFactory, first_start: FirstStart
) -> AsyncIterator[httpx.AsyncClient]:
    """A client authenticated with the first start's admin token."""
    async with api_client(first_start.admin_token) as client:
        yield client

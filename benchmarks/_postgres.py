"""A throwaway PostgreSQL server for the benchmarks: the tests' own (``tests/cloud/postgres.py``: initdb in a
temporary folder, served as the ``postgres`` user when we run as root), one database on it, and the process
id of its postmaster, whose process tree is the database's CPU.

The benchmark scripts import this as ``_postgres``; it puts the repository's root on ``sys.path`` to reach
the tests' package.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.cloud.postgres import PostgresServer


@dataclass(frozen=True)
class Database:
    """One database on a running server."""

    url: str  #: SQLAlchemy URL (psycopg 3)
    postmaster: int  #: pid of the server's postmaster, the parent of every backend


def _postmaster_pid(port: int) -> int:
    """The postmaster is the parent of the backend that serves our connection."""
    import psycopg

    with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres") as connection:
        row = connection.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    stat = Path(f"/proc/{row[0]}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])


#: Servers to try: the port a server is given may be taken by another process before the server binds it.
ATTEMPTS = 3


def _started_server() -> PostgresServer:
    for attempt in range(1, ATTEMPTS + 1):
        server = PostgresServer()
        try:
            server.start()
        except RuntimeError as exc:
            server.stop()
            if attempt == ATTEMPTS:
                raise
            print(f"  (PostgreSQL did not start on port {server.port}: {exc.args[0][:200]}; trying another)")
        else:
            return server
    raise AssertionError(ATTEMPTS)


@contextmanager
def postgres_database(name: str) -> Iterator[Database]:
    """A new server with the empty database ``name``; the server is stopped and deleted on the way out."""
    server = _started_server()
    try:
        yield Database(server.create_database(name), _postmaster_pid(server.port))
    finally:
        server.stop()

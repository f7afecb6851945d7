"""A throwaway PostgreSQL server for tests: initdb into a temp dir, a free port, a private socket dir.

PostgreSQL refuses to run as root, so when the tests run as root the cluster is created and served as the
unprivileged ``postgres`` OS user (it owns the temp dir). Usage::

    with PostgresServer() as server:
        url = server.create_database("edgewise")
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from tests.support.ports import free_port

BIN_DIR = Path("/usr/lib/postgresql/15/bin")
SERVICE_USER = "postgres"


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, stopped and deleted on exit."""

    def __init__(self, bin_dir: Path = BIN_DIR) -> None:
        if not (bin_dir / "initdb").exists():
            raise FileNotFoundError(f"PostgreSQL binaries not found in {bin_dir}: install postgresql-15")
        self._bin_dir = bin_dir
        self._user = SERVICE_USER if os.geteuid() == 0 else None
        self._root = Path(tempfile.mkdtemp(prefix="edgewise-pg-"))
        self.port = free_port()
        self.socket_dir = self._root / "socket"
        self._data = self._root / "data"
        self._running = False

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [str(self._bin_dir / args[0]), *args[1:]],
            user=self._user,
            capture_output=True,
            text=True,
            check=False,
            cwd=self._root,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed with code {result.returncode}: {result.stderr or result.stdout}"
            )

    def start(self) -> None:
        self.socket_dir.mkdir()
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            for path in (self._root, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb", "-D", str(self._data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir} -c fsync=off"
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self._data),
            "-o",
            options,
            "-l",
            str(self._root / "log"),
        )
        self._running = True

    def stop(self) -> None:
        if self._running:
            self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self._data))
            self._running = False
        shutil.rmtree(self._root, ignore_errors=True)

    def url(self, database: str) -> str:
        """A SQLAlchemy URL (psycopg 3 driver) for ``database`` on this server, over TCP."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
